//! Authentication and roles. API keys (`cwk_…`, 256 random bits) are shown once at creation and
//! stored as SHA-256; requests carry them as `Authorization: Bearer <key>` or `X-Api-Key`.
//! Roles are ordered `viewer` < `operator` < `admin`; every route states the least it needs.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

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

/// Known API keys, remembered for [`KEY_CACHE_TTL`] so authentication is not a database round
/// trip per request. A revoked key therefore stops working within that time on every instance.
#[derive(Default)]
pub struct KeyCache {
    keys: std::sync::Mutex<HashMap<Vec<u8>, (String, Role, Instant)>>,
}

/// How long a looked-up key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    async fn principal(
        &self,
        pool: &cowans_store::PgPool,
        key: &str,
    ) -> Result<(String, Role), ApiError> {
        let hash = hash_key(key);
        if let Some((actor, role, at)) = self.lock().get(&hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok((actor.clone(), *role));
        }
        let found = cowans_store::find_api_key(pool, &hash).await?;
        let mut keys = self.lock();
        let Some(row) = found else {
            keys.remove(&hash);
            return Err(ApiError::unauthorized("unknown or revoked API key"));
        };
        let role = Role::parse(&row.role)
            .ok_or_else(|| ApiError::unauthorized("the key has an unknown role"))?;
        let actor = format!("key:{}:{}", row.id, row.name);
        if keys.len() >= KEY_CACHE_MAX {
            keys.retain(|_, (_, _, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        keys.insert(hash, (actor.clone(), role, Instant::now()));
        Ok((actor, role))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, (String, Role, Instant)>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// JWT bearer tokens: HS256 with a shared secret or RS256 with a public key. Claims: `sub` (who),
/// `role` (viewer, operator or admin) and `exp` (required).
#[derive(Clone)]
pub struct JwtConfig {
    key: jsonwebtoken::DecodingKey,
    algorithm: jsonwebtoken::Algorithm,
}

impl JwtConfig {
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: jsonwebtoken::DecodingKey::from_secret(secret),
            algorithm: jsonwebtoken::Algorithm::HS256,
        }
    }

    pub fn rs256_pem(public_key: &[u8]) -> Result<Self, String> {
        Ok(Self {
            key: jsonwebtoken::DecodingKey::from_rsa_pem(public_key).map_err(|e| e.to_string())?,
            algorithm: jsonwebtoken::Algorithm::RS256,
        })
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    role: String,
}

fn jwt_principal(token: &str, jwt: &JwtConfig) -> Result<(String, Role), ApiError> {
    let mut validation = jsonwebtoken::Validation::new(jwt.algorithm);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &jwt.key, &validation).map_err(|e| {
        let why = match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "the token's signature is wrong",
            _ => "the token is not a valid JWT for this API",
        };
        ApiError::unauthorized(why)
    })?;
    let role = Role::parse(&data.claims.role).ok_or_else(|| {
        ApiError::unauthorized("the token's role claim must be viewer, operator or admin")
    })?;
    Ok((format!("jwt:{}", data.claims.sub), role))
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts)?;
        let (actor, role) = if key.starts_with("cwk_") && key.len() <= 100 {
            state.keys.principal(&state.pool, &key).await?
        } else if let Some(jwt) = &state.jwt {
            jwt_principal(&key, jwt)?
        } else {
            return Err(ApiError::unauthorized("malformed API key"));
        };
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
