-- +goose Up
CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    disabled_at      BIGINT,
    CONSTRAINT users_email_nonempty CHECK (email_normalized <> '')
);
CREATE UNIQUE INDEX users_email_normalized_key ON users (email_normalized);
CREATE INDEX users_created_at_idx ON users (created_at, id);

CREATE TABLE clients (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    audience   TEXT NOT NULL DEFAULT '[]',
    alg        TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    CONSTRAINT clients_kind_check CHECK (kind IN ('web', 'native')),
    CONSTRAINT clients_alg_check CHECK (alg IN ('', 'RS256', 'EdDSA'))
);

CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    type       TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    client_id  TEXT NOT NULL DEFAULT '',
    address    TEXT NOT NULL DEFAULT '',
    details    TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    CONSTRAINT audit_events_type_nonempty CHECK (type <> '')
);
CREATE INDEX audit_events_created_at_idx ON audit_events (created_at);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, created_at);

-- One row per coordinated job (scheduled key rotation, ...): the holder owns
-- it until expires_at. Portable where advisory locks are not.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP TABLE audit_events;
DROP TABLE clients;
DROP TABLE users;
