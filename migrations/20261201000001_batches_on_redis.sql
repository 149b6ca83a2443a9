-- Batches whose jobs are (partly) stored on Redis: the queues holding them there. The leader
-- counts those jobs on Redis while the batch is open, and once it has finished releases the
-- batch's keys there (so its jobs may be pruned) and empties this list.
ALTER TABLE cowans_batches ADD COLUMN redis_queues text[] NOT NULL DEFAULT '{}';
CREATE INDEX cowans_batches_on_redis ON cowans_batches (id)
    WHERE finished_at IS NOT NULL AND redis_queues <> '{}';
