//! The page frame (navigation, who is signed in, sign-out form) and small shared pieces.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use cowans_core::Role;
use cowans_queue::StoreError;
use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// A whole page: `session` adds the navigation and the sign-out form.
pub fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Cowans" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "Cowans" }
                    @if let Some(s) = session {
                        nav {
                            a href="/console" { "Queues" }
                            a href="/console/jobs" { "Jobs" }
                            a href="/console/dead" { "Dead letters" }
                            a href="/console/batches" { "Batches" }
                            a href="/console/shops" { "Shops" }
                            @if s.user.role >= cowans_core::Role::Admin { a href="/console/audit" { "Audit" } }
                            a href="/console/errors" { "Errors" }
                        }
                        form.signout method="post" action="/console/logout" {
                            span.who { (s.user.name) " (" (s.user.role) ")" }
                            (csrf(s))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="_csrf" value=(s.user.csrf); }
}

/// A one-button form posting to `action` (a control: shown only to roles that may use it).
pub fn action_button(s: &Session, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(s))
            button type="submit" { (label) }
        }
    }
}

/// An error page with `status`.
pub fn problem(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        page(title, None, html! { p.error role="alert" { (message) } p { a href="/console" { "Back to the console" } } }),
    )
        .into_response()
}

/// A request the console refuses, shown as an error page.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Input the console cannot use (422), naming the field in `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        problem(self.status, &self.message)
    }
}

/// A store error as a page: what the user can act on, never database text.
pub fn store_problem(e: StoreError) -> Response {
    match e {
        StoreError::NotFound { what } => problem(StatusCode::NOT_FOUND, &format!("No {what}.")),
        StoreError::Invalid { field, message } => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("{field} {message}"),
        ),
        StoreError::Conflict { message, .. } => problem(StatusCode::CONFLICT, &message),
        other => {
            tracing::error!(error = %other, "console request failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer; try again.",
            )
        }
    }
}

/// An operator's action from a form: the CSRF token and the role first, then `action`, then
/// back to `then` (or an error page).
pub async fn operator_action<T>(
    session: &Session,
    csrf: &str,
    then: &str,
    action: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Response {
    if let Err(r) = session.authorize(csrf, Role::Operator) {
        return r.into_response();
    }
    match action.await {
        Ok(_) => Redirect::to(then).into_response(),
        Err(e) => store_problem(e),
    }
}

/// What a path segment or query value must not carry as is.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'?');

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// A queue name from a path or form, or a refusal naming it.
pub fn queue_name(q: &str) -> Result<cowans_core::QueueName, Refusal> {
    cowans_core::QueueName::new(q)
        .map_err(|_| Refusal::invalid(format!("queue: {q:?} is not a queue name.")))
}

/// A catalog field's value as text: a string as it is, nothing as a muted dash, anything else
/// as compact JSON.
pub fn value_text(v: &serde_json::Value) -> Markup {
    match v {
        serde_json::Value::Null => html! { span.muted { "—" } },
        serde_json::Value::String(s) => html! { (s) },
        other => html! { (other.to_string()) },
    }
}

/// A query value given and not blank.
pub fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A whole number from a query value (`None` when absent or blank); a refusal naming `field`
/// otherwise — query values are taken as text so that a bad one is a page, not a bare 400.
pub fn number(field: &str, v: &Option<String>) -> Result<Option<i64>, Refusal> {
    nonempty(v)
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| Refusal::invalid(format!("{field}: {s:?} is not a whole number.")))
        })
        .transpose()
}

/// A time as the console shows it (UTC, to the second).
pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
