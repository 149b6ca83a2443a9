//! The Lua scripts, one per state transition, each built once and invoked by SHA (`EVALSHA`,
//! falling back to `EVAL` when the server does not have it cached yet).

use std::sync::LazyLock;

use cowans_core::{
    JobState,
    queue::{QueueResult, REDIS_FIRST_ID, state_bit},
};
use redis::{Script, Value};

use crate::{RedisDriver, value::map_err};

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// The constants the scripts share with Rust, generated so the two cannot disagree: the state
/// bits of unique keys ([`state_bit`]) and the first job id ([`REDIS_FIRST_ID`]).
fn constants() -> String {
    let fields: Vec<String> = JobState::ALL
        .iter()
        .map(|s| format!("{} = {}", s.as_str(), state_bit(*s)))
        .collect();
    format!(
        "local BIT = {{ {} }}\nlocal FIRST_ID = {REDIS_FIRST_ID}\n",
        fields.join(", ")
    )
}

fn build(body: &str) -> Script {
    Script::new(&format!("{}{PRELUDE}{body}", constants()))
}

macro_rules! scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(pub static $name: LazyLock<Script> =
            LazyLock::new(|| build(include_str!(concat!("lua/", $file))));)*
    };
}

scripts! {
    BLOCKS => "blocks.lua",
    ENQUEUE => "enqueue.lua",
    CLAIM => "claim.lua",
    COMPLETE => "complete.lua",
    SETTLE => "settle.lua",
    RELEASE => "release.lua",
    DEFER => "defer.lua",
    PROMOTE => "promote.lua",
    EXTEND => "extend.lua",
    RESCUE => "rescue.lua",
    CANCEL => "cancel.lua",
    REDRIVE => "redrive.lua",
    SET_PAUSED => "set_paused.lua",
    STATS => "stats.lua",
    PRUNE => "prune.lua",
    LIST => "list.lua",
    PURGE => "purge.lua",
    BATCH_COUNT => "batch_count.lua",
    BATCH_JOBS => "batch_jobs.lua",
    BATCH_CLOSE => "batch_close.lua",
    SET_LIMITS => "set_limits.lua",
    PERMITS_ACQUIRE => "permits_acquire.lua",
    PERMITS_RELEASE => "permits_release.lua",
    PERMITS_HOLDER => "permits_holder.lua",
    RATE_TAKE => "rate_take.lua",
    RATE_REFUND => "rate_refund.lua",
    BUDGET_RESERVE => "budget_reserve.lua",
    BUDGET_SETTLE => "budget_settle.lua",
    WORKER_SEEN => "worker_seen.lua",
    WORKERS_FORGET => "workers_forget.lua",
    WORKERS_LIVE => "workers_live.lua",
    WORKER_GONE => "worker_gone.lua",
    LEAD => "lead.lua",
    RESIGN => "resign.lua",
}

impl RedisDriver {
    /// Runs `script` with `base` (the hash-tagged base of every key it touches) as KEYS[1].
    pub(crate) async fn run(
        &self,
        script: &Script,
        base: &str,
        args: &[String],
    ) -> QueueResult<Value> {
        let mut inv = script.prepare_invoke();
        inv.key(base);
        for a in args {
            inv.arg(a);
        }
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(map_err)
    }
}
