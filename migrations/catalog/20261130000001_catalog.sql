-- The catalog application: shops (secrets encrypted by the application, never stored in clear),
-- the local catalog (the last-synced Shopify snapshot of every product and variant, the base of
-- the three-way check of staged changes), and pulls (one row per full or incremental pull).

CREATE TABLE cowans_shops (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A short handle operators and URLs use (`sim`, `acme-eu`).
    name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- `<shop>.myshopify.com`.
    domain           text NOT NULL UNIQUE CHECK (char_length(domain) BETWEEN 1 AND 255),
    api_version      text NOT NULL CHECK (api_version ~ '^[0-9]{4}-[0-9]{2}$'),
    -- Where the Admin API answers when not at https://<domain> (the simulator).
    admin_url        text,
    -- AES-256-GCM sealed secrets: the key id, the nonce, the ciphertext (with its tag), and the
    -- last four characters to tell tokens apart.
    token_key        text NOT NULL,
    token_nonce      bytea NOT NULL,
    token_sealed     bytea NOT NULL,
    token_last4      text NOT NULL,
    webhook_key      text,
    webhook_nonce    bytea,
    webhook_sealed   bytea,
    webhook_last4    text,
    -- `unauthorized`: Shopify refused the token (401); its jobs stop until it is replaced.
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unauthorized')),
    status_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Incremental pulls resume from here (Shopify's updatedAt of the newest product seen).
    incremental_from timestamptz
);

CREATE TABLE cowans_pulls (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id      bigint NOT NULL REFERENCES cowans_shops ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('full', 'incremental', 'reconcile')),
    state        text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed', 'failed')),
    job_id       bigint,
    -- A full pull's bulk operation, reused when the job is retried after a crash.
    bulk_operation text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    lines        bigint NOT NULL DEFAULT 0,
    products     bigint NOT NULL DEFAULT 0,
    variants     bigint NOT NULL DEFAULT 0,
    deleted      bigint NOT NULL DEFAULT 0,
    error        text
);
CREATE INDEX cowans_pulls_shop ON cowans_pulls (shop_id, id DESC);
-- At most one running pull of each kind per shop.
CREATE UNIQUE INDEX cowans_pulls_running ON cowans_pulls (shop_id, kind) WHERE state = 'running';

CREATE TABLE cowans_products (
    shop_id            bigint NOT NULL REFERENCES cowans_shops ON DELETE CASCADE,
    -- Shopify's numeric id (legacyResourceId): above 2^53, never through a float.
    id                 bigint NOT NULL CHECK (id > 0),
    title              text NOT NULL,
    handle             text NOT NULL,
    description_html   text NOT NULL DEFAULT '',
    vendor             text NOT NULL DEFAULT '',
    product_type       text NOT NULL DEFAULT '',
    status             text NOT NULL,
    tags               text[] NOT NULL DEFAULT '{}',
    -- [{"name", "position", "values": [..]}], as Shopify orders them.
    options            jsonb NOT NULL DEFAULT '[]',
    shopify_created_at timestamptz,
    -- Orders snapshots of one product: an older one never overwrites a newer one.
    shopify_updated_at timestamptz NOT NULL,
    deleted_at         timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    -- The full pull that wrote this snapshot (its sweep removes the variants it did not list).
    pull_id            bigint,
    -- The last full pull whose export listed it (what a full pull did not list is deleted).
    seen_pull          bigint,
    PRIMARY KEY (shop_id, id)
);
CREATE INDEX cowans_products_updated ON cowans_products (shop_id, shopify_updated_at);
CREATE INDEX cowans_products_handle ON cowans_products (shop_id, handle);
CREATE INDEX cowans_products_vendor ON cowans_products (shop_id, vendor);
CREATE INDEX cowans_products_tags ON cowans_products USING gin (tags);

CREATE TABLE cowans_variants (
    shop_id            bigint NOT NULL,
    id                 bigint NOT NULL CHECK (id > 0),
    product_id         bigint NOT NULL,
    title              text NOT NULL DEFAULT '',
    position           integer NOT NULL DEFAULT 0,
    sku                text,
    barcode            text,
    -- Decimals as Shopify sends them, compared as numbers.
    price              numeric NOT NULL,
    compare_at_price   numeric,
    inventory_quantity integer,
    inventory_item_id  bigint,
    weight             numeric,
    weight_unit        text,
    -- [{"name", "value"}]: the variant's selected options.
    option_values      jsonb NOT NULL DEFAULT '[]',
    pull_id            bigint,
    PRIMARY KEY (shop_id, id),
    FOREIGN KEY (shop_id, product_id) REFERENCES cowans_products ON DELETE CASCADE
);
CREATE INDEX cowans_variants_product ON cowans_variants (shop_id, product_id, position);
CREATE INDEX cowans_variants_sku ON cowans_variants (shop_id, sku);

-- Each shop's Shopify cost bucket as the whole fleet sees it: every process calling a shop
-- reserves points here before sending and settles with Shopify's throttleStatus after. Learnt
-- from the first answer (NULL until then); `available` is at `at`, minus what was reserved since.
-- Unlogged: after a crash it is relearnt from the next answer.
CREATE UNLOGGED TABLE cowans_shop_budgets (
    shop_id       bigint PRIMARY KEY REFERENCES cowans_shops ON DELETE CASCADE,
    max_available double precision,
    restore_rate  double precision,
    available     double precision,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Points reserved by requests not answered yet (fleet-wide).
    in_flight     double precision NOT NULL DEFAULT 0,
    settled_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
