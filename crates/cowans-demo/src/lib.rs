//! The demo application: job kinds for trying Cowans out and for black-box tests of the worker
//! binary, and a producer that feeds them to a queue and prints progress. Enabled with
//! `apps = ["demo"]`; production does not enable it, and its table (`cowans_demo_effects`) exists
//! only where it is.
//!
//! | kind | args | does |
//! |---|---|---|
//! | `demo.noop` | `{}` | nothing |
//! | `demo.sleep` | `{"ms": u64}` | sleeps |
//! | `demo.effect` | `{"key": str, "sleep_ms": u64}` | sleeps, then records `key` and completes the job in one transaction (exactly-once effect) |
//! | `demo.fail` | `{"times": i32, "permanent": bool, "until_redriven": bool}` | fails its first `times` attempts (permanently if asked); with `until_redriven`, fails permanently until re-driven |
//! | `demo.panic` | `{}` | panics |
//! | `demo.batch_done` | `{"batch_id": i64, "counts": {state: n}, "args": any}` | a batch's callback: logs how the batch ended |

mod producer;

use std::time::Duration;

use apalis_core::{error::BoxDynError, task::task_fn::task_fn};
use cowans_core::JobError;
use cowans_queue::{App, AppContext, JobKind, JobMeta, PgPool};
use serde::Deserialize;

pub use producer::run as run_producer;

/// The demo application.
pub const APP: App = App {
    name: "demo",
    description: "sample kinds: no-ops, sleeps, failures, panics, exactly-once effects",
    migrations: Some(&cowans_store::demo::MIGRATOR),
    kinds,
};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Noop {}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sleep {
    pub ms: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Effect {
    pub key: String,
    #[serde(default)]
    pub sleep_ms: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    #[serde(default)]
    pub times: i32,
    #[serde(default)]
    pub permanent: bool,
    /// Fail permanently until an operator re-drives the job (a re-driven job runs from the
    /// re-drive's time, later than its creation): a dead letter whose cause was since fixed.
    #[serde(default)]
    pub until_redriven: bool,
}

/// What a batch's callback job carries.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchDone {
    pub batch_id: i64,
    pub counts: std::collections::BTreeMap<String, i64>,
    #[serde(default)]
    pub args: serde_json::Value,
}

fn kinds(ctx: &AppContext) -> Result<Vec<JobKind>, String> {
    let pool = ctx.pool.clone();
    Ok(vec![
        JobKind::new(
            "demo.noop",
            "does nothing",
            task_fn(|_: Noop| async { Ok::<(), BoxDynError>(()) }),
        ),
        JobKind::new(
            "demo.sleep",
            "sleeps `ms` milliseconds",
            task_fn(|a: Sleep| async move {
                tokio::time::sleep(Duration::from_millis(a.ms)).await;
                Ok::<(), BoxDynError>(())
            }),
        ),
        JobKind::new(
            "demo.effect",
            "sleeps, then records `key` and completes the job in one transaction",
            task_fn(move |a: Effect, job: JobMeta| {
                let pool = pool.clone();
                async move { effect(pool, a, job).await }
            }),
        ),
        JobKind::new(
            "demo.fail",
            "fails its first `times` attempts (permanently if `permanent`); with `until_redriven`, until an operator re-drives it",
            task_fn(|a: Fail, job: JobMeta| async move {
                if a.until_redriven && job.run_at <= job.created_at {
                    return Err(JobError::permanent("demo failure until re-driven"));
                }
                if job.attempt <= a.times {
                    let msg = format!("demo failure on attempt {}", job.attempt);
                    return Err(if a.permanent {
                        JobError::permanent(msg)
                    } else {
                        JobError::retry(msg)
                    });
                }
                Ok(())
            }),
        ),
        JobKind::new(
            "demo.batch_done",
            "a batch's callback: logs how the batch ended",
            task_fn(|a: BatchDone| async move {
                tracing::info!(batch = a.batch_id, counts = ?a.counts, args = %a.args, "batch finished");
                Ok::<(), BoxDynError>(())
            }),
        ),
        JobKind::new(
            "demo.panic",
            "panics",
            task_fn(|_: Noop| async move {
                if std::hint::black_box(true) {
                    panic!("demo panic");
                }
                Ok::<(), BoxDynError>(())
            }),
        ),
    ])
}

/// Records the effect and completes the job in one transaction: if the lease was lost meanwhile
/// (another worker owns the job), `complete_in_tx` fails, the transaction is dropped and the
/// effect never lands.
async fn effect(pool: PgPool, a: Effect, job: JobMeta) -> Result<(), BoxDynError> {
    tokio::time::sleep(Duration::from_millis(a.sleep_ms)).await;
    let mut tx = pool.begin().await?;
    cowans_store::demo::record_effect(&mut *tx, job.id, &a.key).await?;
    job.complete_in_tx(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
