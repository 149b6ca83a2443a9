//! Operator commands on the queues, through the front door: every change is audited (actor
//! `cli:<os user>`) and announced exactly as the same action over the API.

use std::time::Duration;

use clap::Subcommand;
use cowans_core::{Actor, JobId, QueueName};
use cowans_queue::{FrontDoor, RateLimit};

#[derive(Subcommand)]
pub enum Ctl {
    /// Print every queue's summary (counts by state, oldest wait, throughput, paused, workers).
    Queues,
    /// Stop every worker from claiming jobs of a queue (survives restarts).
    Pause { queue: String },
    /// Let workers claim from a paused queue again.
    Resume { queue: String },
    /// Set a queue's fleet-wide limits; without options, remove them.
    Limit {
        queue: String,
        /// Most jobs of the queue running at once across all workers.
        #[arg(long)]
        concurrency: Option<u32>,
        /// At most this many jobs start per `--per-ms`...
        #[arg(long)]
        rate: Option<u32>,
        #[arg(long, default_value_t = 1000)]
        per_ms: u64,
        /// ...per job rate key instead of for the whole queue.
        #[arg(long)]
        by_key: bool,
    },
    /// Cancel jobs (waiting ones at once; running ones are told to stop, result discarded).
    Cancel { ids: Vec<i64> },
}

/// The front door `ctl` acts through (no applications needed: operator actions are the
/// engine's).
pub async fn front_door(settings: &cowans_service::Settings) -> anyhow::Result<FrontDoor> {
    // Operator actions are the engine's: no application's tables are needed.
    let engine_only = cowans_service::apps::migrations(cowans_service::apps::AVAILABLE, &[])?;
    let pool = cowans_service::database::connect(&settings.database, &engine_only).await?;
    Ok(cowans_service::backends::front_door(settings, &pool)
        .await?
        .build())
}

/// Runs one command as `actor`.
pub async fn run(front: &FrontDoor, actor: &Actor, ctl: Ctl) -> anyhow::Result<()> {
    match ctl {
        Ctl::Queues => {
            front.refresh_queue_stats().await?;
            let stats = front.queues().await?;
            println!(
                "{:<24} {:>9} {:>9} {:>8} {:>10} {:>9} {:>7} {:>9} {:>8} {:>6} {:>7}",
                "queue",
                "available",
                "scheduled",
                "running",
                "completed",
                "cancelled",
                "dead",
                "oldest_s",
                "done/min",
                "paused",
                "workers"
            );
            for s in stats {
                println!(
                    "{:<24} {:>9} {:>9} {:>8} {:>10} {:>9} {:>7} {:>9.1} {:>8} {:>6} {:>7}",
                    s.queue,
                    s.available,
                    s.scheduled,
                    s.running,
                    s.completed,
                    s.cancelled,
                    s.dead,
                    s.oldest_available_age_secs,
                    s.completed_last_minute,
                    s.paused,
                    s.workers
                );
            }
        }
        Ctl::Pause { queue } => {
            let queue = QueueName::new(queue)?;
            front.set_paused(actor, &queue, true).await?;
            println!("queue {queue} paused");
        }
        Ctl::Resume { queue } => {
            let queue = QueueName::new(queue)?;
            front.set_paused(actor, &queue, false).await?;
            println!("queue {queue} resumed");
        }
        Ctl::Limit {
            queue,
            concurrency,
            rate,
            per_ms,
            by_key,
        } => {
            let queue = QueueName::new(queue)?;
            let rate = rate.map(|jobs| RateLimit {
                jobs,
                period: Duration::from_millis(per_ms),
                by_key,
            });
            front.set_limits(actor, &queue, concurrency, rate).await?;
            println!("queue {queue}: concurrency limit {concurrency:?}, rate limit {rate:?}");
        }
        Ctl::Cancel { ids } => {
            let ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
            let done = front.cancel_many(actor, &ids).await?;
            for c in &done {
                println!("job {} cancelled (was {})", c.id, c.was);
            }
            if done.len() < ids.len() {
                println!(
                    "{} job(s) were already finished or do not exist",
                    ids.len() - done.len()
                );
            }
        }
    }
    Ok(())
}
