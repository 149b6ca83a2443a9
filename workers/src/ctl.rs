//! Operator commands on the queues, straight against the database: the summary, pause and
//! resume, fleet-wide limits, cancel.

use std::time::Duration;

use clap::Subcommand;
use cowans_core::JobId;
use cowans_store::{PgPool, RateLimit};

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

/// `lease_ttl`: the workers' `engine.lease_ttl` (who counts as live in `queues`).
pub async fn run(pool: PgPool, ctl: Ctl, lease_ttl: Duration) -> anyhow::Result<()> {
    match ctl {
        Ctl::Queues => {
            cowans_store::refresh_queue_stats(&pool).await?;
            let stats = cowans_store::queue_stats(&pool, None, lease_ttl).await?;
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
            cowans_core::QueueName::new(queue.clone())?;
            cowans_store::set_paused(&pool, &queue, true).await?;
            println!("queue {queue} paused");
        }
        Ctl::Resume { queue } => {
            cowans_store::set_paused(&pool, &queue, false).await?;
            println!("queue {queue} resumed");
        }
        Ctl::Limit {
            queue,
            concurrency,
            rate,
            per_ms,
            by_key,
        } => {
            cowans_core::QueueName::new(queue.clone())?;
            let rate = rate.map(|jobs| RateLimit {
                jobs,
                period: Duration::from_millis(per_ms),
                by_key,
            });
            cowans_store::set_queue_limits(&pool, &queue, concurrency, rate).await?;
            println!("queue {queue}: concurrency limit {concurrency:?}, rate limit {rate:?}");
        }
        Ctl::Cancel { ids } => {
            let ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
            let done = cowans_store::cancel_jobs(&pool, &ids).await?;
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
