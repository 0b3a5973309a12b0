-- +goose Up
-- Password-reset tokens, stored only as SHA-256 hashes. A token is usable
-- while used_at and voided_at are NULL and expires_at is in the future.
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

-- The mail outbox: a job is written in the same transaction as what it
-- announces. Its payload (which carries the link) is encrypted under the
-- master key and the row is deleted once the mail is sent. Workers claim
-- jobs by setting locked_by/locked_until.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         TEXT NOT NULL DEFAULT '',
    payload         BLOB NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    locked_by       TEXT NOT NULL DEFAULT '',
    locked_until    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at);
CREATE INDEX mail_outbox_user_idx ON mail_outbox (user_id, kind);

-- +goose Down
DROP TABLE mail_outbox;
DROP TABLE reset_tokens;
