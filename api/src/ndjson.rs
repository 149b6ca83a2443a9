//! Streaming bulk submit: NDJSON in, inserted in chunks while the body arrives, one result line
//! per input line out. Memory is bounded by one chunk of jobs plus one id per job.

use axum::{
    body::Body,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use cowans_queue::BulkSource;
use futures::StreamExt;

use crate::{
    ApiState,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorDetail},
    routes::jobs::{NdjsonResult, SubmitJob},
};

/// Most jobs in one NDJSON request.
pub const MAX_NDJSON_JOBS: usize = 100_000;
/// Most bytes in one line.
pub const MAX_LINE: usize = 1 << 20;
const CHUNK: usize = 5_000;

enum Outcome {
    Inserted(i64, bool),
    Failed(ErrorDetail),
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
                .map_err(|e| ApiError::invalid(format!("line {n}"), e.to_string()))
                .and_then(|j| {
                    j.into_job(&state.front)
                        .map_err(|e| e.at(&format!("line {n}")))
                });
            match parsed {
                Ok(job) => {
                    // Answered once its chunk is inserted.
                    outcomes.push(Outcome::Inserted(0, false));
                    batch.lines.push(n);
                    batch.jobs.push(job);
                }
                Err(e) => outcomes.push(Outcome::Failed(e.body())),
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
            flush(state, who, &mut batch, &mut outcomes).await?;
        }
    }
    let last = std::mem::take(&mut pending);
    handle_line(&last, &mut batch, &mut outcomes)?;
    flush(state, who, &mut batch, &mut outcomes).await?;
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
            let r = match o {
                Outcome::Inserted(id, dup) => NdjsonResult {
                    line,
                    id: Some(*id),
                    duplicate: Some(*dup),
                    error: None,
                },
                Outcome::Failed(e) => NdjsonResult {
                    line,
                    id: None,
                    duplicate: None,
                    error: Some(e.clone()),
                },
            };
            if let Ok(text) = serde_json::to_string(&r) {
                s.push_str(&text);
                s.push('\n');
            }
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
    jobs: Vec<cowans_queue::NewJob>,
}

/// Inserts a chunk with its audit entry (one transaction per chunk: a chunk committed is a
/// chunk audited, even if the client goes away before the end of its stream).
async fn flush(
    state: &ApiState,
    who: &Principal,
    batch: &mut Chunk,
    outcomes: &mut [Outcome],
) -> ApiResult<()> {
    if batch.jobs.is_empty() {
        return Ok(());
    }
    let done = state
        .front
        .submit_many(&who.actor, BulkSource::NdjsonChunk, &batch.jobs)
        .await?;
    for (n, d) in batch.lines.iter().zip(done) {
        outcomes[*n] = Outcome::Inserted(d.id.0, d.duplicate);
    }
    batch.lines.clear();
    batch.jobs.clear();
    Ok(())
}
