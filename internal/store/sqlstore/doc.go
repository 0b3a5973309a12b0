// Package sqlstore is tokend's one SQL implementation of store.Store, shared
// by the PostgreSQL and SQLite backends. SQL is written once with `?`
// placeholders and rebound per dialect by sqlx; the few real differences
// (error codes, row locking, connection pools) come from a Dialect supplied
// by the postgres and sqlite packages, which open the connections.
//
// Exported methods own their transaction and call unexported helpers that
// take it, so each operation commits all of its rows or none. Transactions
// that lose a serialization race are retried a bounded number of times; a
// lost connection surfaces as store.ErrUnavailable.
package sqlstore
