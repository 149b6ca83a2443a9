//! Dead letters: by queue and kind with each one's last error; an operator re-drives the
//! selected ones or all that match, and purges them after a confirmation that names the count
//! (the purge is refused if the count changed meanwhile).

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use cowans_core::{JobId, Role};
use cowans_queue::{DeadLetterFilter, Redrive};
use maud::html;
use serde::Deserialize;

use super::{
    form::FormFields,
    layout::{
        csrf, nonempty, number, operator_action, page, problem, queue_name, store_problem,
        urlencode, when,
    },
    session::Session,
};
use crate::ApiState;

const PAGE: i64 = 100;
/// Dead letters looked through per page when filtering by error text.
const SCAN: i64 = 2000;

#[derive(Debug, Default, Deserialize)]
pub struct DeadQuery {
    queue: Option<String>,
    kind: Option<String>,
    /// Words in the last attempt's error (any case).
    error: Option<String>,
    after: Option<String>,
}

/// Where the list of `queue`'s (and `kind`'s) dead letters is.
fn list_url(queue: &str, kind: Option<&str>) -> String {
    format!(
        "/console/dead?queue={}&kind={}",
        urlencode(queue),
        urlencode(kind.unwrap_or(""))
    )
}

/// Error text cut for a table cell.
fn short(s: &str) -> String {
    const MAX: usize = 160;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

pub async fn list(
    State(state): State<ApiState>,
    session: Session,
    Query(q): Query<DeadQuery>,
) -> Response {
    let queue = nonempty(&q.queue);
    let kind = nonempty(&q.kind);
    let chosen = match queue.as_deref().map(queue_name).transpose() {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let after = match number("after", &q.after) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let filter = DeadLetterFilter {
        queue: queue.clone(),
        kind: kind.clone(),
    };
    let error = nonempty(&q.error);
    let (found, next) = match matching(&state, &filter, error.as_deref(), after).await {
        Ok(f) => f,
        Err(e) => return store_problem(e),
    };
    let queues = match state.front.queues().await {
        Ok(s) => s,
        Err(e) => return store_problem(e),
    };
    let count = match &chosen {
        Some(name) => match state.front.count_dead(name, kind.as_deref()).await {
            Ok(n) => Some(n),
            Err(e) => return store_problem(e),
        },
        None => None,
    };
    let operator = session.user.role >= Role::Operator;
    let acting = operator && chosen.is_some();
    let body = html! {
        form.filters method="get" action="/console/dead" {
            label { "queue "
                select name="queue" {
                    option value="" { "any" }
                    @for s in &queues {
                        option value=(s.queue) selected[queue.as_deref() == Some(s.queue.as_str())] {
                            (s.queue) " (" (s.dead) ")"
                        }
                    }
                }
            }
            label { "kind " input name="kind" value=[kind.as_deref()]; }
            label { "error " input name="error" value=[error.as_deref()] placeholder="words in the last error"; }
            button type="submit" { "Filter" }
        }
        @if let (Some(q), Some(n)) = (&queue, count) {
            p.count { (n) " dead letters in " (q) @if let Some(k) = &kind { " of kind " (k) } "." }
            @if operator && n > 0 && error.is_some() {
                p.hint { "Re-drive all and purge act on the queue and kind; with an error filter, select the ones to re-drive below." }
            } @else if operator && n > 0 {
                div.controls {
                    form.inline method="post" action="/console/dead/redrive" {
                        (csrf(&session))
                        input type="hidden" name="queue" value=(q);
                        input type="hidden" name="kind" value=[kind.as_deref()];
                        input type="hidden" name="all" value="1";
                        button type="submit" { "Re-drive all " (n) }
                    }
                    a.button.danger href={ "/console/dead/purge?queue=" (urlencode(q)) "&kind=" (urlencode(kind.as_deref().unwrap_or(""))) } {
                        "Purge " (n) "…"
                    }
                }
            }
        } @else if operator {
            p.hint { "Choose a queue to re-drive or purge its dead letters." }
        }
        form id="selection" method="post" action="/console/dead/redrive" {
            (csrf(&session))
            @if let Some(q) = &queue { input type="hidden" name="queue" value=(q); }
            @if let Some(k) = &kind { input type="hidden" name="kind" value=(k); }
            table.dead {
                thead { tr {
                    @if acting { th { input type="checkbox" data-select-all="" aria-label="select every one shown"; } }
                    th { "id" } th { "queue" } th { "kind" } th { "attempts" } th { "died" } th { "last error" }
                } }
                tbody {
                    @for j in &found {
                        tr data-job=(j.id.0) {
                            @if acting { td { input type="checkbox" name="id" value=(j.id.0) aria-label={ "select job " (j.id.0) }; } }
                            td { a href={ "/console/jobs/" (j.id.0) } { (j.id.0) } }
                            td { (j.queue) }
                            td { (j.kind) }
                            td.num { (j.attempt) "/" (j.max_attempts) }
                            td { @if let Some(t) = &j.finalized_at { (when(t)) } }
                            td.error { @if let Some(e) = j.errors.last() { (short(&e.error)) } }
                        }
                    }
                }
            }
            @if found.is_empty() { p { "No dead letter matches." } }
            @else if acting { div.controls { button type="submit" { "Re-drive selected" } } }
        }
        @if let Some(after) = next {
            p { a href={ (list_url(queue.as_deref().unwrap_or(""), kind.as_deref())) "&error=" (urlencode(error.as_deref().unwrap_or(""))) "&after=" (after) } { "Next page" } }
        }
    };
    page("Dead letters", Some(&session), body).into_response()
}

/// Dead letters matching `filter` after `after`, a page of them, and where the next page
/// starts; with `error`, only those whose last error contains it (any case), looking through
/// at most [`SCAN`] dead letters per page.
async fn matching(
    state: &ApiState,
    filter: &DeadLetterFilter,
    error: Option<&str>,
    after: Option<i64>,
) -> cowans_queue::StoreResult<(Vec<cowans_core::queue::JobRecord>, Option<i64>)> {
    let Some(words) = error.map(str::to_lowercase) else {
        let found = state
            .front
            .dead_letters(filter, after.map(JobId), PAGE)
            .await?;
        let next = (found.len() as i64 == PAGE)
            .then(|| found.last().map(|j| j.id.0))
            .flatten();
        return Ok((found, next));
    };
    let mut found = Vec::new();
    let mut cursor = after;
    let mut scanned = 0;
    loop {
        let page = state
            .front
            .dead_letters(filter, cursor.map(JobId), PAGE)
            .await?;
        let full = page.len() as i64 == PAGE;
        for j in page {
            scanned += 1;
            cursor = Some(j.id.0);
            let hit = j
                .errors
                .last()
                .is_some_and(|e| e.error.to_lowercase().contains(&words));
            if hit {
                found.push(j);
                if found.len() as i64 == PAGE {
                    return Ok((found, cursor));
                }
            }
        }
        if !full {
            return Ok((found, None));
        }
        if scanned >= SCAN {
            return Ok((found, cursor));
        }
    }
}

/// Re-drives the selected dead letters (`id`, repeated) or, with `all`, every one of the queue
/// (of `kind`, if given).
pub async fn redrive(
    State(state): State<ApiState>,
    session: Session,
    form: FormFields,
) -> Response {
    let Some(queue) = form.get("queue") else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "queue: choose a queue.");
    };
    let name = match queue_name(queue) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    let kind = form.get("kind").map(str::to_owned);
    let what = if form.get("all").is_some() {
        Redrive::All { kind: kind.clone() }
    } else {
        let ids = match form.ids("id") {
            Ok(ids) => ids,
            Err(r) => return r.into_response(),
        };
        if ids.is_empty() {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Select at least one dead letter to re-drive.",
            );
        }
        Redrive::Ids(ids.into_iter().map(JobId).collect())
    };
    let then = list_url(queue, kind.as_deref());
    let action = state.front.redrive(&session.actor, &name, what);
    operator_action(&session, form.csrf(), &then, action).await
}

/// The purge's confirmation: what will be deleted, and how many.
pub async fn confirm_purge(
    State(state): State<ApiState>,
    session: Session,
    Query(q): Query<DeadQuery>,
) -> Response {
    if let Err(r) = session.require(Role::Operator) {
        return r.into_response();
    }
    let Some(queue) = nonempty(&q.queue) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "queue: choose a queue.");
    };
    let name = match queue_name(&queue) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    let kind = nonempty(&q.kind);
    let n = match state.front.count_dead(&name, kind.as_deref()).await {
        Ok(n) => n,
        Err(e) => return store_problem(e),
    };
    let body = html! {
        p.warning role="alert" {
            "Delete " strong { (n) } " dead letters of queue " strong { (queue) }
            @if let Some(k) = &kind { " of kind " strong { (k) } }
            "? They cannot be brought back."
        }
        form.inline method="post" action="/console/dead/purge" {
            (csrf(&session))
            input type="hidden" name="queue" value=(queue);
            input type="hidden" name="kind" value=[kind.as_deref()];
            input type="hidden" name="expected" value=(n);
            button.danger type="submit" { "Delete " (n) " dead letters" }
        }
        " "
        a href=(list_url(&queue, kind.as_deref())) { "Keep them" }
    };
    page("Purge dead letters", Some(&session), body).into_response()
}

/// Purges the queue's dead letters (of `kind`) if there are still `expected` of them.
pub async fn purge(State(state): State<ApiState>, session: Session, form: FormFields) -> Response {
    let Some(queue) = form.get("queue") else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "queue: choose a queue.");
    };
    let name = match queue_name(queue) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    let Some(expected) = form.get("expected").and_then(|v| v.parse::<u64>().ok()) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected: the count you confirmed is missing.",
        );
    };
    let kind = form.get("kind").map(str::to_owned);
    let then = list_url(queue, kind.as_deref());
    let action = state.front.purge(&session.actor, &name, kind, expected);
    operator_action(&session, form.csrf(), &then, action).await
}
