//! Enqueue: ids from the global counter, then one atomic script per queue.

use std::collections::BTreeMap;

use cowans_core::{
    JobId, QueueName, Wakeup,
    queue::{Enqueued, NewJob, QueueError, QueueResult},
};

use crate::{
    RedisDriver, scripts,
    value::{bad, int, items},
};

pub(crate) async fn enqueue(d: &RedisDriver, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
    for (i, job) in jobs.iter().enumerate() {
        job.validate(Some(i))?;
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut payloads = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        payloads.push(
            serde_json::to_string(&job.args)
                .map_err(|e| QueueError::invalid(format!("jobs[{i}].args"), e.to_string()))?,
        );
    }
    let names: Vec<String> = jobs.iter().map(|j| j.queue.to_string()).collect();
    let first = int(
        &d.run(&scripts::IDS, &d.global(), &names).await?,
        "first id",
    )?;
    let mut groups: BTreeMap<&QueueName, Vec<usize>> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        groups.entry(&job.queue).or_default().push(i);
    }
    let channel = d.channel();
    let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
    for (queue, idx) in groups {
        let top = idx.iter().map(|&i| jobs[i].priority).max().unwrap_or(0);
        let mut args = vec![
            channel.clone(),
            Wakeup::Enqueued {
                queue: queue.clone(),
                priority: i32::from(top),
            }
            .encode(),
            Wakeup::Scheduled {
                queue: queue.clone(),
            }
            .encode(),
            queue.to_string(),
            idx.len().to_string(),
        ];
        for &i in &idx {
            let job = &jobs[i];
            args.extend([
                (first + i as i64).to_string(),
                job.kind.clone(),
                payloads[i].clone(),
                job.priority.to_string(),
                job.run_at
                    .map(|t| t.timestamp_millis().to_string())
                    .unwrap_or_default(),
                job.max_attempts.to_string(),
                job.unique
                    .as_ref()
                    .map(|u| u.key.clone())
                    .unwrap_or_default(),
                job.unique
                    .as_ref()
                    .map(|u| u.mask().to_string())
                    .unwrap_or_default(),
                job.rate_key.clone().unwrap_or_default(),
            ]);
        }
        let reply = d
            .run(&scripts::ENQUEUE, &d.qkey(queue.as_str()), &args)
            .await?;
        let a = items(&reply)?;
        if a.len() != idx.len() * 2 {
            return Err(bad(format!(
                "enqueue answered {} values for {} jobs",
                a.len(),
                idx.len()
            )));
        }
        for (k, &i) in idx.iter().enumerate() {
            out[i] = Some(Enqueued {
                id: JobId(int(&a[2 * k], "job id")?),
                duplicate: int(&a[2 * k + 1], "duplicate")? == 1,
            });
        }
    }
    out.into_iter()
        .map(|e| e.ok_or_else(|| bad("a job got no enqueue result")))
        .collect()
}
