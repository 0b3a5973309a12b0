-- +goose Up
-- A credential version per user, bumped by every change of the password
-- (a reset): a session is only created, in the same transaction as the
-- check, for the version the login verified, so a login racing a reset or a
-- disable cannot leave a session behind it.
ALTER TABLE users ADD COLUMN credential_version BIGINT NOT NULL DEFAULT 0;

-- At most one usable reset token per user, whatever the concurrency: keep
-- the newest of any duplicates, then let the database refuse a second one.
UPDATE reset_tokens SET voided_at = created_at
WHERE used_at IS NULL AND voided_at IS NULL AND EXISTS (
    SELECT 1 FROM reset_tokens n
    WHERE n.user_id = reset_tokens.user_id AND n.used_at IS NULL AND n.voided_at IS NULL
      AND (n.created_at > reset_tokens.created_at
           OR (n.created_at = reset_tokens.created_at AND n.token_hash > reset_tokens.token_hash)));
CREATE UNIQUE INDEX reset_tokens_one_live ON reset_tokens (user_id) WHERE used_at IS NULL AND voided_at IS NULL;

-- +goose Down
DROP INDEX reset_tokens_one_live;
ALTER TABLE users DROP COLUMN credential_version;
