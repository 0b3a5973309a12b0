-- +goose Up
-- One row per session: a refresh token carries its family, its generation
-- and a MAC, so the family row alone finds and checks it. A rotation bumps
-- generation in place; no token row is written. Families created before
-- this migration keep generation 0 and their rows in refresh_tokens until
-- their live token is presented once (it then moves the family to
-- generation 1). client_kind, idle_expires_at and the rate-limit window are
-- what refresh_tokens held per token.
ALTER TABLE refresh_families ADD COLUMN client_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_families ADD COLUMN rotated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_families ADD COLUMN idle_expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_families ADD COLUMN rate_window_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_families ADD COLUMN rate_count INTEGER NOT NULL DEFAULT 0;

-- Rotations rewrite the row in place with no indexed column changed: leave
-- room on each page so Postgres can keep them heap-only (HOT) updates.
ALTER TABLE refresh_families SET (fillfactor = 90);

-- +goose Down
ALTER TABLE refresh_families RESET (fillfactor);
ALTER TABLE refresh_families DROP COLUMN rate_count;
ALTER TABLE refresh_families DROP COLUMN rate_window_start;
ALTER TABLE refresh_families DROP COLUMN idle_expires_at;
ALTER TABLE refresh_families DROP COLUMN rotated_at;
ALTER TABLE refresh_families DROP COLUMN generation;
ALTER TABLE refresh_families DROP COLUMN client_kind;
