//! Batches: the newest first, each with a progress bar and its counts by state, kept moving by
//! the live event stream (`batch.progress`, `batch.finished`); an operator cancels an open one.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use cowans_core::{JobState, Role};
use cowans_queue::BatchProgress;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    form::FormFields,
    layout::{action_button, number, operator_action, page, store_problem, when},
    session::Session,
};
use crate::{ApiState, routes::ApiPath};

const PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct BatchesQuery {
    before: Option<String>,
}

/// Jobs of a batch that are final: completed, dead or cancelled.
fn done(b: &BatchProgress) -> i64 {
    [JobState::Completed, JobState::Dead, JobState::Cancelled]
        .into_iter()
        .map(|s| b.count(s))
        .sum()
}

/// "3 completed · 1 dead · 2 running …": the non-zero counts.
fn counts_text(b: &BatchProgress) -> String {
    let parts: Vec<String> = JobState::ALL
        .into_iter()
        .map(|s| (s, b.count(s)))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    if parts.is_empty() {
        "no job yet".to_owned()
    } else {
        parts.join(" · ")
    }
}

fn status(b: &BatchProgress) -> &'static str {
    match (b.cancelled_at, b.finished_at) {
        (Some(_), _) => "cancelled",
        (None, Some(_)) => "finished",
        (None, None) => "running",
    }
}

fn row(session: &Session, b: &BatchProgress) -> Markup {
    let operator = session.user.role >= Role::Operator;
    html! {
        tr data-batch-row=(b.id) {
            td { a href={ "/console/jobs?batch=" (b.id) } { (b.id) } }
            td { (b.description) }
            td.progress {
                progress data-batch=(b.id) max=(b.total.max(1)) value=(done(b)) {}
                " "
                span.num data-batch-done=(b.id) { (done(b)) "/" (b.total) }
            }
            td data-batch-counts=(b.id) { (counts_text(b)) }
            td data-batch-status=(b.id) { (status(b)) }
            td { (when(&b.created_at)) }
            @if operator {
                td { @if status(b) == "running" { (action_button(session, &format!("/console/batches/{}/cancel", b.id), "Cancel")) } }
            }
        }
    }
}

pub async fn list(
    State(state): State<ApiState>,
    session: Session,
    Query(q): Query<BatchesQuery>,
) -> Response {
    let before = match number("before", &q.before) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let found = match state.front.batches(before, PAGE).await {
        Ok(f) => f,
        Err(e) => return store_problem(e),
    };
    let operator = session.user.role >= Role::Operator;
    let next = (found.len() as i64 == PAGE)
        .then(|| found.last().map(|b| b.id))
        .flatten();
    let body = html! {
        table.batches data-events="" {
            thead { tr {
                th { "id" } th { "description" } th { "progress" } th { "jobs" } th { "state" } th { "created" }
                @if operator { th { "control" } }
            } }
            tbody { @for b in &found { (row(&session, b)) } }
        }
        @if found.is_empty() { p { "No batch yet." } }
        @if let Some(before) = next { p { a href={ "/console/batches?before=" (before) } { "Older batches" } } }
    };
    page("Batches", Some(&session), body).into_response()
}

pub async fn cancel(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
    form: FormFields,
) -> Response {
    let action = state.front.cancel_batch(&session.actor, id);
    operator_action(&session, form.csrf(), "/console/batches", action).await
}
