-- The web console's sessions: a login with an API key (or a JWT) opens one; the browser holds
-- only a random token in an HttpOnly cookie, the table its SHA-256. A session opened with a key
-- ends when the key is revoked (the foreign key and the lookup's join).

CREATE TABLE cowans_console_sessions (
    token_hash  bytea PRIMARY KEY,
    actor       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    api_key_id  bigint REFERENCES cowans_api_keys (id) ON DELETE CASCADE,
    -- The token every state-changing form of the session must carry.
    csrf        text NOT NULL,
    client_addr text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX cowans_console_sessions_expires ON cowans_console_sessions (expires_at);
