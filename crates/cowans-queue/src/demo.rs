//! Built-in job kinds for the demo and for black-box tests of the worker binary:
//!
//! | kind | args | does |
//! |---|---|---|
//! | `demo.noop` | `{}` | nothing |
//! | `demo.sleep` | `{"ms": u64}` | sleeps |
//! | `demo.effect` | `{"key": str, "sleep_ms": u64}` | sleeps, then records `key` and completes the job in one transaction (exactly-once effect) |
//! | `demo.fail` | `{"times": i32, "permanent": bool}` | fails its first `times` attempts (permanently if asked) |
//! | `demo.panic` | `{}` | panics |

use std::time::Duration;

use apalis_core::{error::BoxDynError, task::task_fn::task_fn};
use cowans_core::{JobError, KindRegistry};
use serde::Deserialize;
use sqlx::PgPool;

use crate::{JobMeta, KindRouter};

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
    pub times: i32,
    #[serde(default)]
    pub permanent: bool,
}

/// The demo kinds with their payload types, for producers that validate before they enqueue.
pub fn kinds(registry: KindRegistry) -> KindRegistry {
    registry
        .register::<Noop>("demo.noop", "does nothing")
        .register::<Sleep>("demo.sleep", "sleeps `ms` milliseconds")
        .register::<Effect>(
            "demo.effect",
            "sleeps, then records `key` and completes the job in one transaction",
        )
        .register::<Fail>(
            "demo.fail",
            "fails its first `times` attempts (permanently if `permanent`)",
        )
        .register::<Noop>("demo.panic", "panics")
}

/// The demo kinds, ready to serve any queue.
pub fn router(pool: PgPool) -> KindRouter {
    KindRouter::new()
        .route(
            "demo.noop",
            task_fn(|_: Noop| async { Ok::<(), BoxDynError>(()) }),
        )
        .route(
            "demo.sleep",
            task_fn(|a: Sleep| async move {
                tokio::time::sleep(Duration::from_millis(a.ms)).await;
                Ok::<(), BoxDynError>(())
            }),
        )
        .route(
            "demo.effect",
            task_fn(move |a: Effect, job: JobMeta| {
                let pool = pool.clone();
                async move { effect(pool, a, job).await }
            }),
        )
        .route(
            "demo.fail",
            task_fn(|a: Fail, job: JobMeta| async move {
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
        )
        .route(
            "demo.panic",
            task_fn(|_: Noop| async move {
                if std::hint::black_box(true) {
                    panic!("demo panic");
                }
                Ok::<(), BoxDynError>(())
            }),
        )
}

async fn effect(pool: PgPool, a: Effect, job: JobMeta) -> Result<(), BoxDynError> {
    tokio::time::sleep(Duration::from_millis(a.sleep_ms)).await;
    let mut tx = pool.begin().await?;
    cowans_store::demo::record_effect(&mut *tx, job.id, &a.key).await?;
    if job.complete_in_tx(&mut *tx).await? {
        tx.commit().await?;
    } else {
        // Another worker owns the job now; our effect must not land.
        tx.rollback().await?;
    }
    Ok(())
}
