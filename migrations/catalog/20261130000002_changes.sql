-- Staged changes: new values proposed for fields of one product or one variant, each with the
-- base it was made from (the snapshot's value then), waiting for review before they are pushed
-- to Shopify. The states and their moves are `ChangeState` in the catalog crate.

CREATE TABLE cowans_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id      bigint NOT NULL REFERENCES cowans_shops ON DELETE CASCADE,
    product_id   bigint NOT NULL,
    -- NULL: the change is to the product's own fields.
    variant_id   bigint,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved',
                   'rejected', 'pushing', 'pushed', 'conflict', 'failed', 'superseded')),
    -- {"<field>": {"base": v, "proposed": v}}; a push adds "current" (what Shopify had just
    -- before writing) and "outcome" (written, already, conflict, failed, superseded).
    fields       jsonb NOT NULL CHECK (jsonb_typeof(fields) = 'object' AND fields <> '{}'),
    -- The fields a newer change to the same product or variant took over.
    superseded   text[] NOT NULL DEFAULT '{}',
    author       text NOT NULL,
    -- `edit` (one change through the API), `bulk_edit` or `import` (source_id names which).
    source       text NOT NULL CHECK (source IN ('edit', 'bulk_edit', 'import')),
    source_id    bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- The latest decision (approve, reject, resolve) and why.
    decided_by   text,
    decided_at   timestamptz,
    reason       text,
    -- The push job that took it; when it pushed it; Shopify's user errors when it failed.
    push_job     bigint,
    pushed_at    timestamptz,
    error        text
);
CREATE INDEX cowans_changes_shop_state ON cowans_changes (shop_id, state, id);
CREATE INDEX cowans_changes_target ON cowans_changes (shop_id, product_id, variant_id);
CREATE INDEX cowans_changes_source ON cowans_changes (source, source_id) WHERE source_id IS NOT NULL;
