-- +goose Up
-- One table for every single-use token mailed to a user: password reset
-- (until now in reset_tokens), email verification and the change of an
-- account's email. Tokens are stored only as SHA-256 hashes. A token is
-- usable while used_at and voided_at are NULL and expires_at is in the
-- future. data holds what a purpose needs besides the user (the new address
-- of an email change), encrypted under the master key; NULL when nothing.
CREATE TABLE onetime_tokens (
    token_hash TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    data       BLOB,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    voided_at  BIGINT,
    CONSTRAINT onetime_tokens_purpose_nonempty CHECK (purpose <> '')
);
CREATE INDEX onetime_tokens_user_idx ON onetime_tokens (user_id);
CREATE INDEX onetime_tokens_expires_idx ON onetime_tokens (expires_at);
-- At most one usable token per user and purpose, whatever the concurrency
-- (reset_tokens_one_live, per purpose).
CREATE UNIQUE INDEX onetime_tokens_one_live ON onetime_tokens (user_id, purpose) WHERE used_at IS NULL AND voided_at IS NULL;

-- The reset links already mailed keep working: their tokens move over.
INSERT INTO onetime_tokens (token_hash, purpose, user_id, created_at, expires_at)
SELECT token_hash, 'password_reset', user_id, created_at, expires_at FROM reset_tokens
WHERE used_at IS NULL AND voided_at IS NULL;
DROP TABLE reset_tokens;

-- +goose Down
CREATE TABLE reset_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    voided_at  BIGINT
);
CREATE INDEX reset_tokens_user_idx ON reset_tokens (user_id);
CREATE INDEX reset_tokens_expires_idx ON reset_tokens (expires_at);
CREATE UNIQUE INDEX reset_tokens_one_live ON reset_tokens (user_id) WHERE used_at IS NULL AND voided_at IS NULL;
INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at)
SELECT token_hash, user_id, created_at, expires_at FROM onetime_tokens
WHERE purpose = 'password_reset' AND used_at IS NULL AND voided_at IS NULL;
DROP TABLE onetime_tokens;
