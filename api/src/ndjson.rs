//! Bulk submit as NDJSON: one job per line, up to 100,000 lines in at most 16 MiB.
//!
//! The contract: all or nothing per request, with a result per line. Lines are checked and
//! inserted while the body streams in (5,000 per statement, so memory stays bounded by a chunk),
//! all into one transaction that commits only once the whole body has arrived within its limits.
//! A refused request (413 beyond the limits, 422 for more than 100,000 lines, 408 when the
//! upload stalls, the client going away, a database failure) leaves no job behind, so retrying
//! it cannot duplicate any. An accepted one answers one line per input line: the job's id, or
//! that line's own error (a bad line does not refuse the others).

use axum::{
    body::Body,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use cowans_queue::{BulkSource, BulkSubmit};

use crate::{
    ApiState, BODY_LIMIT,
    auth::Principal,
    error::{ApiError, ApiResult, ErrorDetail},
    input::{BodyReader, refuse_nul},
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

/// What has been read so far.
struct Progress<'a> {
    state: &'a ApiState,
    outcomes: Vec<Outcome>,
    lines: Vec<usize>,
    jobs: Vec<cowans_queue::NewJob>,
    open: Option<BulkSubmit>,
}

impl Progress<'_> {
    fn line(&mut self, raw: &[u8]) -> ApiResult<()> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let n = self.outcomes.len();
        if n >= MAX_NDJSON_JOBS {
            return Err(ApiError::invalid(
                "body",
                format!("more than {MAX_NDJSON_JOBS} jobs in one request; none was inserted"),
            ));
        }
        match parse_line(self.state, raw, n) {
            Ok(job) => {
                // Answered once inserted.
                self.outcomes.push(Outcome::Inserted(0, false));
                self.lines.push(n);
                self.jobs.push(job);
            }
            Err(e) => self.outcomes.push(Outcome::Failed(e.body())),
        }
        Ok(())
    }

    async fn flush(&mut self) -> ApiResult<()> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        let bulk = match &mut self.open {
            Some(b) => b,
            None => self.open.insert(self.state.front.bulk_submit().await?),
        };
        let done = bulk.add(&self.jobs).await?;
        for (n, d) in self.lines.iter().zip(done) {
            self.outcomes[*n] = Outcome::Inserted(d.id.0, d.duplicate);
        }
        self.lines.clear();
        self.jobs.clear();
        Ok(())
    }
}

pub async fn submit(state: &ApiState, who: &Principal, body: Body) -> ApiResult<Response> {
    let mut reader = BodyReader::new(body, BODY_LIMIT, "; none of it was inserted");
    let mut progress = Progress {
        state,
        outcomes: Vec::new(),
        lines: Vec::new(),
        jobs: Vec::new(),
        open: None,
    };
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = reader.next().await? {
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
            progress.line(&pending[start..start + nl])?;
            start += nl + 1;
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE {
            return Err(ApiError::TooLarge(format!(
                "a line is longer than {MAX_LINE} bytes; none of the body was inserted"
            )));
        }
        if progress.jobs.len() >= CHUNK {
            progress.flush().await?;
        }
    }
    progress.line(&std::mem::take(&mut pending))?;
    progress.flush().await?;
    if let Some(bulk) = progress.open.take() {
        bulk.commit(&who.actor, BulkSource::Ndjson).await?;
    }
    let outcomes = progress.outcomes;
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

/// One line as a job ready to insert, or its error with the field under `line <n>`.
fn parse_line(state: &ApiState, raw: &[u8], n: usize) -> ApiResult<cowans_queue::NewJob> {
    let at = format!("line {n}");
    if raw.len() > MAX_LINE {
        return Err(ApiError::invalid(
            at,
            format!("is {} bytes long; a line may have {MAX_LINE}", raw.len()),
        ));
    }
    refuse_nul(raw, "").map_err(|e| e.at(&at))?;
    let job: SubmitJob = crate::input::parse_json(raw, &at)?;
    let job = job.into_job(&state.front).map_err(|e| e.at(&at))?;
    job.check()
        .map_err(|e| ApiError::from(cowans_queue::StoreError::from(e)).at(&at))?;
    Ok(job)
}
