// graphile-worker's enqueue -> start latency with the load offered open: every job is added at
// its scheduled time whether or not the adds before it have returned (graphile's own harness
// awaits each add before the next, so a stalled add delays the jobs due behind it without
// counting them). The same measure as `cowans-bench latency --load open`.
//
// Usage: NODE_PATH=<graphile harness>/node_modules node graphile-latency-open.js RATE SECS CONC
// PG_URL: its database (default bench_graphile); LOCAL_QUEUE: localQueue size (0: off).
const { performance } = require('node:perf_hooks');
const { run, makeWorkerUtils, Logger } = require('graphile-worker');
const { Pool } = require('pg');

const [rate = 500, secs = 20, conc = 10] = process.argv.slice(2).map(Number);
const connectionString = process.env.PG_URL || 'postgres://postgres@127.0.0.1:5432/bench_graphile';
const localQueue = Number(process.env.LOCAL_QUEUE) || 0;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const v = Float64Array.from(xs).sort();
  return v.length ? v[Math.round((p / 100) * (v.length - 1))] : NaN;
};
const logger = new Logger(() => (level, msg) => { if (level === 'error') console.error(msg); });

(async () => {
  const total = rate * secs;
  const pool = new Pool({ connectionString, max: 2 });
  const utils = await makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  await pool.query('TRUNCATE graphile_worker._private_jobs CASCADE');
  await pool.query('VACUUM ANALYZE graphile_worker._private_jobs');
  const waits = [];
  const adds = [];
  let done;
  const allSeen = new Promise((r) => (done = r));
  const runner = await run({
    connectionString, concurrency: conc, noHandleSignals: true, pollInterval: 2000, logger,
    preset: localQueue ? { worker: { localQueue: { size: localQueue }, completeJobBatchDelay: 0 } } : undefined,
    taskList: { noop: async (p) => { waits.push(now() - p.ts); if (waits.length === total) done(); } },
  });
  await sleep(1000);
  const t0 = now();
  const pending = [];
  let failed = 0;
  for (let k = 0; k < total; k++) {
    const d = t0 + (k * 1000) / rate - now();
    if (d > 1) await sleep(d);
    const ts = now();
    pending.push(utils.addJob('noop', { i: k, ts }).then(() => adds.push(now() - ts), (e) => {
      failed += 1;
      console.error(`add ${k} failed: ${e.message}`);
    }));
  }
  await Promise.all(pending);
  await Promise.race([allSeen, sleep(60000)]);
  const f = (x) => x.toFixed(3);
  console.log(`RESULT system=graphile-worker test=latency load=open n=${total} conc=${conc} ` +
    `p50_ms=${f(pct(waits, 50))} p99_ms=${f(pct(waits, 99))} max_ms=${f(pct(waits, 100))} ` +
    `enqueue_p50_ms=${f(pct(adds, 50))} enqueue_p99_ms=${f(pct(adds, 99))} received=${waits.length} failed=${failed}`);
  await runner.stop();
  await utils.release();
  await pool.end();
  process.exit(0); // the 60 s guard's timer would hold the process open
})().catch((e) => { console.error(e); process.exit(1); });
