//! The web console at `/console`: server-rendered HTML (maud escapes every value it writes, so a
//! product title or a job's payload is always text), one small script for the live parts, both
//! compiled into the binary. Signing in with an API key (or a JWT) opens a session kept in an
//! HttpOnly, SameSite=Strict cookie; every state-changing form carries the session's CSRF
//! token; every response carries a strict Content-Security-Policy (no inline script or style).
//! Actions go through the same [`FrontDoor`](cowans_queue::FrontDoor) calls as the API, as the
//! signed-in user, and controls a role may not use are neither shown nor accepted.

mod audit;
mod batches;
mod bulk_edit;
mod dead;
mod form;
mod jobs;
mod layout;
mod live;
mod queues;
mod review;
mod session;
mod shops;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};

use crate::ApiState;

pub use session::{COOKIE, SESSION_TTL};

/// The console's routes, under `/console`.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/console", get(queues::overview))
        .route("/console/live/queues", get(queues::queue_rows))
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/jobs", get(jobs::jobs))
        .route("/console/jobs/{id}", get(jobs::job))
        .route("/console/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/console/jobs/{id}/retry", post(jobs::retry_job))
        .route("/console/queues/{queue}/pause", post(queues::pause_queue))
        .route("/console/queues/{queue}/resume", post(queues::resume_queue))
        .route(
            "/console/queues/{queue}/limits",
            get(queues::limits_form).post(queues::set_limits),
        )
        .route("/console/live/events", get(live::events))
        .route("/console/dead", get(dead::list))
        .route("/console/dead/redrive", post(dead::redrive))
        .route(
            "/console/dead/purge",
            get(dead::confirm_purge).post(dead::purge),
        )
        .route("/console/batches", get(batches::list))
        .route("/console/batches/{id}/cancel", post(batches::cancel))
        .route("/console/shops", get(shops::list))
        .route("/console/shops/{id}/pull", post(shops::start_pull))
        .route("/console/live/shops/{id}", get(shops::card))
        .route("/console/shops/{id}/changes", get(review::list))
        .route("/console/shops/{id}/changes/decide", post(review::decide))
        .route(
            "/console/shops/{id}/changes/decide-matching",
            post(review::decide_matching),
        )
        .route(
            "/console/shops/{id}/changes/{change}/resolve",
            post(review::resolve),
        )
        .route(
            "/console/shops/{id}/bulk-edit",
            get(bulk_edit::form).post(bulk_edit::start),
        )
        .route(
            "/console/shops/{id}/bulk-edit/preview",
            post(bulk_edit::preview),
        )
        .route("/console/audit", get(audit::audit))
        .route("/console/errors", get(audit::errors))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .layer(axum::middleware::map_response(security_headers))
}

/// No inline script or style, nothing from elsewhere, no framing; pages are never cached.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}
