//! Authentication and roles. API keys (`cwk_…`, 256 random bits) are shown once at creation and
//! stored as SHA-256; requests carry them as `Authorization: Bearer <key>` or `X-Api-Key`.
//! Roles are ordered `viewer` < `operator` < `admin`; every route states the least it needs.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::{ApiState, error::ApiError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `key:<id>:<name>`.
    pub actor: String,
    pub role: Role,
    pub client_addr: Option<String>,
}

impl Principal {
    /// 403 unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; the key has {}",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// A new key: (the key to show once, its hash to store, its prefix to list).
pub fn generate_key() -> (String, Vec<u8>, String) {
    let bytes: [u8; 32] = rand::random();
    let key = format!(
        "cwk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_key(&key);
    let prefix = key.chars().take(10).collect();
    (key, hash, prefix)
}

pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn presented_key(parts: &Parts) -> Result<String, ApiError> {
    if let Some(v) = parts.headers.get("x-api-key") {
        return v
            .to_str()
            .map(|s| s.trim().to_owned())
            .map_err(|_| ApiError::unauthorized("malformed X-Api-Key header"));
    }
    let Some(v) = parts.headers.get("authorization") else {
        return Err(ApiError::unauthorized(
            "missing credentials: send Authorization: Bearer <key> or X-Api-Key",
        ));
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    match v.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
            Ok(key.trim().to_owned())
        }
        _ => Err(ApiError::unauthorized(
            "malformed Authorization header: expected \"Bearer <key>\"",
        )),
    }
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts)?;
        if !key.starts_with("cwk_") || key.len() > 100 {
            return Err(ApiError::unauthorized("malformed API key"));
        }
        let row = cowans_store::find_api_key(&state.pool, &hash_key(&key))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))?;
        let role = Role::parse(&row.role)
            .ok_or_else(|| ApiError::unauthorized("the key has an unknown role"))?;
        let actor = format!("key:{}:{}", row.id, row.name);
        if let Err(wait) = state.limiter.check(&actor) {
            return Err(ApiError::too_many_requests(wait));
        }
        let client_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string());
        Ok(Principal {
            actor,
            role,
            client_addr,
        })
    }
}
