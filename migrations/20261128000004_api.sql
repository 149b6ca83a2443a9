-- The HTTP API: API keys (stored hashed) and the audit log of mutating calls.

CREATE TABLE cowans_api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    -- SHA-256 of the key: keys are 256-bit random secrets, so a fast hash is enough and the
    -- lookup stays an index probe.
    key_hash     bytea NOT NULL UNIQUE,
    -- The first characters of the key, to tell keys apart in listings and logs.
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE TABLE cowans_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    role        text NOT NULL,
    action      text NOT NULL,
    target      text,
    client_addr text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX cowans_audit_at ON cowans_audit (at);
