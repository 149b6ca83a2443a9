//! Signing in and out, the session cookie, and the CSRF token of every form.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Form, FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{AppendHeaders, IntoResponse, Redirect, Response},
};
use cookie::{Cookie, SameSite};
use cowans_core::{Actor, Role};
use cowans_queue::ConsoleUser;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::layout::{Refusal, page, problem};
use crate::ApiState;

/// The session cookie.
pub const COOKIE: &str = "cowans_session";
/// The cookie that carries the login form's CSRF token (the login has no session yet).
const LOGIN_COOKIE: &str = "cowans_login";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The signed-in user of a request, from the session cookie. Without a live session a page
/// redirects to the login form; a form post is refused (403).
pub struct Session {
    pub user: ConsoleUser,
    pub token: String,
    pub actor: Actor,
}

impl Session {
    /// 403 unless the user's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Refusal> {
        if self.user.role >= needed {
            return Ok(());
        }
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "This needs the {needed} role; you are signed in as {}.",
                self.user.role
            ),
        })
    }

    /// 403 unless `presented` is the session's CSRF token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), Refusal> {
        if bool::from(presented.as_bytes().ct_eq(self.user.csrf.as_bytes())) {
            return Ok(());
        }
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: "The form was not sent from this session (CSRF check failed); reload the page and try again.".into(),
        })
    }

    /// A state-changing form: its CSRF token, then the role it needs.
    pub fn authorize(&self, presented: &str, needed: Role) -> Result<(), Refusal> {
        self.check_csrf(presented)?;
        self.require(needed)
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Whether the browser reached us over HTTPS (through a proxy that says so): cookies are then
/// marked `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(
    name: &str,
    value: String,
    max_age: Duration,
    secure: bool,
) -> (header::HeaderName, String) {
    let c = Cookie::build((name.to_owned(), value))
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build();
    (header::SET_COOKIE, c.to_string())
}

impl FromRequestParts<ApiState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let unauthenticated = || {
            if parts.method == axum::http::Method::GET {
                Redirect::to("/console/login").into_response()
            } else {
                problem(StatusCode::FORBIDDEN, "You are not signed in.")
            }
        };
        let Some(token) = cookie_value(&parts.headers, COOKIE) else {
            return Err(unauthenticated());
        };
        let user = match state.front.console_session(&token).await {
            Ok(Some(user)) => user,
            Ok(None) => return Err(unauthenticated()),
            Err(e) => return Err(super::layout::store_problem(e)),
        };
        // The same per-caller request budget as the API's.
        if state.limiter.check(&user.name).is_err() {
            return Err(problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests for this key; wait a moment.",
            ));
        }
        let client_addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string());
        let actor = Actor {
            name: user.name.clone(),
            role: user.role,
            client_addr,
        };
        Ok(Session { user, token, actor })
    }
}

/// The login form, with a fresh CSRF token in its own cookie.
pub async fn login_form(headers: HeaderMap) -> Response {
    let token = random();
    let body = page(
        "Sign in",
        None,
        html! {
            form.login method="post" action="/console/login" {
                input type="hidden" name="_csrf" value=(token);
                label for="credential" { "API key or JWT" }
                input #credential type="password" name="credential" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    );
    (
        [set_cookie(
            LOGIN_COOKIE,
            token,
            Duration::from_secs(3600),
            over_tls(&headers),
        )],
        body,
    )
        .into_response()
}

fn random() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
pub struct LoginForm {
    credential: String,
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// Checks the credential as the API would, opens a session, sets its cookie.
pub async fn login(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return problem(
            StatusCode::FORBIDDEN,
            "The sign-in form expired; reload it and try again.",
        );
    }
    let ip = peer.ip().to_string();
    let caller = match crate::auth::authenticate(&state, form.credential.trim(), &ip).await {
        Ok(who) => who,
        Err(crate::error::ApiError::RateLimited { .. }) => {
            return problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins from this address; wait a little.",
            );
        }
        Err(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                page(
                    "Sign in",
                    None,
                    html! {
                        p.error role="alert" { "That key or token is not valid." }
                        p { a href="/console/login" { "Try again" } }
                    },
                ),
            )
                .into_response();
        }
    };
    let actor = Actor {
        name: caller.name,
        role: caller.role,
        client_addr: Some(peer.to_string()),
    };
    // A session never outlives its credential: a JWT's ends at the token's `exp`.
    let ttl = caller
        .expires_at
        .map(|exp| {
            exp.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        })
        .map_or(SESSION_TTL, |left| left.min(SESSION_TTL));
    match state
        .front
        .open_console_session(&actor, caller.key_id, ttl)
        .await
    {
        Ok(login) => (
            StatusCode::SEE_OTHER,
            // Two cookies: the headers are appended (an array would keep only the last).
            AppendHeaders([
                set_cookie(COOKIE, login.token, ttl, over_tls(&headers)),
                set_cookie(
                    LOGIN_COOKIE,
                    String::new(),
                    Duration::ZERO,
                    over_tls(&headers),
                ),
                (header::LOCATION, "/console".to_owned()),
            ]),
        )
            .into_response(),
        Err(e) => super::layout::store_problem(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(rename = "_csrf")]
    pub csrf: String,
}

/// Ends the session and clears its cookie.
pub async fn logout(
    State(state): State<ApiState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&form.csrf) {
        return r.into_response();
    }
    if let Err(e) = state
        .front
        .close_console_session(&session.actor, &session.token)
        .await
    {
        return super::layout::store_problem(e);
    }
    (
        StatusCode::SEE_OTHER,
        [
            set_cookie(COOKIE, String::new(), Duration::ZERO, over_tls(&headers)),
            (header::LOCATION, "/console/login".to_owned()),
        ],
    )
        .into_response()
}
