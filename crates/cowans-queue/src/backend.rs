//! `PgBackend`: the apalis `Backend` over the Postgres store, and `AckLayer`, the middleware that
//! turns each attempt's result into an ack.

use std::{
    any::Any,
    marker::PhantomData,
    panic::AssertUnwindSafe,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral},
    error::{AbortError, BoxDynError, RetryAfterError},
    task::Task,
    worker::context::WorkerContext,
};
use cowans_core::{Failure, JobError, JobOutcome};
use futures::{FutureExt, future::BoxFuture};
use serde::de::DeserializeOwned;
use tower::{Layer, Service};

use crate::{
    JobMeta, QueueConfig,
    completer::Ack,
    engine::EngineInner,
    in_flight::Slots,
    listener::QueueSignal,
    producer::{self, Handoff},
};

/// The backend of one apalis worker consuming one queue. Build it with [`crate::Engine::backend`].
///
/// `Args` is the handler's payload type; a job whose payload does not decode into it goes to the
/// dead-letter set with the decode error. Consume a queue that carries several kinds with
/// `Args = serde_json::Value` and a [`crate::KindRouter`].
pub struct PgBackend<Args> {
    engine: Arc<EngineInner>,
    queue: QueueConfig,
    handoff: Arc<Handoff<Args>>,
    signal: Option<Arc<QueueSignal>>,
    closing: Option<BoxFuture<'static, ()>>,
    closed: bool,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> PgBackend<Args> {
    pub(crate) fn new(engine: Arc<EngineInner>, queue: QueueConfig) -> Self {
        Self {
            handoff: Arc::new(Handoff::new(queue.concurrency, &engine.stop_claiming)),
            engine,
            queue,
            signal: None,
            closing: None,
            closed: false,
            _args: PhantomData,
        }
    }
}

impl<Args> Backend for PgBackend<Args>
where
    Args: DeserializeOwned + Send + Sync + 'static,
{
    type Task = Task<Args>;
    type Error = std::convert::Infallible;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.signal.is_none() {
            // First poll: the worker is running. Start this queue's producer.
            let signal = self.engine.signals.subscribe(self.queue.queue.as_str());
            self.signal = Some(signal.clone());
            self.engine.backend_opened(worker);
            let task = tokio::spawn(producer::run(
                self.engine.clone(),
                self.queue.clone(),
                self.handoff.clone(),
                signal,
            ));
            self.engine.spawn(task);
            let name: std::sync::Arc<str> = std::sync::Arc::from(self.queue.queue.as_str());
            match self.queue.autoscale {
                Some(a) => self.engine.spawn(tokio::spawn(crate::autoscale::run(
                    name,
                    a,
                    self.handoff.slots.clone(),
                    self.handoff.stop.clone(),
                ))),
                None => {
                    crate::metrics::concurrency_target(&name).set(self.queue.concurrency as f64)
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        // Database trouble never surfaces here (the producer retries), so the apalis worker
        // never stops on a backend error.
        if self.handoff.stop.is_cancelled() {
            return Poll::Ready(None);
        }
        let slots = &self.handoff.slots;
        slots.waker.register(cx.waker());
        // Claimed ahead: buffered jobs start only while fewer than `concurrency` run.
        let next = {
            let mut buffer = self.handoff.buffer();
            if slots.may_start(buffer.tasks.len()) {
                buffer.tasks.pop_front()
            } else {
                None
            }
        };
        match next {
            Some(task) => Poll::Ready(Some(Ok(task))),
            None if self.handoff.stop.is_cancelled() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        if self.closing.is_none() {
            // Stop this queue's producer and hand back what it claimed but apalis never started.
            self.handoff.stop.cancel();
            let unstarted: Vec<_> = {
                let mut buffer = self.handoff.buffer();
                buffer.closed = true;
                buffer.tasks.drain(..).collect()
            };
            let engine = self.engine.clone();
            let handoff = self.handoff.clone();
            self.closing = Some(
                async move { producer::hand_back(&engine, &handoff.slots, unstarted).await }
                    .boxed(),
            );
        }
        let closing = self.closing.as_mut().expect("set just above");
        match closing.poll_unpin(cx) {
            Poll::Ready(()) => {
                self.closed = true;
                if self.signal.is_some() {
                    self.engine.backend_closed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<Args> BackendConfig for PgBackend<Args> {
    type Args = Args;
    type Id = i64;
    // Tasks leave the backend already decoded (decode failures are dead-lettered inside it), so
    // apalis needs no codec stage that would stop the worker on a bad payload.
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.queue
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        AckLayer {
            engine: self.engine.clone(),
            slots: self.handoff.slots.clone(),
            queue: self.queue.clone(),
        }
    }
}

/// Observes every attempt (after the user's own middleware) and acks it: success completes the
/// job; an error retries it per the queue's policy or dead-letters it; a panic is an error like
/// any other and never takes the worker down.
#[derive(Clone)]
pub struct AckLayer {
    engine: Arc<EngineInner>,
    slots: Arc<Slots>,
    queue: QueueConfig,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    layer: AckLayer,
}

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let meta = task.data().get::<JobMeta>().cloned();
        let fut = self.inner.call(task);
        let layer = self.layer.clone();
        async move {
            let Some(meta) = meta else {
                return fut.await.map_err(Into::into);
            };
            let mut attempt = AttemptGuard {
                layer,
                meta,
                started: Instant::now(),
                settled: false,
            };
            let result = run_attempt(fut, &attempt.meta, &attempt.layer).await;
            let outcome = match &result {
                Ok(_) => JobOutcome::Completed,
                Err(e) => JobOutcome::after_failure(
                    classify(e.as_ref()),
                    attempt.meta.attempt,
                    attempt.meta.max_attempts,
                    attempt.layer.queue.policy_for(&attempt.meta.kind),
                    rand::random::<f64>(),
                ),
            };
            attempt.settle(outcome).await;
            result
        }
        .boxed()
    }
}

/// Runs one attempt's future to its end, its timeout, or (once the job is cancelled) the end of
/// the cancel grace, whichever comes first. A panic is an error like any other.
async fn run_attempt<F, R, E>(fut: F, meta: &JobMeta, layer: &AckLayer) -> Result<R, BoxDynError>
where
    F: std::future::Future<Output = Result<R, E>>,
    E: Into<BoxDynError>,
{
    let run = AssertUnwindSafe(fut).catch_unwind();
    let timeout = layer.queue.timeout_of(&meta.kind);
    let grace = layer.engine.config.cancel_grace;
    let timer = async {
        match timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let abandoned = async {
        meta.cancel.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = run => match r {
            Ok(r) => r.map_err(Into::into),
            Err(panic) => Err(format!("handler panicked: {}", panic_message(&*panic)).into()),
        },
        _ = timer => {
            // Tell anything the handler spawned, then drop the attempt.
            meta.cancel.cancel();
            Err(format!("timed out after {:?}", timeout.unwrap_or_default()).into())
        }
        _ = abandoned => Err(format!(
            "cancelled: the handler did not stop within {grace:?} of being told to; it was dropped"
        )
        .into()),
    }
}

/// Tracks one running attempt; if its future is dropped unfinished (shutdown past its deadline)
/// the job stays registered so the engine hands it back.
struct AttemptGuard {
    layer: AckLayer,
    meta: JobMeta,
    started: Instant,
    settled: bool,
}

impl AttemptGuard {
    async fn settle(&mut self, outcome: JobOutcome) {
        self.meta.metrics.finished(self.started.elapsed());
        if let JobOutcome::Retry { error, .. } | JobOutcome::Dead { error } = &outcome {
            tracing::warn!(job_id = %self.meta.id, kind = %self.meta.kind, attempt = self.meta.attempt, error = %error, "job attempt failed");
        }
        self.layer
            .engine
            .ack(Ack {
                lease: self.meta.lease_ref(),
                metrics: self.meta.metrics.clone(),
                attempt: self.meta.attempt,
                completed_in_tx: self.meta.was_completed_in_tx(),
                permit: self.meta.permit.clone(),
                outcome,
            })
            .await;
        self.settled = true;
        self.layer.slots.ran(self.started.elapsed());
        self.layer.slots.release(1);
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.meta.metrics.finished(self.started.elapsed());
            self.layer.slots.release(1);
        }
    }
}

/// Reads what the handler asked for out of its error: ours (`JobError`) or apalis' own
/// (`AbortError` = permanent, `RetryAfterError` = retry after a delay).
fn classify(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Failure {
    if let Some(j) = e.downcast_ref::<JobError>() {
        return match j {
            JobError::Retry {
                error,
                after: Some(d),
            } => Failure::RetryAfter(error.clone(), *d),
            JobError::Retry { error, after: None } => Failure::Error(error.clone()),
            JobError::Permanent { error } => Failure::Permanent(error.clone()),
        };
    }
    if e.downcast_ref::<AbortError>().is_some() {
        return Failure::Permanent(e.to_string());
    }
    if let Some(r) = e.downcast_ref::<RetryAfterError>() {
        return Failure::RetryAfter(e.to_string(), r.get_duration());
    }
    Failure::Error(e.to_string())
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn of(e: impl Into<BoxDynError>) -> Failure {
        let e: BoxDynError = e.into();
        classify(e.as_ref())
    }

    #[test]
    fn handler_errors_say_how_the_attempt_failed() {
        assert_eq!(
            of(JobError::permanent("bad input")),
            Failure::Permanent("bad input".into())
        );
        assert_eq!(
            of(JobError::retry_after("busy", Duration::from_secs(3))),
            Failure::RetryAfter("busy".into(), Duration::from_secs(3))
        );
        assert_eq!(of(JobError::retry("flaky")), Failure::Error("flaky".into()));
        assert!(matches!(
            of(AbortError::new("abort")),
            Failure::Permanent(_)
        ));
        assert!(matches!(
            of(RetryAfterError::new("later", Duration::from_millis(1500))),
            Failure::RetryAfter(_, d) if d == Duration::from_millis(1500)
        ));
        assert_eq!(
            of(std::io::Error::other("disk full")),
            Failure::Error("disk full".into())
        );
    }

    #[test]
    fn panic_payloads_become_messages() {
        assert_eq!(panic_message(&"static str"), "static str");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&42_u8), "non-string panic payload");
    }
}
