//! Enqueue: ids from the blocks this process holds (see [`crate::route`]), then one atomic
//! script per queue.

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
    match enqueue_once(d, jobs).await {
        // The ids this process held are taken (the server lost the blocks counter's writes):
        // a refused script wrote nothing, so with one queue the call starts over on new blocks.
        Err(e) if e.to_string().contains("IDS_TAKEN") && one_queue(jobs) => {
            tracing::warn!(error = %e, "job ids already in use; taking new id blocks");
            d.forget_routes();
            enqueue_once(d, jobs).await
        }
        other => other,
    }
}

fn one_queue(jobs: &[NewJob]) -> bool {
    jobs.iter().all(|j| j.queue == jobs[0].queue)
}

async fn enqueue_once(d: &RedisDriver, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
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
    // One script per queue: its jobs share one `now` (their run_at when due), so they are
    // claimed in the call's order.
    let mut groups: BTreeMap<&QueueName, Vec<usize>> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        groups.entry(&job.queue).or_default().push(i);
    }
    let mut ids: Vec<i64> = vec![0; jobs.len()];
    for (queue, idx) in &groups {
        for (&i, id) in idx.iter().zip(d.take_ids(queue.as_str(), idx.len()).await?) {
            ids[i] = id;
        }
    }
    let channel = d.channel();
    let calls = groups.into_iter().map(|(queue, idx)| {
        // A job's batch id is an argument only in calls with batch jobs (the common bulk
        // enqueue pays nothing for batches).
        let batched = idx.iter().any(|&i| jobs[i].batch_id.is_some());
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
            if batched { "1" } else { "0" }.to_owned(),
        ];
        for &i in &idx {
            let job = &jobs[i];
            args.extend([
                ids[i].to_string(),
                job.kind.clone(),
                std::mem::take(&mut payloads[i]),
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
            if batched {
                args.push(job.batch_id.map(|b| b.to_string()).unwrap_or_default());
            }
        }
        async move {
            let reply = d
                .run(&scripts::ENQUEUE, &d.qkey(queue.as_str()), &args)
                .await;
            (idx, reply)
        }
    });
    // The queues' scripts at once (the connection pipelines them); each is all or none.
    let replies = futures::future::join_all(calls).await;
    let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
    let mut failure = None;
    for (idx, reply) in replies {
        let answered = reply.and_then(|r| {
            let a = items(&r)?.to_vec();
            if a.len() != idx.len() * 2 {
                return Err(bad(format!(
                    "enqueue answered {} values for {} jobs",
                    a.len(),
                    idx.len()
                )));
            }
            Ok(a)
        });
        let a = match answered {
            Ok(a) => a,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        for (k, &i) in idx.iter().enumerate() {
            out[i] = Some(Enqueued {
                id: JobId(int(&a[2 * k], "job id")?),
                duplicate: int(&a[2 * k + 1], "duplicate")? == 1,
            });
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    out.into_iter()
        .map(|e| e.ok_or_else(|| bad("a job got no enqueue result")))
        .collect()
}
