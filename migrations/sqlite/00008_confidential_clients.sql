-- +goose Up
-- Confidential (server) clients authenticate with a secret, of which only a
-- keyed hash is stored, or with keys (private_key_jwt), whose public JWKS is
-- stored. A rotated secret keeps working until previous_secret_expires_at.
ALTER TABLE clients ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN previous_secret_expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN jwks TEXT NOT NULL DEFAULT '';

-- The jti of every private_key_jwt assertion seen, until it expires: an
-- assertion is single use across every instance.
CREATE TABLE client_assertions (
    jti_hash   TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX client_assertions_expires_idx ON client_assertions (expires_at);

-- +goose Down
DROP TABLE client_assertions;
ALTER TABLE clients DROP COLUMN jwks;
ALTER TABLE clients DROP COLUMN previous_secret_expires_at;
ALTER TABLE clients DROP COLUMN previous_secret_hash;
ALTER TABLE clients DROP COLUMN secret_hash;
