//! The applications this build carries. Settings choose which run (`apps = [...]`); the worker
//! and the API assemble the same [`JobSet`] from them, so a kind the API accepts is a kind the
//! workers run.

use cowans_queue::{App, AppContext, JobSet, JobSetError, PgPool};

use crate::Settings;
use sqlx::migrate::Migrator;

/// Every application compiled into the Cowans binaries.
pub const AVAILABLE: &[App] = &[cowans_catalog::APP, cowans_demo::APP];

/// What the applications of this build may ask their context for: their settings, and the
/// catalog's Shopify budgets in Redis when `catalog.budgets = "redis"`.
pub async fn context(settings: &Settings, pool: &PgPool) -> Result<AppContext, JobSetError> {
    let ctx = AppContext::new(pool.clone()).with(settings.catalog.clone());
    let budgets = crate::backends::catalog_budgets(settings)
        .await
        .map_err(|e| JobSetError::App {
            app: "catalog".into(),
            problem: format!("catalog.budgets: {e:#}"),
        })?;
    Ok(match budgets {
        Some(b) => ctx.with(b),
        None => ctx,
    })
}

/// The job set of the applications `settings.apps` names, picked from `available`, after the
/// start-up checks of those that have one (the catalog: every shop's secret opens with the
/// configured keys). Errors name the application and what to do.
pub async fn assemble(
    available: &[App],
    settings: &Settings,
    pool: &PgPool,
) -> Result<JobSet, JobSetError> {
    let ctx = context(settings, pool).await?;
    let jobs = JobSet::assemble(available, &settings.apps, &ctx)?;
    if jobs.apps().contains(&cowans_catalog::APP.name) {
        let front = cowans_queue::FrontDoor::builder(pool.clone()).build();
        let failed = |problem: String| JobSetError::App {
            app: "catalog".into(),
            problem,
        };
        let catalog = cowans_catalog::Catalog::new(front, &settings.catalog)
            .map_err(|e| failed(e.to_string()))?;
        catalog.verify_keys().await.map_err(failed)?;
        catalog
            .install_dead_watch()
            .await
            .map_err(|e| failed(format!("installing the dead-letter watch: {e}")))?;
    }
    Ok(jobs)
}

/// The migrations a process applies (the enabled applications') and those it knows (every
/// application's of the build, so a database that another process migrated with more
/// applications enabled is not mistaken for a newer one).
#[derive(Debug, Clone, Default)]
pub struct Migrations {
    pub run: Vec<&'static Migrator>,
    pub known: Vec<&'static Migrator>,
}

/// The migrations of the applications named in `enabled`, picked from `available` (before a
/// pool exists: migrations run while connecting).
pub fn migrations(available: &[App], enabled: &[String]) -> Result<Migrations, JobSetError> {
    let mut run = Vec::new();
    for name in enabled {
        run.extend(App::find(available, name)?.migrations);
    }
    let known = available.iter().filter_map(|a| a.migrations).collect();
    Ok(Migrations { run, known })
}
