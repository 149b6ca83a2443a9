//! The demo producer: a mix of the demo kinds on one queue, then a progress line a second until
//! every job has finished.

use std::time::{Duration, Instant};

use cowans_core::{JobState, QueueName};
use cowans_queue::{FrontDoor, NewJob, StoreError};
use serde_json::json;

/// Enqueues `jobs` demo jobs on `queue` and prints progress until they are all final.
pub async fn run(front: &FrontDoor, queue: QueueName, jobs: usize) -> Result<(), StoreError> {
    let batch: Vec<NewJob> = (0..jobs)
        .map(|i| {
            let (kind, args) = match i % 10 {
                0 => ("demo.fail", json!({"times": 1})),
                1 => (
                    "demo.effect",
                    json!({"key": format!("demo-{i}"), "sleep_ms": 5}),
                ),
                2..=4 => ("demo.sleep", json!({"ms": 20})),
                _ => ("demo.noop", json!({})),
            };
            NewJob::new(queue.clone(), kind, args).priority((i % 3) as i16)
        })
        .collect();
    let started = Instant::now();
    let ids = front.enqueue_many(&batch).await?;
    println!(
        "enqueued {} demo jobs on queue {queue} in {:?}",
        ids.len(),
        started.elapsed()
    );
    let first = ids.first().map_or(0, |i| i.id.0);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let counts = front.count_by_state(&queue).await?;
        let line: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{s}={n}"))
            .collect();
        println!(
            "[{:>5.1}s] {}",
            started.elapsed().as_secs_f64(),
            line.join(" ")
        );
        let open: i64 = counts
            .iter()
            .filter(|(s, _)| !s.is_final())
            .map(|(_, n)| *n)
            .sum();
        if open == 0 {
            let done = counts
                .iter()
                .find(|(s, _)| *s == JobState::Completed)
                .map_or(0, |(_, n)| *n);
            println!(
                "all demo jobs finished ({done} completed in queue {queue} so far; this run's ids start at {first})"
            );
            return Ok(());
        }
    }
}
