package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

// Dialect is what differs between SQL engines.
type Dialect struct {
	// Name is "postgres" or "sqlite"; it also names the migrations folder.
	Name string
	// Translate maps a driver error to the store's sentinels (wrapping the
	// original): unique violations to store.ErrAlreadyExists, check
	// violations to store.ErrInvalid, lost connections to
	// store.ErrUnavailable. Other errors are returned unchanged.
	Translate func(error) error
	// Retryable reports whether a transaction failed only because a
	// concurrent one won (serialization failure, deadlock, busy database)
	// and may simply be run again.
	Retryable func(error) bool
	// SkipLocked is appended to a SELECT that claims rows for one worker
	// (" FOR UPDATE SKIP LOCKED" where supported; SQLite has one writer).
	SkipLocked string
	// ForShare and ForUpdate are appended to a SELECT that must hold the
	// rows it read until the transaction ends (" FOR SHARE", " FOR UPDATE"
	// where supported; SQLite's one writer holds the whole database).
	ForShare  string
	ForUpdate string
}

// DB is a store.Store on an SQL database.
type DB struct {
	d   Dialect
	w   *sqlx.DB // transactions and writes
	r   *sqlx.DB // reads outside transactions (may be w)
	log *slog.Logger
	// stmts caches prepared statements of the hot paths by their text, so
	// the engine parses and plans them once per connection, not per call.
	stmts sync.Map // string → *sqlx.Stmt
}

var _ store.Store = (*DB)(nil)

// New wraps open connection pools. r may be nil to read through w.
func New(d Dialect, w, r *sqlx.DB, log *slog.Logger) *DB {
	if r == nil {
		r = w
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DB{d: d, w: w, r: r, log: log}
}

// Dialect returns the dialect name.
func (db *DB) Dialect() string { return db.d.Name }

// Writer returns the write pool (for migrations and pool statistics).
func (db *DB) Writer() *sqlx.DB { return db.w }

// Reader returns the read pool (the write pool on Postgres).
func (db *DB) Reader() *sqlx.DB { return db.r }

// Ping checks that the database answers. It uses the read pool: on SQLite
// the one write connection may be queued behind every pending write under
// load, which says nothing about the database being reachable (on Postgres
// the two pools are one).
func (db *DB) Ping(ctx context.Context) error {
	if err := db.r.PingContext(ctx); err != nil {
		return db.err("ping", err)
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	db.stmts.Range(func(_, st any) bool {
		st.(*sqlx.Stmt).Close()
		return true
	})
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// err translates and wraps a driver error with what was being done.
func (db *DB) err(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, db.d.Translate(err))
}

// retryBudget bounds how long a transaction that keeps losing races is run
// again. Under SERIALIZABLE (CockroachDB, YugabyteDB, or Postgres set so) a
// hot row — the one address a credential-stuffing burst comes from — makes
// every waiter but one fail with 40001 per round, so the bound is a time,
// not a small count of attempts.
const retryBudget = 3 * time.Second

// retrier paces the retries of one operation.
type retrier struct {
	start   time.Time
	attempt int
}

func newRetrier() *retrier { return &retrier{start: time.Now()} }

// again reports whether an operation that failed with err should run again,
// after waiting its backoff.
func (r *retrier) again(ctx context.Context, retryable bool) bool {
	if !retryable || ctx.Err() != nil || time.Since(r.start) > retryBudget {
		return false
	}
	r.attempt++
	backoff(ctx, r.attempt)
	return true
}

// tx runs fn in a transaction on the write pool and commits it, retrying the
// whole function when the engine reports a retryable conflict. fn must not
// have side effects outside the transaction.
func (db *DB) tx(ctx context.Context, op string, fn func(tx *sqlx.Tx) error) error {
	var err error
	for r := newRetrier(); ; {
		err = db.tryTx(ctx, fn)
		if err == nil || !r.again(ctx, db.d.Retryable(err)) {
			break
		}
	}
	if err != nil && db.d.Retryable(err) {
		return fmt.Errorf("%s: %w: %v", op, store.ErrConflict, err)
	}
	return db.err(op, err)
}

func (db *DB) tryTx(ctx context.Context, fn func(tx *sqlx.Tx) error) (err error) {
	tx, err := db.w.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// backoff waits before retry number attempt: exponential from 1 ms, capped
// at 64 ms, with jitter between one half and one and a half of it, so that
// the losers of one round do not collide again in the next.
func backoff(ctx context.Context, attempt int) {
	base := time.Millisecond << min(attempt-1, 6)
	var b [2]byte
	_, _ = rand.Read(b[:])
	d := base/2 + time.Duration(binary.LittleEndian.Uint16(b[:]))*base/65536
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// prepared returns the write pool's prepared statement for q (already
// rebound), preparing it on first use. database/sql prepares it again on
// each connection that runs it, and again after a connection is lost.
func (db *DB) prepared(ctx context.Context, q string) (*sqlx.Stmt, error) {
	if st, ok := db.stmts.Load(q); ok {
		return st.(*sqlx.Stmt), nil
	}
	st, err := db.w.PreparexContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sqlx.Stmt), nil
	}
	return st, nil
}

// rebind turns `?` placeholders into the dialect's.
func (db *DB) rebind(q string) string { return db.w.Rebind(q) }

// micros converts a time to the stored form (Unix microseconds).
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullMicros stores the zero time as NULL.
func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// fromMicros converts the stored form back, in UTC.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// fromNullMicros returns the zero time for NULL.
func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}
