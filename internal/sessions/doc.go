// Package sessions owns what clients do every day: log in with a password,
// rotate refresh tokens (with reuse detection), log out and revoke, and list
// or revoke their sessions (one per device).
//
// # Refresh tokens
//
// A session (a refresh-token family) is one row. A refresh token carries
// what finds and checks it: a format byte, the family id, the generation,
// the MAC key version and HMAC-SHA256 over those under a key derived from
// the master key (MACKeys), 61 bytes in unpadded base64url. Nothing about a
// token is stored but the family's generation: the live token is the one
// of that generation, every lower one has been rotated out. A token with a
// bad MAC or an unknown key version is invalid_grant and reads nothing but
// the key.
//
// Rotating the token of generation g is one conditional UPDATE of the
// family's row by primary key (generation g to g+1, not revoked, not idled
// out or expired, of the right client, of an enabled user, under the rate
// limit), with no insert. Presenting generation g-1 again within
// TOKEND_REFRESH_REUSE_GRACE of that rotation (two tabs, a retry after a
// lost response) returns the token of generation g again, computed, never
// stored: nothing is revoked and no second branch grows.
//
// Presenting any older token (g-1 after the grace window, or anything
// before it) is reuse, for as long as the family exists: the whole family
// is revoked in the database (so on every instance at once), an audit event
// is written, and the answer is invalid_grant. A revoked family never
// rotates again, not even its newest token within a grace window.
//
// Families created before one row per session have generation 0 and their
// tokens (random, 256 bits, stored as SHA-256 in refresh_tokens). Their
// live token rotates once more the old way (its row marked used) into
// generation 1 of the new form; their old tokens stay reuse.
package sessions
