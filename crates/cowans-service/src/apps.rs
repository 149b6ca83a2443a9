//! The applications this build carries. Settings choose which run (`apps = [...]`); the worker
//! and the API assemble the same [`JobSet`] from them, so a kind the API accepts is a kind the
//! workers run.

use cowans_queue::{App, AppContext, JobSet, JobSetError, PgPool};

/// Every application compiled into the Cowans binaries.
pub const AVAILABLE: &[App] = &[cowans_demo::APP];

/// The job set of the applications named in `enabled`, picked from `available`.
pub fn assemble(
    available: &[App],
    enabled: &[String],
    pool: &PgPool,
) -> Result<JobSet, JobSetError> {
    JobSet::assemble(available, enabled, &AppContext::new(pool.clone()))
}

/// The migrators of the applications named in `enabled` (before a pool exists: migrations run
/// while connecting).
pub fn migrations(
    available: &[App],
    enabled: &[String],
) -> Result<Vec<&'static sqlx::migrate::Migrator>, JobSetError> {
    let mut migrations = Vec::new();
    for name in enabled {
        migrations.extend(App::find(available, name)?.migrations);
    }
    Ok(migrations)
}
