//! The leader's index upkeep: reads the size of the job table's hot indexes, exports it, and
//! rebuilds one that has bloated (see `cowans_store::rebuild_index`) in a task of its own, so a
//! rebuild waiting for a long transaction to end never holds up the rescuer, cron or pruning.

use std::{collections::HashMap, time::Duration};

use tokio::{task::JoinHandle, time::Instant};

use crate::{engine::EngineInner, metrics};

/// How often the sizes are read.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// The least time between two rebuilds of one index: a rebuild reads the whole table.
const REBUILD_GAP: Duration = Duration::from_secs(600);
/// No rebuild starts while a transaction holds a snapshot older than this.
const OLD_SNAPSHOT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct IndexUpkeep {
    checked: Option<Instant>,
    rebuilt: HashMap<&'static str, Instant>,
    running: Option<JoinHandle<()>>,
}

impl IndexUpkeep {
    /// One look, on the leader's housekeeping pass: cheap unless a rebuild is due.
    pub(crate) async fn pass(&mut self, engine: &EngineInner) {
        if self.running.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.running = None;
        if self.checked.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
            return;
        }
        self.checked = Some(Instant::now());
        let sizes = match cowans_store::index_sizes(&engine.pool).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the job indexes' sizes");
                return;
            }
        };
        for s in &sizes {
            metrics::index_bytes(&s.name, s.bytes);
        }
        let min = engine.config.index_rebuild_min_bytes;
        if min == 0 {
            return;
        }
        let min = i64::try_from(min).unwrap_or(i64::MAX);
        let due = sizes.iter().find_map(|s| {
            let name = cowans_store::UPKEPT_INDEXES
                .into_iter()
                .find(|n| *n == s.name)?;
            let recent = self
                .rebuilt
                .get(name)
                .is_some_and(|t| t.elapsed() < REBUILD_GAP);
            (s.bloated(min) && !recent).then_some((name, s.clone()))
        });
        let Some((name, size)) = due else { return };
        self.rebuilt.insert(name, Instant::now());
        tracing::info!(
            index = name,
            bytes = size.bytes,
            entries = size.entries,
            "rebuilding a bloated index (REINDEX CONCURRENTLY; waits for older transactions)"
        );
        let options = (*engine.pool.connect_options()).clone();
        self.running = Some(tokio::spawn(async move {
            match cowans_store::rebuild_index(&options, name, OLD_SNAPSHOT).await {
                Ok(cowans_store::Rebuild::Done { before, after }) => {
                    metrics::index_rebuilt(name);
                    metrics::index_bytes(name, after);
                    tracing::info!(index = name, before, after, "index rebuilt");
                }
                Ok(cowans_store::Rebuild::Busy) => {
                    tracing::info!(index = name, "another process is rebuilding an index")
                }
                Ok(cowans_store::Rebuild::SnapshotHeld) => tracing::info!(
                    index = name,
                    "not rebuilt: a transaction holds an old snapshot (the copy would bloat too)"
                ),
                Err(e) => tracing::warn!(index = name, error = %e, "index rebuild failed"),
            }
        }));
    }

    /// Stops a rebuild in progress (the server cancels it when its connection closes; the next
    /// rebuild clears what it left).
    pub(crate) fn stop(&mut self) {
        if let Some(t) = self.running.take() {
            t.abort();
        }
    }
}
