//! Authentication and roles. Requests carry an API key (`cwk_…`, created with `cowans-api keys
//! create`) or a JWT as `Authorization: Bearer <credential>`, or a key as `X-Api-Key`. Roles are
//! ordered `viewer` < `operator` < `admin`; every route states the least it needs.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use cowans_core::{Actor, Role};
use cowans_queue::FrontDoor;
use cowans_service::settings::ApiSettings;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::{ApiState, error::ApiError};

/// The caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
}

impl Principal {
    /// 403 unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.actor.role >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {needed} role; the credential has {}",
                self.actor.role
            )))
        }
    }
}

fn presented_credential(parts: &Parts) -> Result<String, ApiError> {
    if let Some(v) = parts.headers.get("x-api-key") {
        return v
            .to_str()
            .map(|s| s.trim().to_owned())
            .map_err(|_| ApiError::Unauthorized("malformed X-Api-Key header".into()));
    }
    let Some(v) = parts.headers.get("authorization") else {
        return Err(ApiError::Unauthorized(
            "missing credentials: send Authorization: Bearer <key> or X-Api-Key".into(),
        ));
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    match v.split_once(' ') {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty() => {
            Ok(key.trim().to_owned())
        }
        _ => Err(ApiError::Unauthorized(
            "malformed Authorization header: expected \"Bearer <key>\"".into(),
        )),
    }
}

/// Known API keys, remembered for [`KEY_CACHE_TTL`] so authentication is not a database round
/// trip per request. A revoked key therefore stops working within that time on every instance.
#[derive(Default)]
pub struct KeyCache {
    keys: std::sync::Mutex<HashMap<[u8; 32], (String, Role, Instant)>>,
}

/// How long a looked-up key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    async fn principal(&self, front: &FrontDoor, key: &str) -> Result<(String, Role), ApiError> {
        // The cache is keyed by a digest, never by the key itself.
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some((actor, role, at)) = self.lock().get(&digest)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok((actor.clone(), *role));
        }
        let found = front.find_api_key(key).await?;
        let mut keys = self.lock();
        let Some(row) = found else {
            keys.remove(&digest);
            return Err(ApiError::Unauthorized("unknown or revoked API key".into()));
        };
        let role = Role::parse(&row.role)
            .ok_or_else(|| ApiError::Unauthorized("the key has an unknown role".into()))?;
        let actor = format!("key:{}:{}", row.id, row.name);
        if keys.len() >= KEY_CACHE_MAX {
            keys.retain(|_, (_, _, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        keys.insert(digest, (actor.clone(), role, Instant::now()));
        Ok((actor, role))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (String, Role, Instant)>> {
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

    /// The JWT mode the settings ask for: none, an HS256 secret, or an RS256 public key file.
    /// The error names the setting.
    pub fn from_settings(api: &ApiSettings) -> Result<Option<Self>, String> {
        match (&api.jwt_hs256_secret, &api.jwt_rs256_public_key_file) {
            (Some(secret), None) => Ok(Some(Self::hs256(secret.expose_secret().as_bytes()))),
            (None, Some(file)) => {
                let pem = std::fs::read(file).map_err(|e| {
                    format!("api.jwt_rs256_public_key_file {}: {e}", file.display())
                })?;
                Self::rs256_pem(&pem)
                    .map(Some)
                    .map_err(|e| format!("api.jwt_rs256_public_key_file {}: {e}", file.display()))
            }
            (Some(_), Some(_)) => {
                Err("set only one of api.jwt_hs256_secret and api.jwt_rs256_public_key_file".into())
            }
            (None, None) => Ok(None),
        }
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
        ApiError::Unauthorized(why.into())
    })?;
    let role = Role::parse(&data.claims.role).ok_or_else(|| {
        ApiError::Unauthorized("the token's role claim must be viewer, operator or admin".into())
    })?;
    Ok((format!("jwt:{}", data.claims.sub), role))
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let credential = presented_credential(parts)?;
        let (name, role) =
            if credential.starts_with(cowans_queue::API_KEY_PREFIX) && credential.len() <= 100 {
                state.keys.principal(&state.front, &credential).await?
            } else if let Some(jwt) = &state.jwt {
                jwt_principal(&credential, jwt)?
            } else {
                return Err(ApiError::Unauthorized("malformed API key".into()));
            };
        if let Err(retry_after) = state.limiter.check(&name) {
            return Err(ApiError::RateLimited { retry_after });
        }
        let client_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string());
        Ok(Principal {
            actor: Actor {
                name,
                role,
                client_addr,
            },
        })
    }
}
