//! The applications this build carries. Settings choose which run (`apps = [...]`); the worker
//! and the API assemble the same [`JobSet`] from them, so a kind the API accepts is a kind the
//! workers run.

use cowans_queue::{App, AppContext, JobSet, JobSetError, PgPool};
use sqlx::migrate::Migrator;

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
