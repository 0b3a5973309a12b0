// Package sqlite opens tokend's store on an SQLite file through the pure-Go
// driver modernc.org/sqlite (no cgo), and translates its errors into the
// store's sentinels.
//
// SQLite allows one writer at a time. Rather than let writers collide and
// fail with "database is locked", tokend gives writes a pool of exactly one
// connection whose transactions start with BEGIN IMMEDIATE, so writers queue
// in Go; reads use a separate read-only pool and, thanks to WAL, never wait
// for the writer. busy_timeout covers other processes (a CLI command run
// beside the server).
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// readers is the size of the read-only pool.
const readers = 4

// Open opens (creating if needed) the SQLite database file at path, with
// its parent directory, and returns the store. The database holds password
// hashes, so a new directory is 0700 and the file, its -wal and its -shm are
// 0600 (an existing database with looser modes is tightened).
func Open(ctx context.Context, path string, log *slog.Logger) (*sqlstore.DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: cannot create directory %s: %v", dir, unwrapPath(err))
		}
	}
	if err := restrictFiles(path); err != nil {
		return nil, err
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath()
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"
	w, err := sqlx.Open("sqlite", base+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %v", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The first connection creates the file and switches it to WAL, which
	// is where an unwritable path shows up.
	if err := w.PingContext(pctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: cannot open %s for writing: %v", path, describe(err))
	}
	r, err := sqlx.Open("sqlite", base+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %v", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(pctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: cannot open %s for reading: %v", path, describe(err))
	}
	return sqlstore.New(Dialect, w, r, log), nil
}

// fileMode is the mode of the database and of SQLite's files beside it.
const fileMode = 0o600

// restrictFiles creates the database file with fileMode before the driver
// opens it (the driver would create it 0644, and SQLite gives the -wal and
// -shm files the database file's mode), and tightens an existing database
// and its -wal and -shm files that group or others may access.
func restrictFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("sqlite: cannot open %s for writing: %v", path, unwrapPath(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: %s: %v", path, unwrapPath(err))
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlite: %s: %v", p, unwrapPath(err))
		}
		if fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, fileMode); err != nil {
			return fmt.Errorf("sqlite: cannot restrict %s to mode %04o: %v", p, fileMode, unwrapPath(err))
		}
	}
	return nil
}

// Dialect is the SQLite flavour of the shared SQL store.
var Dialect = sqlstore.Dialect{
	Name:      "sqlite",
	Translate: translate,
	Retryable: retryable,
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// describe turns a driver error into a short message.
func describe(err error) string { return err.Error() }

func code(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

func translate(err error) error {
	c, ok := code(err)
	if !ok {
		return err
	}
	switch c {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %v", store.ErrAlreadyExists, err)
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	switch c & 0xff {
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

func retryable(err error) bool {
	c, ok := code(err)
	if !ok {
		return false
	}
	return c&0xff == sqlite3.SQLITE_BUSY || c&0xff == sqlite3.SQLITE_LOCKED
}
