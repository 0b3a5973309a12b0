-- +goose Up
-- The WebAuthn challenges that were answered, by hash, until they expire: a
-- ceremony's state travels sealed in the page, so that any instance can finish
-- it, and this table makes each challenge single use across every instance.
CREATE TABLE webauthn_challenges (
    challenge_hash TEXT PRIMARY KEY,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX webauthn_challenges_expires_idx ON webauthn_challenges (expires_at);

-- +goose Down
DROP TABLE webauthn_challenges;
