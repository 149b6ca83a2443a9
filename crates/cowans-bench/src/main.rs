//! `cowans-bench`: throughput and latency of the Cowans engine, with apalis-postgres 1.0 run on
//! the same machine and database server as the baseline.
//!
//! ```text
//! cargo run --release -p cowans-bench -- <workload> --backend <postgres|apalis-postgres> \
//!     --jobs N --concurrency C [--rate R --seconds S] [--batch B] [--limit L] [--group G]
//! cargo run --release -p cowans-bench -- sync-pull --products 100000 --variants 3
//! cargo run --release -p cowans-bench -- sync-incremental --products 100000 --changed 1000
//! cargo run --release -p cowans-bench -- webhooks --deliveries 20000 --concurrency 50
//! cargo run --release -p cowans-bench -- export --products 100000
//! cargo run --release -p cowans-bench -- shop-budget --processes 3 --seconds 30 --concurrency 4
//! cargo run --release -p cowans-bench -- bulk-edit --products 100000
//! cargo run --release -p cowans-bench -- approve-all --products 100000 --variants 1 --changes 100000
//! cargo run --release -p cowans-bench -- sync-push --products 1000 --mode aliased --processes 3
//! cargo run --release -p cowans-bench -- chaos --jobs 100000 --processes 3 [--scenarios kill,…]
//! cargo run --release -p cowans-bench -- fanout --subscribers 1000 --events 100
//! ```
//! The catalog workloads and `chaos` start `cowans-shopsim`, `cowans-worker` and `cowans-api`
//! from the same directory (`cargo build --release --bins` first).
//! Each run creates its own database on the server named by `DATABASE_URL` and drops it at the
//! end. One line per result: `RESULT workload=.. backend=.. jobs=.. concurrency=.. jobs_per_s=..`.

use std::time::Duration;

use clap::{Parser, ValueEnum};

mod apalis_pg;
mod api_http;
mod bench_db;
mod budget;
mod catalog_api;
mod chaos;
mod fanout;
mod idle_tx;
mod ours;
mod probe;
mod procs;
mod push;
mod sync;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Single-job enqueues from `concurrency` concurrent callers.
    EnqueueSingle,
    /// Bulk enqueues of `--batch` jobs per call from `concurrency` callers.
    EnqueueBulk,
    /// The reference for `enqueue-bulk`: the same rows written with `COPY` into the jobs
    /// table, `--batch` rows per `COPY`, from `concurrency` callers (Cowans only).
    EnqueueCopy,
    /// Drain throughput of a topped-up queue before, during and after another session holds a
    /// snapshot open (idle in transaction) for `--hold-seconds`, with the claim index's size
    /// (Cowans only).
    IdleTx,
    /// N jobs queued first, then timed until all are completed.
    Drain,
    /// `--rate` jobs/s offered for `--seconds`; enqueue-to-start p50/p99.
    Latency,
    /// Drain rate with 1,000,000 queued against 10,000 queued.
    Backlog,
    /// `drain` with a unique key on every job (Cowans only).
    DrainUnique,
    /// `drain` under a fleet-wide concurrency limit of `--limit` (Cowans only).
    DrainLimited,
    /// Single-job `POST /api/v1/jobs` over HTTP from `concurrency` clients, group commit off
    /// (baseline) then on (Cowans only).
    ApiSubmit,
    /// `POST /api/v1/jobs/bulk` JSON arrays of `--batch` jobs over HTTP (Cowans only).
    ApiBulk,
    /// A full pull of a simulated shop of `--products` × `--variants` by a worker process.
    SyncPull,
    /// An incremental pull of `--changed` edited products after a full pull.
    SyncIncremental,
    /// `--deliveries` signed webhook deliveries from `--concurrency` senders to a `cowans-api`.
    Webhooks,
    /// The CSV export of a pulled catalog of `--products` × `--variants` from a `cowans-api`.
    Export,
    /// `--processes` processes hammering one simulated shop, per-process buckets then the
    /// fleet's one bucket.
    ShopBudget,
    /// A bulk price edit over `--products` after a full pull, staged by the worker.
    BulkEdit,
    /// "Approve all matching" of `--changes` pending changes.
    ApproveAll,
    /// Price and tags of every product pushed to the shop by `--processes` workers.
    SyncPush,
    /// Faults under `--processes` real worker processes draining `--jobs` exactly-once
    /// effects: SIGKILLs, connection storms, a server restart, a held snapshot, connection
    /// exhaustion, SIGTERM with long jobs; jobs lost, duplicates, exits, recovery times.
    Chaos,
    /// `--subscribers` live-stream subscribers of one `cowans-api`, `--events` events published
    /// one at a time: publish-to-read p50/p99 over every delivery.
    Fanout,
    /// One process of `shop-budget` (started by it).
    #[value(hide = true)]
    ShopBudgetClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    Postgres,
    /// The engine with its queues in Redis (`--redis-url`).
    Redis,
    ApalisPostgres,
}

#[derive(Debug, Parser)]
#[command(name = "cowans-bench", about = "Cowans engine benchmark")]
pub struct Args {
    pub workload: Workload,
    #[arg(long, value_enum, default_value = "postgres")]
    pub backend: BackendKind,
    /// The Redis of `--backend redis` (each run uses a fresh key prefix, deleted at the end).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Offered load for `latency`, jobs per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// Duration of `latency`.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// How `latency` offers its load: `open` (each job at its time, however slow the calls
    /// before it) or `closed` (one call at a time, as graphile-worker's harness offers it).
    #[arg(long, value_enum, default_value = "open")]
    pub load: probe::Load,
    /// Jobs per call for `enqueue-bulk`.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Fleet-wide concurrency limit for `drain-limited` (default: `--concurrency`, so the run
    /// measures the limiter's cost rather than the limit itself).
    #[arg(long)]
    pub limit: Option<u32>,
    /// How long the engine keeps finished jobs, in milliseconds (default: the engine's, an
    /// hour); 0 deletes completed jobs at their ack.
    #[arg(long)]
    pub retain_finished_ms: Option<u64>,
    /// The engine's own statements (claims, acks, heartbeats) commit synchronously
    /// (`engine.async_commit = false`), to measure what asynchronous commit buys or costs.
    #[arg(long)]
    pub sync_commit: bool,
    /// Most jobs the worker claims ahead of free slots (default: the engine's); 0 = none.
    #[arg(long)]
    pub prefetch: Option<usize>,
    /// How long `idle-tx` holds its snapshot open, seconds.
    #[arg(long, default_value_t = 180)]
    pub hold_seconds: u64,
    /// Most single submits per commit in the API for `api-submit` (its baseline uses 1).
    #[arg(long, default_value_t = 500)]
    pub group: usize,
    /// `api-bulk` sends NDJSON bodies (streamed, up to 100,000 lines) instead of JSON arrays.
    #[arg(long)]
    pub ndjson: bool,
    /// Products of the simulated shop (catalog workloads).
    #[arg(long, default_value_t = 100_000)]
    pub products: usize,
    /// Variants per product (catalog workloads).
    #[arg(long, default_value_t = 3)]
    pub variants: usize,
    /// Products edited before `sync-incremental`'s pull.
    #[arg(long, default_value_t = 1000)]
    pub changed: usize,
    /// Deliveries for `webhooks`.
    #[arg(long, default_value_t = 20_000)]
    pub deliveries: usize,
    /// Pending changes for `approve-all`.
    #[arg(long, default_value_t = 100_000)]
    pub changes: usize,
    /// How `sync-push` writes: `aliased` mutations.
    #[arg(long, default_value = "aliased")]
    pub mode: String,
    /// Processes for `shop-budget` and `sync-push`.
    #[arg(long, default_value_t = 3)]
    pub processes: usize,
    /// `shop-budget-client`: the benchmark's database.
    #[arg(long, hide = true)]
    pub child_db: Option<String>,
    /// `shop-budget-client`: the shop's id.
    #[arg(long, hide = true)]
    pub child_shop: Option<i64>,
    /// `shop-budget-client`: the simulator's base URL.
    #[arg(long, hide = true)]
    pub child_sim: Option<String>,
    /// `shop-budget-client`: pace with a bucket of this process only.
    #[arg(long, hide = true)]
    pub local_bucket: bool,
    /// `latency` also offers the same load of plain single-row INSERTs into a table of the
    /// same row shape, alongside, and reports their p50/p99 (the enqueue call's reference).
    #[arg(long)]
    pub plain_baseline: bool,
    /// Live-stream subscribers for `fanout`.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Events `fanout` publishes.
    #[arg(long, default_value_t = 100)]
    pub events: usize,
    #[command(flatten)]
    pub chaos: chaos::ChaosArgs,
}

/// One measured figure.
pub struct Measurement {
    pub workload: &'static str,
    /// Printed as `RESULT workload=<workload> <extra>` only (workloads with their own figures).
    pub custom: bool,
    pub jobs: usize,
    pub elapsed: Duration,
    pub latency_ms: Option<(f64, f64)>,
    pub extra: Option<String>,
}

impl Measurement {
    pub fn new(workload: &'static str, jobs: usize, elapsed: Duration) -> Self {
        Self {
            workload,
            custom: false,
            jobs,
            elapsed,
            latency_ms: None,
            extra: None,
        }
    }

    /// A result with its own figures (`key=value ...`).
    pub fn custom(workload: &'static str, elapsed: Duration, figures: String) -> Self {
        Self {
            custom: true,
            extra: Some(figures),
            ..Self::new(workload, 0, elapsed)
        }
    }

    /// A `latency` result: enqueue-to-start percentiles, plus the insert's own.
    pub fn latency(args: &Args, waits_us: Vec<u64>, inserts_us: Vec<u64>) -> Self {
        let jobs = waits_us.len();
        let max_ms = waits_us.iter().max().map_or(0.0, |&us| us as f64 / 1000.0);
        let (ins50, ins99) = percentiles(inserts_us);
        let load = args
            .load
            .to_possible_value()
            .map(|v| v.get_name().to_owned());
        let load = load.unwrap_or_default();
        Self {
            workload: "latency",
            custom: false,
            jobs,
            elapsed: Duration::from_secs(args.seconds),
            latency_ms: Some(percentiles(waits_us)),
            extra: Some(format!(
                "rate={} load={load} max_ms={max_ms:.1} enqueue_p50_ms={ins50:.2} \
                 enqueue_p99_ms={ins99:.2}",
                args.rate
            )),
        }
    }
}

fn workload_name(w: Workload) -> &'static str {
    match w {
        Workload::EnqueueSingle => "enqueue-single",
        Workload::EnqueueBulk => "enqueue-bulk",
        Workload::EnqueueCopy => "enqueue-copy",
        Workload::IdleTx => "idle-tx",
        Workload::Drain => "drain",
        Workload::Latency => "latency",
        Workload::Backlog => "backlog",
        Workload::DrainUnique => "drain-unique",
        Workload::DrainLimited => "drain-limited",
        Workload::ApiSubmit => "api-submit",
        Workload::ApiBulk => "api-bulk",
        Workload::SyncPull => "sync-pull",
        Workload::SyncIncremental => "sync-incremental",
        Workload::Webhooks => "webhooks",
        Workload::Export => "export",
        Workload::ShopBudget => "shop-budget",
        Workload::BulkEdit => "bulk-edit",
        Workload::ApproveAll => "approve-all",
        Workload::SyncPush => "sync-push",
        Workload::Chaos => "chaos",
        Workload::Fanout => "fanout",
        Workload::ShopBudgetClient => "shop-budget-client",
    }
}

fn backend_name(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Postgres => "postgres",
        BackendKind::Redis => "redis",
        BackendKind::ApalisPostgres => "apalis-postgres",
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cowans-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(results) => {
            for m in results {
                if m.custom {
                    println!(
                        "RESULT workload={} {}",
                        m.workload,
                        m.extra.unwrap_or_default()
                    );
                    continue;
                }
                let rate = m.jobs as f64 / m.elapsed.as_secs_f64();
                let mut line = format!(
                    "RESULT workload={} backend={} jobs={} concurrency={} jobs_per_s={:.0}",
                    m.workload,
                    backend_name(args.backend),
                    m.jobs,
                    args.concurrency,
                    rate
                );
                if let Some((p50, p99)) = m.latency_ms {
                    line.push_str(&format!(" p50_ms={p50:.2} p99_ms={p99:.2}"));
                }
                if args.workload == Workload::DrainLimited {
                    line.push_str(&format!(
                        " limit={}",
                        args.limit.unwrap_or(args.concurrency as u32)
                    ));
                }
                if let Some(extra) = m.extra {
                    line.push(' ');
                    line.push_str(&extra);
                }
                println!("{line}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cowans-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Vec<Measurement>> {
    if args.workload == Workload::ShopBudgetClient {
        budget::client(args).await?;
        return Ok(Vec::new());
    }
    if args.workload == Workload::Chaos {
        // A database per scenario, some on a cluster of its own.
        return chaos::run(args).await;
    }
    let db = bench_db::BenchDb::create().await?;
    let result = match args.backend {
        BackendKind::Postgres
            if matches!(args.workload, Workload::ApiSubmit | Workload::ApiBulk) =>
        {
            api_http::run(args, &db).await
        }
        BackendKind::Postgres
            if matches!(
                args.workload,
                Workload::SyncPull
                    | Workload::SyncIncremental
                    | Workload::Webhooks
                    | Workload::Export
                    | Workload::BulkEdit
                    | Workload::ApproveAll
                    | Workload::SyncPush
            ) =>
        {
            sync::run(args, &db).await
        }
        BackendKind::Postgres if args.workload == Workload::Fanout => fanout::run(args, &db).await,
        BackendKind::Postgres if args.workload == Workload::ShopBudget => {
            budget::run(args, &db).await
        }
        BackendKind::Postgres | BackendKind::Redis => ours::run(args, &db).await,
        BackendKind::ApalisPostgres => apalis_pg::run(args, &db).await,
    };
    db.drop_database().await;
    result
}

/// p50 and p99 of a sample, in milliseconds.
pub fn percentiles(mut samples_us: Vec<u64>) -> (f64, f64) {
    if samples_us.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples_us.sort_unstable();
    let at = |q: f64| {
        let i = ((samples_us.len() as f64 - 1.0) * q).round() as usize;
        samples_us[i] as f64 / 1000.0
    };
    (at(0.50), at(0.99))
}

pub fn name_of(w: Workload) -> &'static str {
    workload_name(w)
}
