-- The Postgres queue engine: jobs, worker processes, leader leases.
-- Forward-only. See ARCHITECTURE.md for the state machine these rows move through.

CREATE TYPE cowans_job_state AS ENUM
    ('available', 'scheduled', 'running', 'completed', 'cancelled', 'dead');

CREATE TABLE cowans_jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text NOT NULL,
    kind             text NOT NULL,
    args             jsonb NOT NULL,
    state            cowans_job_state NOT NULL,
    priority         smallint NOT NULL DEFAULT 0,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    run_at           timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    finalized_at     timestamptz,
    -- Fencing token of the current claim: every ack is conditional on it, so a worker whose lease
    -- expired (and whose job another worker now holds) can neither complete nor fail the job.
    lease            bigint,
    lease_expires_at timestamptz,
    worker_id        uuid,
    -- Error history: [{attempt, at, worker, error}], appended on every failed attempt.
    errors           jsonb NOT NULL DEFAULT '[]',
    CONSTRAINT cowans_jobs_attempts_positive CHECK (max_attempts >= 1),
    CONSTRAINT cowans_jobs_queue_length CHECK (char_length(queue) BETWEEN 1 AND 128),
    CONSTRAINT cowans_jobs_kind_length CHECK (char_length(kind) BETWEEN 1 AND 128)
)
-- The table is a queue: every row is updated two or three times and most are deleted soon after.
-- Vacuum early and often so dead tuples do not pile up in front of the claim index.
WITH (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- The claim index: exactly the order of the claim query, only runnable rows.
CREATE INDEX cowans_jobs_claim ON cowans_jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available';
-- Promotion of delayed jobs and retries once run_at has passed.
CREATE INDEX cowans_jobs_scheduled ON cowans_jobs (queue, run_at)
    WHERE state = 'scheduled';
-- The rescuer looks for expired leases. Only running jobs have lease_expires_at set. The
-- predicate deliberately does not mention state: acks filter on state = 'running', and an index
-- whose predicate matched that would tempt the planner to scan every running job (and the dead
-- entries of every job that ran since the last vacuum) instead of looking the acked ids up.
CREATE INDEX cowans_jobs_leases ON cowans_jobs (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
-- Dead-letter listing, re-drive and purge.
CREATE INDEX cowans_jobs_dead ON cowans_jobs (queue, id)
    WHERE state = 'dead';

-- One fencing token per claim statement (all jobs claimed together share it).
CREATE SEQUENCE cowans_lease_seq;

-- One row per live worker process; its heartbeat keeps last_seen fresh.
CREATE TABLE cowans_workers (
    id          uuid PRIMARY KEY,
    hostname    text NOT NULL,
    pid         integer NOT NULL,
    queues      text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);

-- Leader election for maintenance (rescuer and, later, scheduler, pruner, stats): a row per role
-- held by one worker process until its lease runs out. term increases at every change of holder.
CREATE TABLE cowans_leaders (
    role       text PRIMARY KEY,
    holder     uuid NOT NULL,
    term       bigint NOT NULL DEFAULT 1,
    expires_at timestamptz NOT NULL
);
