//! The conformance suite: every queue-semantics case is written once, against
//! `cowans_core::queue::Driver`, and run against each backend (`postgres::*`, `redis::*`, `redis_cluster::*`). A
//! backend is a queue backend of Cowans when it passes all of them. Redis runs twice: on one
//! server (`redis::*`) and on a 3-primary Redis Cluster started per test (`redis_cluster::*`).
//!
//! Cases talk to the driver as the engine does (enqueue, claim, ack, heartbeat, rescue,
//! promote, control, wake-ups) and inspect through it (`job`, `count_by_state`), so nothing
//! here knows how a backend stores a job.

// Test helpers may unwrap: a failure there is a test failure with its location.
#![allow(clippy::unwrap_used)]

mod backends;
mod cases;
mod cluster;
mod engine_cases;

/// Generates one `#[tokio::test]` per case and backend.
macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let h = crate::backends::Harness::postgres().await;
                    crate::$module::$case(&h).await;
                    h.close().await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let h = crate::backends::Harness::redis().await;
                    crate::$module::$case(&h).await;
                    h.close().await;
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test]
                async fn $case() {
                    let h = crate::backends::Harness::redis_cluster().await;
                    crate::$module::$case(&h).await;
                    h.close().await;
                }
            )*
        }
    };
}

conformance!(
    cases::claims_come_in_priority_then_enqueue_order,
    cases::claims_order_by_due_time_within_a_priority,
    cases::a_claim_never_takes_more_than_asked_and_each_job_once,
    cases::delayed_jobs_run_only_once_due,
    cases::acks_are_fenced_by_the_lease,
    cases::heartbeats_keep_a_lease_and_expired_ones_are_rescued,
    cases::a_lost_last_attempt_becomes_a_dead_letter,
    cases::failures_retry_with_their_backoff_then_dead_letter_with_history,
    cases::dead_letters_are_redriven_with_fresh_attempts,
    cases::jobs_are_listed_in_id_order_by_state_and_kind_and_dead_letters_purged,
    cases::fleet_limits_hold_across_holders_and_free_on_release_or_expiry,
    cases::a_released_job_runs_again_without_counting_the_attempt,
    cases::a_deferred_job_waits_without_counting_the_attempt,
    cases::unique_keys_hold_while_waiting_or_running,
    cases::cancel_stops_waiting_and_running_jobs_and_tells_the_handler,
    cases::a_paused_queue_gives_nothing_until_resumed,
    cases::enqueues_wake_listeners,
    cases::one_leader_at_a_time,
    cases::stale_workers_are_forgotten,
    cases::retention_prunes_finished_jobs,
    cases::batch_counts_follow_their_jobs_and_survive_deletion,
    cases::stats_count_jobs_by_state,
    cases::a_bad_job_refuses_the_whole_enqueue,
    engine_cases::the_engine_runs_retries_and_dead_letters_jobs,
    engine_cases::shutdown_drains_running_jobs_and_hands_back_the_rest,
);
