//! Queues: every queue's counts by state, throughput and oldest wait (with sparklines the
//! page's script draws from its refreshes), workers, paused state and fleet-wide limits;
//! pause, resume and setting limits for operators.

use axum::{
    extract::{Form, State},
    response::{IntoResponse, Response},
};
use cowans_core::{QueueName, Role, queue::QueueControl};
use cowans_queue::{QueueStats, RateLimit};
use maud::{Markup, html};

use super::{
    form::FormFields,
    layout::{
        Refusal, action_button, csrf, operator_action, page, queue_name, store_problem, urlencode,
    },
    session::{CsrfForm, Session},
};
use crate::{ApiState, routes::ApiPath};

/// A queue's limits in a few words.
fn limits_text(c: &QueueControl) -> String {
    let mut parts = Vec::new();
    if let Some(n) = c.concurrency_limit {
        parts.push(format!("≤{n} running"));
    }
    if let Some(r) = &c.rate {
        let per = if r.by_key { " per key" } else { "" };
        parts.push(format!("{}/{} ms{per}", r.jobs, r.period.as_millis()));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The summary of every queue with its limits.
async fn queues_with_limits(
    state: &ApiState,
) -> cowans_queue::StoreResult<Vec<(QueueStats, Option<QueueControl>)>> {
    let stats = state.front.queues().await?;
    let mut rows = Vec::with_capacity(stats.len());
    for s in stats {
        // A name the leader counted is a queue name; a backend that does not answer shows "?".
        let control = match QueueName::new(&s.queue) {
            Ok(name) => state.front.limits(&name).await.ok(),
            Err(_) => None,
        };
        rows.push((s, control));
    }
    Ok(rows)
}

fn queue_rows_markup(session: &Session, rows: &[(QueueStats, Option<QueueControl>)]) -> Markup {
    let operator = session.user.role >= Role::Operator;
    html! {
        @for (q, control) in rows {
            tr data-queue=(q.queue) data-done=(q.completed_last_minute) data-wait=(format!("{:.1}", q.oldest_available_age_secs)) {
                td { a href={ "/console/jobs?queue=" (urlencode(&q.queue)) } { (q.queue) } }
                td.num { (q.available) }
                td.num { (q.scheduled) }
                td.num { (q.running) }
                td.num { a href={ "/console/dead?queue=" (urlencode(&q.queue)) } { (q.dead) } }
                td.num { (q.completed_last_minute) }
                td.num { (format!("{:.0}", q.oldest_available_age_secs)) }
                td.spark {}
                td.num { (q.workers) }
                td { @if q.paused { span.badge.paused { "paused" } } @else { "running" } }
                td.limits { @match control { Some(c) => (limits_text(c)), None => "?" } }
                @if operator {
                    td {
                        @if q.paused {
                            (action_button(session, &format!("/console/queues/{}/resume", urlencode(&q.queue)), "Resume"))
                        } @else {
                            (action_button(session, &format!("/console/queues/{}/pause", urlencode(&q.queue)), "Pause"))
                        }
                        " "
                        a href={ "/console/queues/" (urlencode(&q.queue)) "/limits" } { "limits" }
                    }
                }
            }
        }
    }
}

/// Every queue with its counts; the table's body refreshes itself (console.js) from
/// [`queue_rows`], and the script draws each row's throughput and wait sparklines from the
/// refreshes it has seen.
pub async fn overview(State(state): State<ApiState>, session: Session) -> Response {
    let rows = match queues_with_limits(&state).await {
        Ok(r) => r,
        Err(e) => return store_problem(e),
    };
    let operator = session.user.role >= Role::Operator;
    let body = html! {
        table.queues {
            thead { tr {
                th { "queue" } th { "available" } th { "scheduled" } th { "running" } th { "dead" }
                th { "done/min" } th { "oldest wait (s)" } th { "trend" } th { "workers" } th { "state" } th { "limits" }
                @if operator { th { "control" } }
            } }
            tbody data-live="/console/live/queues" { (queue_rows_markup(&session, &rows)) }
        }
        p.muted { "Trend: done per minute (blue) and oldest wait (orange) since this page opened." }
    };
    page("Queues", Some(&session), body).into_response()
}

/// The queues table's rows (the overview's live part).
pub async fn queue_rows(State(state): State<ApiState>, session: Session) -> Response {
    match queues_with_limits(&state).await {
        Ok(rows) => queue_rows_markup(&session, &rows).into_response(),
        Err(e) => store_problem(e),
    }
}

/// The form setting a queue's fleet-wide limits, filled with the ones in force.
pub async fn limits_form(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(queue): ApiPath<String>,
) -> Response {
    if let Err(r) = session.require(Role::Operator) {
        return r.into_response();
    }
    let name = match queue_name(&queue) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    let c = match state.front.limits(&name).await {
        Ok(c) => c,
        Err(e) => return store_problem(e),
    };
    let body = html! {
        p { "Across every worker of the fleet. Leave a field empty to remove that limit." }
        form.limits method="post" action={ "/console/queues/" (urlencode(&queue)) "/limits" } {
            (csrf(&session))
            label { "most running at once " input name="concurrency_limit" type="number" min="1" value=[c.concurrency_limit]; }
            label { "at most " input name="rate_jobs" type="number" min="1" value=[c.rate.as_ref().map(|r| r.jobs)]; " jobs" }
            label { "per " input name="rate_period_ms" type="number" min="1" value=[c.rate.as_ref().map(|r| r.period.as_millis())]; " ms" }
            label { input name="rate_by_key" type="checkbox" value="1" checked[c.rate.as_ref().is_some_and(|r| r.by_key)]; " per job rate key" }
            button type="submit" { "Set limits" }
        }
    };
    page(&format!("Limits · {queue}"), Some(&session), body).into_response()
}

/// A whole number from the form (`None` when blank), or a refusal naming `field`. Its range is
/// checked with the rest of the limits, by the front door.
fn whole<T: std::str::FromStr>(form: &FormFields, field: &str) -> Result<Option<T>, Refusal> {
    form.get(field)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                Refusal::invalid(format!("{field}: {v:?} is not a whole number in range."))
            })
        })
        .transpose()
}

pub async fn set_limits(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(queue): ApiPath<String>,
    form: FormFields,
) -> Response {
    let parsed = (|| -> Result<_, Refusal> {
        Ok((
            queue_name(&queue)?,
            whole::<u32>(&form, "concurrency_limit")?,
            whole::<u32>(&form, "rate_jobs")?,
            whole::<u64>(&form, "rate_period_ms")?,
        ))
    })();
    let (name, concurrency, jobs, period_ms) = match parsed {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let rate = match RateLimit::from_fields(jobs, period_ms, form.get("rate_by_key").is_some()) {
        Ok(r) => r,
        Err(e) => return store_problem(e.into()),
    };
    let action = state
        .front
        .set_limits(&session.actor, &name, concurrency, rate);
    operator_action(&session, form.csrf(), "/console", action).await
}

async fn set_paused(
    state: &ApiState,
    session: &Session,
    queue: &str,
    form: &CsrfForm,
    paused: bool,
) -> Response {
    let name = match queue_name(queue) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    let action = state.front.set_paused(&session.actor, &name, paused);
    operator_action(session, &form.csrf, "/console", action).await
}

pub async fn pause_queue(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(queue): ApiPath<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    set_paused(&state, &session, &queue, &form, true).await
}

pub async fn resume_queue(
    State(state): State<ApiState>,
    session: Session,
    ApiPath(queue): ApiPath<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    set_paused(&state, &session, &queue, &form, false).await
}
