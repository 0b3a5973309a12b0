-- +goose Up
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    state          TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    origin         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    activated_at   BIGINT,
    retired_at     BIGINT,
    publish_until  BIGINT,
    revoked_at     BIGINT,
    CONSTRAINT signing_keys_alg_check CHECK (alg IN ('RS256', 'EdDSA')),
    CONSTRAINT signing_keys_state_check CHECK (state IN ('next', 'current', 'retired', 'expired', 'revoked')),
    CONSTRAINT signing_keys_origin_check CHECK (origin IN ('generated', 'imported'))
);
-- The lifecycle's invariants, enforced by the database whatever the code
-- does: at most one current and one next key per algorithm.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (alg) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (alg) WHERE state = 'next';

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE meta;
DROP TABLE signing_keys;
