//! Jobs: the list with filters (queue, state, kind, batch), a job's payload and attempts with
//! each one's error, cancel and retry.

use axum::{
    extract::{Form, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use cowans_core::{JobId, JobState, Role};
use cowans_queue::JobFilter;
use maud::html;
use serde::Deserialize;

use super::{
    layout::{
        action_button, nonempty, number, operator_action, page, problem, store_problem, urlencode,
    },
    session::{CsrfForm, Session},
};
use crate::{ApiState, routes::ApiPath};

#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    queue: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    batch: Option<String>,
    after: Option<String>,
}

const JOBS_PAGE: i64 = 100;

/// Jobs by queue, state and kind, 100 a page.
pub async fn jobs(
    State(state): State<ApiState>,
    session: Session,
    Query(q): Query<JobsQuery>,
) -> Response {
    let (batch, after) = match (number("batch", &q.batch), number("after", &q.after)) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let job_state = match nonempty(&q.state) {
        None => None,
        Some(s) => match JobState::parse(&s) {
            Some(st) => Some(st),
            None => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("There is no job state {s:?}."),
                );
            }
        },
    };
    let filter = JobFilter {
        queue: nonempty(&q.queue),
        state: job_state,
        kind: nonempty(&q.kind),
        batch,
    };
    let found = match state.front.jobs(&filter, after.map(JobId), JOBS_PAGE).await {
        Ok(j) => j,
        Err(e) => return store_problem(e),
    };
    let next = (found.len() as i64 == JOBS_PAGE)
        .then(|| found.last().map(|j| j.id.0))
        .flatten();
    let body = html! {
        form.filters method="get" action="/console/jobs" {
            label { "queue " input name="queue" value=[filter.queue.as_deref()]; }
            label { "state "
                select name="state" {
                    option value="" { "any" }
                    @for s in JobState::ALL.map(JobState::as_str) {
                        option value=(s) selected[q.state.as_deref() == Some(s)] { (s) }
                    }
                }
            }
            label { "kind " input name="kind" value=[filter.kind.as_deref()]; }
            label { "batch " input name="batch" type="number" min="1" value=[filter.batch]; }
            button type="submit" { "Filter" }
        }
        table.jobs {
            thead { tr { th { "id" } th { "queue" } th { "kind" } th { "state" } th { "attempt" } th { "run at" } } }
            tbody {
                @for j in &found {
                    tr {
                        td { a href={ "/console/jobs/" (j.id.0) } { (j.id.0) } }
                        td { (j.queue) }
                        td { (j.kind) }
                        td { span class={ "state " (j.state.as_str()) } { (j.state.as_str()) } }
                        td.num { (j.attempt) "/" (j.max_attempts) }
                        td { (j.run_at.format("%Y-%m-%d %H:%M:%S")) }
                    }
                }
            }
        }
        @if found.is_empty() { p { "No job matches." } }
        @if let Some(after) = next {
            p { a href={ "/console/jobs?queue=" (urlencode(filter.queue.as_deref().unwrap_or(""))) "&state=" (q.state.as_deref().unwrap_or("")) "&kind=" (urlencode(filter.kind.as_deref().unwrap_or(""))) "&batch=" (filter.batch.map(|b| b.to_string()).unwrap_or_default()) "&after=" (after) } { "Next page" } }
        }
    };
    page("Jobs", Some(&session), body).into_response()
}

/// One job: its payload, each attempt's error, cancel and retry.
pub async fn job(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
) -> Response {
    let j = match state.front.job(JobId(id)).await {
        Ok(j) => j,
        Err(e) => return store_problem(e),
    };
    let operator = session.user.role >= Role::Operator;
    let args = serde_json::to_string_pretty(&j.args).unwrap_or_default();
    let body = html! {
        dl.job {
            dt { "queue" } dd { (j.queue) }
            dt { "kind" } dd { (j.kind) }
            dt { "state" } dd { span class={ "state " (j.state.as_str()) } { (j.state.as_str()) } }
            dt { "attempt" } dd { (j.attempt) " of " (j.max_attempts) }
            dt { "priority" } dd { (j.priority) }
            dt { "run at" } dd { (j.run_at.to_rfc3339()) }
            dt { "created" } dd { (j.created_at.to_rfc3339()) }
            @if let Some(k) = &j.unique_key { dt { "unique key" } dd { (k) } }
            @if let Some(b) = j.batch_id { dt { "batch" } dd { (b) } }
        }
        h2 { "Payload" }
        pre.payload { (args) }
        h2 { "Attempts" }
        @if j.errors.is_empty() { p { "No failed attempt." } }
        @else {
            ol.attempts {
                @for e in &j.errors {
                    li { span.when { "attempt " (e.attempt) ", " (e.at.to_rfc3339()) } pre.error { (e.error) } }
                }
            }
        }
        @if operator {
            div.controls {
                @if matches!(j.state, JobState::Available | JobState::Scheduled | JobState::Running) {
                    (action_button(&session, &format!("/console/jobs/{id}/cancel"), "Cancel"))
                }
                @if matches!(j.state, JobState::Dead | JobState::Cancelled) {
                    (action_button(&session, &format!("/console/jobs/{id}/retry"), "Retry"))
                }
            }
        }
    };
    page(&format!("Job {id}"), Some(&session), body).into_response()
}

pub async fn cancel_job(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let then = format!("/console/jobs/{id}");
    operator_action(
        &session,
        &form.csrf,
        &then,
        state.front.cancel(&session.actor, JobId(id)),
    )
    .await
}

pub async fn retry_job(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let then = format!("/console/jobs/{id}");
    operator_action(
        &session,
        &form.csrf,
        &then,
        state.front.retry(&session.actor, JobId(id)),
    )
    .await
}
