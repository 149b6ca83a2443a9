//! Streaming bulk submit: NDJSON in, inserted in chunks while the body arrives, one result line
//! per input line out. Memory is bounded by one chunk of jobs plus one id per job.

use axum::{
    body::Body,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult},
    routes::jobs::SubmitJob,
};

/// Most jobs in one NDJSON request.
pub const MAX_NDJSON_JOBS: usize = 100_000;
/// Most bytes in one line.
pub const MAX_LINE: usize = 1 << 20;
const CHUNK: usize = 5_000;

enum Outcome {
    Inserted(i64, bool),
    Failed(Value),
}

pub async fn submit(state: &ApiState, who: &Principal, body: Body) -> ApiResult<Response> {
    let mut stream = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut batch = Chunk::default();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut line_no = 0usize;
    let mut handle_line =
        |line: &[u8], batch: &mut Chunk, outcomes: &mut Vec<Outcome>| -> ApiResult<()> {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let n = line_no;
            line_no += 1;
            if line_no > MAX_NDJSON_JOBS {
                return Err(ApiError::invalid(
                    "body",
                    format!("more than {MAX_NDJSON_JOBS} jobs in one request"),
                ));
            }
            let parsed = serde_json::from_slice::<SubmitJob>(line)
                .map_err(|e| ApiError::invalid(&format!("line {n}"), e.to_string()))
                .and_then(|j| j.into_new_job(&format!("line {n}"), &state.kinds));
            outcomes.push(Outcome::Failed(Value::Null));
            match parsed {
                Ok(job) => {
                    batch.lines.push(n);
                    batch.jobs.push(job);
                }
                Err(e) => {
                    outcomes[n] = Outcome::Failed(json!({ "code": e.code, "message": e.message }))
                }
            }
            Ok(())
        };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::invalid("body", format!("the body could not be read: {e}")))?;
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            handle_line(&pending[start..start + nl], &mut batch, &mut outcomes)?;
            start += nl + 1;
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE {
            return Err(ApiError::invalid(
                "body",
                format!("a line is longer than {MAX_LINE} bytes"),
            ));
        }
        if batch.jobs.len() >= CHUNK {
            flush(state, &mut batch, &mut outcomes).await?;
        }
    }
    let last = std::mem::take(&mut pending);
    handle_line(&last, &mut batch, &mut outcomes)?;
    flush(state, &mut batch, &mut outcomes).await?;
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    crate::audit(
        state,
        who,
        "jobs.submit_ndjson",
        None,
        json!({ "lines": outcomes.len(), "failed": failed }),
    )
    .await;
    // The answer is written 1,000 lines at a time as the client reads it, from the outcome list
    // (a few bytes per job), never as one big string.
    let lines = futures::stream::unfold((outcomes, 0usize), |(outcomes, from)| async move {
        if from >= outcomes.len() {
            return None;
        }
        let to = (from + 1000).min(outcomes.len());
        let mut s = String::new();
        for (i, o) in outcomes[from..to].iter().enumerate() {
            let line = from + i;
            let v = match o {
                Outcome::Inserted(id, dup) => json!({ "line": line, "id": id, "duplicate": dup }),
                Outcome::Failed(e) => json!({ "line": line, "error": e }),
            };
            s.push_str(&v.to_string());
            s.push('\n');
        }
        Some((Ok::<_, std::convert::Infallible>(s), (outcomes, to)))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Jobs parsed and not yet inserted, with their input line numbers.
#[derive(Default)]
struct Chunk {
    lines: Vec<usize>,
    jobs: Vec<cowans_store::NewJob>,
}

async fn flush(state: &ApiState, batch: &mut Chunk, outcomes: &mut [Outcome]) -> ApiResult<()> {
    if batch.jobs.is_empty() {
        return Ok(());
    }
    let done = cowans_store::enqueue_autocommit(&state.pool, &batch.jobs).await?;
    for (n, d) in batch.lines.iter().zip(done) {
        outcomes[*n] = Outcome::Inserted(d.id.0, d.duplicate);
    }
    batch.lines.clear();
    batch.jobs.clear();
    Ok(())
}
