-- +goose Up
-- Pruning deletes in small batches, each walking an index on the column its
-- condition reads (see internal/prune): these are the indexes that were
-- missing. Revoked rows are few among many live ones, so the revoked_at
-- indexes hold only them (a `revoked_at < ?` condition implies NOT NULL,
-- which lets the planner use the partial index).
CREATE INDEX refresh_families_revoked_idx ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX signin_sessions_revoked_idx ON signin_sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX mail_outbox_expires_idx ON mail_outbox (expires_at);

-- +goose Down
DROP INDEX mail_outbox_expires_idx;
DROP INDEX signin_sessions_revoked_idx;
DROP INDEX refresh_families_revoked_idx;
