-- +goose Up
-- Clients become a model of their own: kinds web, native and server; the
-- redirect URIs of the authorization code flow and of RP-initiated logout;
-- the grants and scopes each client may use. Lists are JSON arrays.
-- SQLite cannot alter a CHECK constraint: the table is rebuilt.
CREATE TABLE clients_new (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    audience   TEXT NOT NULL DEFAULT '[]',
    alg        TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    redirect_uris             TEXT NOT NULL DEFAULT '[]',
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    grants                    TEXT NOT NULL DEFAULT '[]',
    scopes                    TEXT NOT NULL DEFAULT '[]',
    CONSTRAINT clients_kind_check CHECK (kind IN ('web', 'native', 'server')),
    CONSTRAINT clients_alg_check CHECK (alg IN ('', 'RS256', 'EdDSA'))
);
INSERT INTO clients_new (id, kind, audience, alg, created_at) SELECT id, kind, audience, alg, created_at FROM clients;
DROP TABLE clients;
ALTER TABLE clients_new RENAME TO clients;
-- Clients that existed before keep what they could do: log in with a
-- password (through /auth/login or the password grant) and refresh.
UPDATE clients SET grants = '["password","refresh_token"]', scopes = '["email","openid","profile"]';

-- When the address was verified (issue: email verification); NULL until.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;

-- A sign-in session at tokend (single sign-on in the browser): the cookie
-- holds its id and a secret whose SHA-256 is stored here.
CREATE TABLE signin_sessions (
    id            TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id),
    auth_time     BIGINT NOT NULL,
    amr           TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT '',
    address       TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX signin_sessions_user_idx ON signin_sessions (user_id, created_at);
CREATE INDEX signin_sessions_expires_idx ON signin_sessions (expires_at);

-- A refresh-token family started through a sign-in session (the code flow)
-- names it, so that logging out of the browser ends the family too, and
-- keeps what the ID tokens of its refreshes say about the authentication.
ALTER TABLE refresh_families ADD COLUMN signin_id TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_families ADD COLUMN amr TEXT NOT NULL DEFAULT '';
CREATE INDEX refresh_families_signin_idx ON refresh_families (signin_id);

-- Authorization codes, stored only as SHA-256 hashes, single use; the
-- family its first exchange started is recorded, so that a replay revokes it.
CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL DEFAULT '',
    nonce          TEXT NOT NULL DEFAULT '',
    scope          TEXT NOT NULL DEFAULT '',
    signin_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    amr            TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    family_id      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX authorization_codes_expires_idx ON authorization_codes (expires_at);

-- +goose Down
DROP TABLE authorization_codes;
DROP INDEX refresh_families_signin_idx;
ALTER TABLE refresh_families DROP COLUMN amr;
ALTER TABLE refresh_families DROP COLUMN auth_time;
ALTER TABLE refresh_families DROP COLUMN signin_id;
DROP TABLE signin_sessions;
ALTER TABLE users DROP COLUMN email_verified_at;
CREATE TABLE clients_old (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    audience   TEXT NOT NULL DEFAULT '[]',
    alg        TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    CONSTRAINT clients_kind_check CHECK (kind IN ('web', 'native')),
    CONSTRAINT clients_alg_check CHECK (alg IN ('', 'RS256', 'EdDSA'))
);
INSERT INTO clients_old SELECT id, kind, audience, alg, created_at FROM clients WHERE kind IN ('web', 'native');
DROP TABLE clients;
ALTER TABLE clients_old RENAME TO clients;
