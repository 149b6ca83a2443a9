//! The audit log (admins, as in the API) and the error groups: failed attempts grouped by kind
//! and error pattern.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use cowans_core::{Role, error_groups::CLASSES};
use maud::html;
use serde::Deserialize;

use super::{
    layout::{nonempty, number, page, problem, store_problem, urlencode, when},
    session::Session,
};
use crate::ApiState;

const PAGE: i64 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    before: Option<String>,
}

pub async fn audit(
    State(state): State<ApiState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Err(r) = session.require(Role::Admin) {
        return r.into_response();
    }
    let before = match number("before", &q.before) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let entries = match state.front.audit_log(before, PAGE).await {
        Ok(e) => e,
        Err(e) => return store_problem(e),
    };
    let next = (entries.len() as i64 == PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let body = html! {
        table.audit {
            thead { tr { th { "at" } th { "who" } th { "role" } th { "action" } th { "target" } th { "from" } th { "details" } } }
            tbody {
                @for e in &entries {
                    tr data-action=(e.action) {
                        td { (when(&e.at)) }
                        td { (e.actor) }
                        td { (e.role) }
                        td { (e.action) }
                        td { (e.target.as_deref().unwrap_or("")) }
                        td { (e.client_addr.as_deref().unwrap_or("")) }
                        td.details { code { (e.details.to_string()) } }
                    }
                }
            }
        }
        @if entries.is_empty() { p { "Nothing audited yet." } }
        @if let Some(before) = next { p { a href={ "/console/audit?before=" (before) } { "Older entries" } } }
    };
    page("Audit log", Some(&session), body).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorsQuery {
    kind: Option<String>,
    class: Option<String>,
}

pub async fn errors(
    State(state): State<ApiState>,
    session: Session,
    Query(q): Query<ErrorsQuery>,
) -> Response {
    let kind = nonempty(&q.kind);
    let class = nonempty(&q.class);
    if let Some(c) = &class
        && !CLASSES.contains(&c.as_str())
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("class: {c:?} is not one of {}.", CLASSES.join(", ")),
        );
    }
    let groups = match state
        .front
        .error_groups(kind.as_deref(), class.as_deref(), PAGE)
        .await
    {
        Ok(g) => g,
        Err(e) => return store_problem(e),
    };
    let body = html! {
        form.filters method="get" action="/console/errors" {
            label { "kind " input name="kind" value=[kind.as_deref()]; }
            label { "class "
                select name="class" {
                    option value="" { "any" }
                    @for c in CLASSES { option value=(c) selected[class.as_deref() == Some(c)] { (c) } }
                }
            }
            button type="submit" { "Filter" }
        }
        table.errors {
            thead { tr { th { "kind" } th { "class" } th { "pattern" } th { "count" } th { "first seen" } th { "last seen" } th { "latest" } } }
            tbody {
                @for g in &groups {
                    tr {
                        td { (g.kind) }
                        td { (g.class) }
                        td.error { (g.pattern) }
                        td.num { (g.count) }
                        td { (when(&g.first_seen)) }
                        td { (when(&g.last_seen)) }
                        td {
                            a href={ "/console/jobs/" (g.last_job_id.0) } { "job " (g.last_job_id.0) } " in " (g.last_queue)
                            " · " a href={ "/console/dead?queue=" (urlencode(&g.last_queue)) "&kind=" (urlencode(&g.kind)) } { "dead letters" }
                        }
                    }
                }
            }
        }
        @if groups.is_empty() { p { "No failure recorded." } }
    };
    page("Error groups", Some(&session), body).into_response()
}
