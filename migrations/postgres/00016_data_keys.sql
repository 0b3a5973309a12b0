-- +goose Up
-- Data keys: the keys of keyed hashes (client secrets, recovery codes,
-- refresh tokens, CSRF tokens), sealed under the master key. Version 1 of
-- each purpose is the key tokend derived from the master key until now, so
-- nothing stored changes meaning; from then on a master-key rotation
-- re-seals these rows and the keyed hashes stay valid.
CREATE TABLE data_keys (
    purpose    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    key_sealed BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (purpose, version),
    CONSTRAINT data_keys_version_positive CHECK (version > 0)
);

-- +goose Down
DROP TABLE data_keys;
