-- +goose Up
-- Sealed form states that may be used once (a sign-in waiting for its second
-- step): the hash of each one's id once it was used, until every copy of it
-- has expired, so that a copy of the page cannot complete a sign-in again on
-- any instance.
CREATE TABLE used_forms (
    id_hash    TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_forms_expires_idx ON used_forms (expires_at);

-- +goose Down
DROP TABLE used_forms;
