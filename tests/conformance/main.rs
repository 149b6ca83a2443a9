//! The conformance suite: every queue-semantics case is written once, against
//! `cowans_core::queue::Driver`, and run against each backend (`postgres::*`, `redis::*`). A
//! backend is a queue backend of Cowans when it passes all of them.
//!
//! Cases talk to the driver as the engine does (enqueue, claim, ack, heartbeat, rescue,
//! promote, control, wake-ups) and inspect through it (`job`, `count_by_state`), so nothing
//! here knows how a backend stores a job.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod backends;
mod cases;

/// Generates one `#[tokio::test]` per case and backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let h = crate::backends::Harness::postgres().await;
                    crate::cases::$case(&h).await;
                    h.close().await;
                }
            )*
        }
    };
}

conformance!(
    claims_come_in_priority_then_enqueue_order,
    a_claim_never_takes_more_than_asked_and_each_job_once,
    delayed_jobs_run_only_once_due,
    acks_are_fenced_by_the_lease,
    heartbeats_keep_a_lease_and_expired_ones_are_rescued,
    a_lost_last_attempt_becomes_a_dead_letter,
    failures_retry_with_their_backoff_then_dead_letter_with_history,
    dead_letters_are_redriven_with_fresh_attempts,
    a_released_job_runs_again_without_counting_the_attempt,
    unique_keys_hold_while_waiting_or_running,
    cancel_stops_waiting_and_running_jobs_and_tells_the_handler,
    a_paused_queue_gives_nothing_until_resumed,
    enqueues_wake_listeners,
    one_leader_at_a_time,
    retention_prunes_finished_jobs,
    stats_count_jobs_by_state,
    a_bad_job_refuses_the_whole_enqueue,
);
