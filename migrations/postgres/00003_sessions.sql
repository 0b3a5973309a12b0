-- +goose Up
-- A family is one login on one device: the session a user sees and revokes.
CREATE TABLE refresh_families (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    client_id     TEXT NOT NULL,
    scope         TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT '',
    address       TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id, created_at);
CREATE INDEX refresh_families_expires_idx ON refresh_families (expires_at);

-- Refresh tokens are stored only as SHA-256 hashes. The family's immutable
-- facts (user, client, kind, scope) are copied onto each token so that a
-- rotation is one conditional UPDATE ... RETURNING on one row.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    client_kind TEXT NOT NULL,
    scope       TEXT NOT NULL DEFAULT '',
    parent_hash TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id, created_at);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- Counters behind brute-force protection and rate limits, shared by every
-- instance: hits within the window that started at window_start.
CREATE TABLE throttles (
    key          TEXT PRIMARY KEY,
    hits         INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    last_hit     BIGINT NOT NULL
);
CREATE INDEX throttles_last_hit_idx ON throttles (last_hit);

-- +goose Down
DROP TABLE throttles;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
