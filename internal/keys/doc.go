// Package keys owns tokend's signing keys: generating RS256 and EdDSA keys
// (kid = RFC 7638 thumbprint), importing PEM keys, the lifecycle of API.md
// (next → current → retired → expired; revoked), scheduled rotation
// coordinated through a lease row, and the in-memory key set each instance
// signs with and publishes as its JWKS.
//
// Timing rules (all from the injected clock):
//   - a next key may become current only after it has been published for
//     TOKEND_JWKS_MAX_AGE plus the reload interval (every instance must have
//     served it for max-age before any token signed with it exists);
//   - a retired key stays published until every token it can have signed
//     has expired, plus max-age, plus the reload interval (another instance
//     may sign with it until its next reload).
//
// Private keys are sealed with AES-256-GCM under a key derived from the
// master key, the kid bound as additional data, before they reach the store.
package keys
