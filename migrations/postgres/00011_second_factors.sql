-- +goose Up
-- Second factors of an account. A TOTP factor (RFC 6238) keeps its secret
-- sealed under the master key (AES-256-GCM, bound to the factor's id) and the
-- last time step it accepted, so that each code is used once across every
-- instance; an account has at most one. A WebAuthn credential (a passkey)
-- keeps its credential id, its public credential (JSON: public key, flags,
-- AAGUID, transports) and its signature counter.
CREATE TABLE user_factors (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    secret_sealed  TEXT NOT NULL DEFAULT '',
    last_step      BIGINT NOT NULL DEFAULT 0,
    credential_id  TEXT NOT NULL DEFAULT '',
    credential     TEXT NOT NULL DEFAULT '',
    sign_count     BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX user_factors_user_idx ON user_factors (user_id);
CREATE UNIQUE INDEX user_factors_one_totp ON user_factors (user_id) WHERE kind = 'totp';
CREATE UNIQUE INDEX user_factors_credential_key ON user_factors (credential_id) WHERE kind = 'webauthn';

-- Recovery codes: ten random codes per account, shown once, stored as keyed
-- hashes (HMAC-SHA-256 under a key derived from the master key), each usable
-- once.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- +goose Down
DROP TABLE recovery_codes;
DROP TABLE user_factors;
