// Package sessions owns what clients do every day: log in with a password,
// rotate refresh tokens (with reuse detection), log out and revoke, and list
// or revoke their sessions (one per device).
//
// # Refresh tokens
//
// A refresh token is 256 bits: random for the first token of a family,
// derived for every later one. Only SHA-256(token) is stored. Rotating token
// T consumes T and stores its child C = HMAC-SHA256(K, T), where K is derived
// from the master key, in one transaction.
//
// Presenting T again within TOKEND_REFRESH_REUSE_GRACE of its rotation (two
// tabs, a retry after a lost response) recomputes the same C, finds it in the
// family, and returns it with a new access token: nothing is revoked, no
// second branch grows, and no token is ever stored in clear. If C itself was
// rotated within the grace window the walk continues to the live head.
//
// Presenting T after the grace window is reuse: the whole family is revoked
// in the database (so on every instance at once), an audit event is written,
// and the answer is invalid_grant. A revoked family never rotates again, not
// even its newest token within a grace window.
package sessions
