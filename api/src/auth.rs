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
    keys: std::sync::Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

/// Who a credential names: the audit log's actor name, the role, and the API key's id when it is
/// a key (a console session opened with it ends when it is revoked).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) key_id: Option<i64>,
    /// When the credential stops being accepted (a JWT's `exp`; a key: until revoked).
    pub(crate) expires_at: Option<std::time::SystemTime>,
}

/// How long a looked-up key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    /// A key looked up and found recently.
    fn cached(&self, key: &str) -> Option<Caller> {
        // The cache is keyed by a digest, never by the key itself.
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.lock()
            .get(&digest)
            .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(caller, _)| caller.clone())
    }

    async fn principal(&self, front: &FrontDoor, key: &str) -> Result<Caller, ApiError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let found = front.find_api_key(key).await?;
        let mut keys = self.lock();
        let Some(row) = found else {
            keys.remove(&digest);
            return Err(ApiError::Unauthorized("unknown or revoked API key".into()));
        };
        let role = Role::parse(&row.role)
            .ok_or_else(|| ApiError::Unauthorized("the key has an unknown role".into()))?;
        let caller = Caller {
            name: format!("key:{}:{}", row.id, row.name),
            role,
            key_id: Some(row.id),
            expires_at: None,
        };
        if keys.len() >= KEY_CACHE_MAX {
            keys.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        keys.insert(digest, (caller.clone(), Instant::now()));
        Ok(caller)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Caller, Instant)>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// JWT bearer tokens: HS256 with a shared secret or RS256 with a public key. Claims: `sub` (who),
/// `role` (viewer, operator or admin) and `exp` (required); `nbf` honoured when present;
/// `iss`, `aud` and the age from `iat` checked when configured. Clocks may differ by 60 s.
#[derive(Clone)]
pub struct JwtConfig {
    key: jsonwebtoken::DecodingKey,
    algorithm: jsonwebtoken::Algorithm,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// Most age of a token by its `iat` (which is then required).
    pub max_age: Option<Duration>,
}

/// Clock difference tolerated between the token's issuer and this server.
const LEEWAY_SECS: u64 = 60;

impl JwtConfig {
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: jsonwebtoken::DecodingKey::from_secret(secret),
            algorithm: jsonwebtoken::Algorithm::HS256,
            issuer: None,
            audience: None,
            max_age: None,
        }
    }

    pub fn rs256_pem(public_key: &[u8]) -> Result<Self, String> {
        Ok(Self {
            key: jsonwebtoken::DecodingKey::from_rsa_pem(public_key).map_err(|e| e.to_string())?,
            algorithm: jsonwebtoken::Algorithm::RS256,
            issuer: None,
            audience: None,
            max_age: None,
        })
    }

    /// The JWT mode the settings ask for: none, an HS256 secret, or an RS256 public key file,
    /// with the optional issuer, audience and age checks. The error names the setting.
    pub fn from_settings(api: &ApiSettings) -> Result<Option<Self>, String> {
        let config = match (&api.jwt_hs256_secret, &api.jwt_rs256_public_key_file) {
            (Some(secret), None) => Self::hs256(secret.expose_secret().as_bytes()),
            (None, Some(file)) => {
                let pem = std::fs::read(file).map_err(|e| {
                    format!("api.jwt_rs256_public_key_file {}: {e}", file.display())
                })?;
                Self::rs256_pem(&pem)
                    .map_err(|e| format!("api.jwt_rs256_public_key_file {}: {e}", file.display()))?
            }
            (Some(_), Some(_)) => {
                return Err(
                    "set only one of api.jwt_hs256_secret and api.jwt_rs256_public_key_file".into(),
                );
            }
            (None, None) => {
                if api.jwt_issuer.is_some()
                    || api.jwt_audience.is_some()
                    || api.jwt_max_age_secs.is_some()
                {
                    return Err(
                        "api.jwt_issuer, api.jwt_audience and api.jwt_max_age_secs need \
                                api.jwt_hs256_secret or api.jwt_rs256_public_key_file"
                            .into(),
                    );
                }
                return Ok(None);
            }
        };
        Ok(Some(Self {
            issuer: api.jwt_issuer.clone(),
            audience: api.jwt_audience.clone(),
            max_age: api.jwt_max_age_secs.map(Duration::from_secs),
            ..config
        }))
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    role: String,
    /// A NumericDate, which may have a fraction.
    iat: Option<f64>,
    exp: f64,
}

fn jwt_principal(token: &str, jwt: &JwtConfig) -> Result<Caller, ApiError> {
    use jsonwebtoken::errors::ErrorKind;
    let mut validation = jsonwebtoken::Validation::new(jwt.algorithm);
    let mut required = vec!["exp", "sub"];
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    if let Some(iss) = &jwt.issuer {
        validation.set_issuer(&[iss]);
        required.push("iss");
    }
    match &jwt.audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    let data = jsonwebtoken::decode::<Claims>(token, &jwt.key, &validation).map_err(|e| {
        let why = match e.kind() {
            ErrorKind::ExpiredSignature => "the token has expired",
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
            ErrorKind::InvalidSignature => "the token's signature is wrong",
            ErrorKind::InvalidIssuer => "the token's issuer (iss) is not accepted",
            ErrorKind::InvalidAudience => "the token's audience (aud) is not this API",
            ErrorKind::MissingRequiredClaim(claim) => {
                return ApiError::Unauthorized(format!(
                    "the token lacks a required claim ({claim})"
                ));
            }
            _ => "the token is not a valid JWT for this API",
        };
        ApiError::Unauthorized(why.into())
    })?;
    if let Some(max_age) = jwt.max_age {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // Whole seconds are enough at a minute's leeway.
        let Some(iat) = data
            .claims
            .iat
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| t as u64)
        else {
            return Err(ApiError::Unauthorized(
                "the token lacks a required claim (iat)".into(),
            ));
        };
        if iat > now + LEEWAY_SECS {
            return Err(ApiError::Unauthorized(
                "the token was issued in the future (iat)".into(),
            ));
        }
        if now.saturating_sub(iat) > max_age.as_secs() + LEEWAY_SECS {
            return Err(ApiError::Unauthorized(
                "the token is older than this API accepts (iat)".into(),
            ));
        }
    }
    let role = Role::parse(&data.claims.role).ok_or_else(|| {
        ApiError::Unauthorized("the token's role claim must be viewer, operator or admin".into())
    })?;
    // An `exp` past what the clock can hold is no limit of ours (the token lasts).
    let expires_at = std::time::Duration::try_from_secs_f64(data.claims.exp)
        .ok()
        .and_then(|exp| std::time::UNIX_EPOCH.checked_add(exp));
    Ok(Caller {
        name: format!("jwt:{}", data.claims.sub),
        role,
        key_id: None,
        expires_at,
    })
}

/// Checks a credential (an API key or a JWT) presented from client address `ip`, for a request
/// and for the console's sign-in alike. Failed authentications are limited per client address
/// (its IP: the port changes per connection), before anything is looked up: guessing keys costs
/// the guesser, not the database. A key known good a moment ago passes, so a guesser behind the
/// same address cannot lock out the keys in use there.
pub(crate) async fn authenticate(
    state: &ApiState,
    credential: &str,
    ip: &str,
) -> Result<Caller, ApiError> {
    let is_key = credential.starts_with(cowans_queue::API_KEY_PREFIX) && credential.len() <= 100;
    if is_key && let Some(known) = state.keys.cached(credential) {
        return Ok(known);
    }
    if let Err(retry_after) = state.auth_failures.peek(ip) {
        return Err(ApiError::RateLimited { retry_after });
    }
    let checked = if is_key {
        state.keys.principal(&state.front, credential).await
    } else if let Some(jwt) = &state.jwt {
        jwt_principal(credential, jwt)
    } else {
        Err(ApiError::Unauthorized("malformed API key".into()))
    };
    if matches!(checked, Err(ApiError::Unauthorized(_))) {
        let _ = state.auth_failures.check(ip);
    }
    checked
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let ip = peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string());
        let Caller { name, role, .. } =
            authenticate(state, &presented_credential(parts)?, &ip).await?;
        if let Err(retry_after) = state.limiter.check(&name) {
            return Err(ApiError::RateLimited { retry_after });
        }
        let client_addr = peer.map(|p| p.to_string());
        Ok(Principal {
            actor: Actor {
                name,
                role,
                client_addr,
            },
        })
    }
}
