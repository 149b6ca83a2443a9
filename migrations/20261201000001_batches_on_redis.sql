-- Batches whose jobs are (partly) stored on Redis: the queues holding them there. The leader
-- counts those jobs on Redis while the batch is open, and once it has finished releases the
-- batch's keys there (so its jobs may be pruned) and empties this list.
ALTER TABLE cowans_batches ADD COLUMN redis_queues text[] NOT NULL DEFAULT '{}';
CREATE INDEX cowans_batches_on_redis ON cowans_batches (id)
    WHERE finished_at IS NOT NULL AND redis_queues <> '{}';

-- A finished batch's callback on a Redis queue is stored after the batch finished; until it is
-- recorded here (callback_job_id) the leader's pass finds it pending.
CREATE INDEX cowans_batches_callback_pending ON cowans_batches (id)
    WHERE finished_at IS NOT NULL AND callback IS NOT NULL AND callback_job_id IS NULL;

-- Dead letters of a batch purged before it finished, per queue ({"queue": n}): they still
-- count as dead in its progress (Postgres keeps an open batch's other jobs until it finishes).
ALTER TABLE cowans_batches ADD COLUMN dead_purged jsonb NOT NULL DEFAULT '{}';
