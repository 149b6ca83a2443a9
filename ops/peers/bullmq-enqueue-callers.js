// BullMQ single-job adds from several concurrent callers (the shared harness's enqueue-single
// uses one), to compare with `cowans-bench enqueue-single --concurrency C --backend redis`.
// Usage: NODE_PATH=<bullmq harness>/node_modules node bullmq-enqueue-callers.js N CALLERS
// Uses Redis db REDIS_DB (default 6) on 127.0.0.1:6379 and FLUSHDBs it first.
const { Queue } = require('bullmq');
const IORedis = require('ioredis');
const N = +process.argv[2] || 50000;
const CALLERS = +process.argv[3] || 10;
const connection = { host: '127.0.0.1', port: 6379, db: +process.env.REDIS_DB || 6, maxRetriesPerRequest: null };

(async () => {
  const r = new IORedis(connection);
  await r.flushdb();
  const queue = new Queue('bench', { connection });
  await queue.waitUntilReady();
  let next = 0;
  const t0 = process.hrtime.bigint();
  const caller = async () => {
    while (next < N) {
      const i = next++;
      await queue.add('noop', { i });
    }
  };
  await Promise.all(Array.from({ length: CALLERS }, caller));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const version = require('bullmq/package.json').version;
  console.log(`RESULT system=bullmq version=${version} backend=redis test=enqueue-single n=${N} conc=${CALLERS} secs=${secs.toFixed(3)} jobs_per_s=${Math.round(N / secs)}`);
  await queue.close();
  r.disconnect();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
