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
-- Listings and exports without a state filter: newest first per shop.
CREATE INDEX cowans_changes_shop ON cowans_changes (shop_id, id);
-- A push's claim takes waiting changes in product order (a batch covers a product-id range).
CREATE INDEX cowans_changes_pushable ON cowans_changes (shop_id, product_id, id)
    WHERE state IN ('approved', 'pushing');
CREATE INDEX cowans_changes_target ON cowans_changes (shop_id, product_id, variant_id);
CREATE INDEX cowans_changes_source ON cowans_changes (source, source_id) WHERE source_id IS NOT NULL;

-- Bulk edits: operations over a selection of a shop's products, run as a batch of jobs over
-- chunks of it; each chunk stages its changes (and, for `push`, approves them) in the
-- transaction that completes its job.
CREATE TABLE cowans_bulk_edits (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id     bigint NOT NULL REFERENCES cowans_shops ON DELETE CASCADE,
    author      text NOT NULL,
    -- {"operations": [...], "push": bool, "selection": {...}}
    spec        jsonb NOT NULL,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed', 'cancelled')),
    batch_id    bigint,
    -- Products selected, processed so far, changes staged, products skipped (an operation could
    -- not apply: a price that would be negative), and the first of those errors.
    products    bigint NOT NULL DEFAULT 0,
    processed   bigint NOT NULL DEFAULT 0,
    changes     bigint NOT NULL DEFAULT 0,
    skipped     bigint NOT NULL DEFAULT 0,
    errors      jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX cowans_bulk_edits_shop ON cowans_bulk_edits (shop_id, id DESC);

-- Imports: a CSV or JSON Lines file (the export's columns) turned into staged changes, with a
-- result per row; a dry run only reports.
CREATE TABLE cowans_imports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id     bigint NOT NULL REFERENCES cowans_shops ON DELETE CASCADE,
    author      text NOT NULL,
    format      text NOT NULL CHECK (format IN ('csv', 'jsonl')),
    dry_run     boolean NOT NULL,
    rows        bigint NOT NULL,
    staged      bigint NOT NULL,
    unchanged   bigint NOT NULL,
    errors      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cowans_imports_shop ON cowans_imports (shop_id, id DESC);

CREATE TABLE cowans_import_rows (
    import_id  bigint NOT NULL REFERENCES cowans_imports ON DELETE CASCADE,
    -- The row's number in the file (1 is the first row after a CSV header, or the first line).
    row        integer NOT NULL,
    product_id bigint,
    variant_id bigint,
    -- `staged` (would be, in a dry run), `unchanged`, or `error`.
    status     text NOT NULL CHECK (status IN ('staged', 'unchanged', 'error')),
    error      text,
    change_id  bigint,
    PRIMARY KEY (import_id, row)
);

-- Dead letters per queue as the catalog's watcher last counted them: a rise is notified.
CREATE TABLE cowans_dead_watch (
    queue      text PRIMARY KEY,
    dead       bigint NOT NULL,
    counted_at timestamptz NOT NULL DEFAULT now()
);
