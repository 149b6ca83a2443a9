-- Effects recorded by the built-in demo.effect job kind (demo and black-box tests). No primary
-- key on purpose: a duplicate effect must be visible, not rejected.
CREATE TABLE cowans_demo_effects (
    job_id      bigint NOT NULL,
    key         text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cowans_demo_effects_key ON cowans_demo_effects (key);
