-- Error tracking: failed attempts grouped by kind and error pattern (the message with numbers,
-- ids and quoted values replaced), with how often, when first and last, and the latest example.
-- Written by the workers after each ack flush; groups unseen for the dead-letter window are
-- pruned by the leader.
CREATE TABLE cowans_error_groups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    pattern     text NOT NULL,
    class       text NOT NULL,
    count       bigint NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    last_job_id bigint NOT NULL,
    last_queue  text NOT NULL,
    last_error  text NOT NULL,
    UNIQUE (kind, pattern)
);
CREATE INDEX cowans_error_groups_recent ON cowans_error_groups (last_seen DESC, id DESC);
