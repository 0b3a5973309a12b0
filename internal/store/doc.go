// Package store defines tokend's persistent records, the Store interface that
// every backend implements, and the sentinel errors callers branch on.
//
// It is a leaf: it imports nothing else from tokend, so the domain packages
// (users, keys, sessions, reset) can all depend on it without cycles. Backends
// live in subpackages (sqlstore with its postgres and sqlite openers) and must
// pass the conformance suite in storetest.
//
// The store saves and loads bytes; policy (hashing, expiry rules, rate limits)
// belongs to the domain packages, which pass every timestamp in explicitly so
// that tests drive time with a fake clock.
package store
