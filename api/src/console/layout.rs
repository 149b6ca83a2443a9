//! The page frame (navigation, who is signed in, sign-out form) and small shared pieces.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
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

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        problem(self.status, &self.message)
    }
}
