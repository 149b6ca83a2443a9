-- Engine control: unique jobs, cancel, pause, fleet-wide limits, batches, cron, retention, stats.
-- Forward-only. Every new column of cowans_jobs is nullable without a default (instant to add)
-- and only touched by jobs that use the feature, so the hot path of plain jobs is unchanged.

-- Bit of a state in a unique job's `unique_states` mask. IMMUTABLE so it can sit in an index
-- predicate.
CREATE FUNCTION cowans_state_bit(s cowans_job_state) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE s
        WHEN 'available' THEN 1
        WHEN 'scheduled' THEN 2
        WHEN 'running'   THEN 4
        WHEN 'completed' THEN 8
        WHEN 'cancelled' THEN 16
        WHEN 'dead'      THEN 32
    END
$$;

ALTER TABLE cowans_jobs
    -- Unique jobs: at most one job per (queue, unique_key) whose state is in unique_states.
    ADD COLUMN unique_key    text,
    ADD COLUMN unique_states integer,
    -- The batch the job belongs to.
    ADD COLUMN batch_id      bigint,
    -- Rate-limit key (e.g. a shop) for queues limited per key.
    ADD COLUMN rate_key      text;

CREATE UNIQUE INDEX cowans_jobs_unique ON cowans_jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND (unique_states & cowans_state_bit(state)) <> 0;
-- Batch progress is counted from the jobs themselves (always right, even after crashes).
CREATE INDEX cowans_jobs_batch ON cowans_jobs (batch_id, state)
    WHERE batch_id IS NOT NULL;
-- Retention and "completed in the last minute": finished jobs by finish time.
CREATE INDEX cowans_jobs_finalized ON cowans_jobs (finalized_at)
    WHERE finalized_at IS NOT NULL;

-- Cluster-wide queue control. A queue without a row is running and unlimited.
CREATE TABLE cowans_queues (
    name              text PRIMARY KEY,
    paused            boolean NOT NULL DEFAULT false,
    paused_at         timestamptz,
    -- Most jobs of this queue running at once across the fleet; NULL = no limit.
    concurrency_limit integer CHECK (concurrency_limit IS NULL OR concurrency_limit >= 1),
    -- Rate limit: rate_limit jobs per rate_period_ms, for the whole queue or per job rate_key.
    rate_limit        integer CHECK (rate_limit IS NULL OR rate_limit >= 1),
    rate_period_ms    bigint CHECK (rate_period_ms IS NULL OR rate_period_ms >= 1),
    rate_by_key       boolean NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Concurrency permits of the Postgres limiter: one row per slot of a scope. Claimers take free
-- slots with SKIP LOCKED, so concurrent claimers never queue behind one row.
CREATE TABLE cowans_permits (
    scope      text NOT NULL,
    slot       integer NOT NULL,
    holder     uuid,
    token      bigint,
    expires_at timestamptz,
    PRIMARY KEY (scope, slot)
);

-- Rate buckets of the Postgres limiter (GCRA: tat = theoretical arrival time).
CREATE TABLE cowans_rate_buckets (
    scope text NOT NULL,
    key   text NOT NULL,
    tat   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Takes up to wants[i] tokens for keys[i] from a bucket allowing `lim` per `period_ms` (bursts
-- up to `lim`). Returns per key what was granted and when the next token becomes available.
CREATE FUNCTION cowans_rate_take(p_scope text, p_keys text[], p_wants integer[], p_lim integer,
                                 p_period_ms double precision)
RETURNS TABLE (key text, granted integer, next_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    t_secs double precision := p_period_ms / 1000.0 / p_lim;  -- one token every t_secs
    tau_secs double precision := p_period_ms / 1000.0;         -- burst tolerance
    base timestamptz;
    n integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
        INSERT INTO cowans_rate_buckets AS b (scope, key, tat) VALUES (p_scope, p_keys[i], '-infinity')
        ON CONFLICT (scope, key) DO NOTHING;
        SELECT greatest(b.tat, now()) INTO base FROM cowans_rate_buckets b
        WHERE b.scope = p_scope AND b.key = p_keys[i] FOR UPDATE;
        n := greatest(0, least(p_wants[i],
                floor(extract(epoch FROM (now() - base)) / t_secs + tau_secs / t_secs + 1e-9)::integer));
        UPDATE cowans_rate_buckets b SET tat = base + make_interval(secs => n * t_secs)
        WHERE b.scope = p_scope AND b.key = p_keys[i];
        key := p_keys[i];
        granted := n;
        next_at := greatest(now(), base + make_interval(secs => (n + 1) * t_secs - tau_secs));
        RETURN NEXT;
    END LOOP;
END
$$;

-- Batches: a group of jobs with counters, progress events and a completion callback.
CREATE TABLE cowans_batches (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    description     text NOT NULL DEFAULT '',
    total           integer NOT NULL,
    -- The leader's last count of the batch's jobs by state ({"available": n, ...}).
    counts          jsonb NOT NULL DEFAULT '{}',
    -- Job enqueued exactly once when every job has finished: {queue, kind, args}.
    callback        jsonb,
    callback_job_id bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    counted_at      timestamptz,
    cancelled_at    timestamptz,
    finished_at     timestamptz
);
CREATE INDEX cowans_batches_open ON cowans_batches (id) WHERE finished_at IS NULL;

-- Periodic jobs. last_tick advances with a compare-and-set in the transaction that enqueues the
-- tick's job, so a tick is enqueued once however many schedulers run.
CREATE TABLE cowans_cron (
    name         text PRIMARY KEY,
    schedule     text NOT NULL,
    timezone     text NOT NULL DEFAULT 'UTC',
    queue        text NOT NULL,
    kind         text NOT NULL,
    args         jsonb NOT NULL DEFAULT '{}',
    -- 0 = skip missed ticks (run the latest only); n > 0 = catch up at most n missed ticks.
    catch_up     integer NOT NULL DEFAULT 0 CHECK (catch_up >= 0),
    last_tick    timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Queue summary refreshed by the leader (counts by state, oldest available, throughput), so
-- dashboards and /metrics never count a large table.
CREATE TABLE cowans_queue_stats (
    queue                text PRIMARY KEY,
    available            bigint NOT NULL DEFAULT 0,
    scheduled            bigint NOT NULL DEFAULT 0,
    running              bigint NOT NULL DEFAULT 0,
    completed            bigint NOT NULL DEFAULT 0,
    cancelled            bigint NOT NULL DEFAULT 0,
    dead                 bigint NOT NULL DEFAULT 0,
    oldest_available_at  timestamptz,
    completed_last_minute bigint NOT NULL DEFAULT 0,
    refreshed_at         timestamptz NOT NULL DEFAULT now()
);
