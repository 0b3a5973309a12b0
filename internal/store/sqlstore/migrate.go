package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/migrations"
)

// ErrSchemaTooNew means the database was migrated by a newer tokend.
var ErrSchemaTooNew = errors.New("database schema is newer than this tokend")

// SchemaVersion reports the database's applied version and the newest one
// this binary embeds.
func (db *DB) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := db.provider(nil)
	if err != nil {
		return 0, 0, err
	}
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, db.err("read schema version", err)
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		latest = srcs[len(srcs)-1].Version
	}
	return current, latest, nil
}

// Migrate applies every pending migration. Instances that start together
// serialize on a lease row, so each migration runs once; the others wait,
// then find nothing to do.
func (db *DB) Migrate(ctx context.Context) (applied []int64, err error) {
	p, err := db.provider(&leaseLocker{db: db, ttl: 2 * time.Minute})
	if err != nil {
		return nil, err
	}
	// goose holds one connection for the version table and takes the lock
	// on another, so a single-connection write pool (SQLite) would wait on
	// itself. Widen it for the migration only.
	if m := db.w.Stats().MaxOpenConnections; m > 0 && m < 2 {
		db.w.SetMaxOpenConns(2)
		defer db.w.SetMaxOpenConns(m)
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	if err != nil {
		return applied, fmt.Errorf("migrate %s: %w", db.d.Name, db.d.Translate(err))
	}
	cur, latest, err := db.SchemaVersion(ctx)
	if err != nil {
		return applied, err
	}
	if cur > latest {
		return applied, fmt.Errorf("%w: database at version %d, this binary knows up to %d", ErrSchemaTooNew, cur, latest)
	}
	return applied, nil
}

// MigrateTo applies the migrations up to version only (tests of a
// migration start from the schema before it).
func (db *DB) MigrateTo(ctx context.Context, version int64) error {
	p, err := db.provider(&leaseLocker{db: db, ttl: 2 * time.Minute})
	if err != nil {
		return err
	}
	if m := db.w.Stats().MaxOpenConnections; m > 0 && m < 2 {
		db.w.SetMaxOpenConns(2)
		defer db.w.SetMaxOpenConns(m)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return fmt.Errorf("migrate %s to %d: %w", db.d.Name, version, db.d.Translate(err))
	}
	return nil
}

func (db *DB) provider(l lock.Locker) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations.FS, db.d.Name)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", db.d.Name, err)
	}
	dialect := goose.DialectPostgres
	if db.d.Name == "sqlite" {
		dialect = goose.DialectSQLite3
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(goose.NewGoMigration(6, &goose.GoFunc{RunTx: db.renormalizeEmails}, &goose.GoFunc{Mode: goose.TransactionEnabled}))}
	if l != nil {
		opts = append(opts, goose.WithLocker(l))
	}
	p, err := goose.NewProvider(dialect, db.w.DB, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", db.d.Name, err)
	}
	return p, nil
}

// leaseLocker is goose's lock.Locker on a lease row of its own table (the
// leases table is created by the migrations it guards). The holder renews
// the lease while migrating; if it dies, the lease expires and another
// instance takes over.
type leaseLocker struct {
	db     *DB
	ttl    time.Duration
	holder string
	stop   chan struct{}
	done   chan struct{}
}

var _ lock.Locker = (*leaseLocker)(nil)

const migrationLease = "migrate"

func (l *leaseLocker) Lock(ctx context.Context, sdb *sql.DB) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	l.holder = hex.EncodeToString(b[:])
	if err := l.createTable(ctx, sdb); err != nil {
		return err
	}
	for {
		ok, err := l.acquire(ctx, sdb)
		if err != nil {
			return fmt.Errorf("take migration lease: %w", l.db.d.Translate(err))
		}
		if ok {
			break
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for migration lease: %w", ctx.Err())
		case <-t.C:
		}
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.renew(sdb)
	return nil
}

func (l *leaseLocker) Unlock(ctx context.Context, sdb *sql.DB) error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	_, err := sdb.ExecContext(ctx, l.db.rebind(`DELETE FROM tokend_migration_lock WHERE name = ? AND holder = ?`),
		migrationLease, l.holder)
	return err
}

func (l *leaseLocker) createTable(ctx context.Context, sdb *sql.DB) error {
	const q = `CREATE TABLE IF NOT EXISTS tokend_migration_lock (
		name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL)`
	var err error
	for range 3 {
		// Two Postgres sessions racing on CREATE TABLE IF NOT EXISTS can
		// both pass the existence check; the loser sees a unique violation
		// on the catalog and simply tries again.
		if _, err = sdb.ExecContext(ctx, q); err == nil {
			return nil
		}
	}
	return fmt.Errorf("create migration lock table: %w", l.db.d.Translate(err))
}

func (l *leaseLocker) acquire(ctx context.Context, sdb *sql.DB) (bool, error) {
	now := time.Now()
	res, err := sdb.ExecContext(ctx, l.db.rebind(`INSERT INTO tokend_migration_lock (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE tokend_migration_lock.expires_at <= ? OR tokend_migration_lock.holder = excluded.holder`),
		migrationLease, l.holder, micros(now.Add(l.ttl)), micros(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (l *leaseLocker) renew(sdb *sql.DB) {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.ttl/4)
			_, _ = l.acquire(ctx, sdb)
			cancel()
		}
	}
}

// renormalizeEmails is migration 6, in Go because SQLite has no Unicode
// normalization: emails are now unique under NFC (store.NormalizeEmail), so
// an address stored before in decomposed form would no longer be found at
// login. It rewrites every normalized email that changed. Where two
// accounts now have the same address, the older one keeps it and the newer
// one is left as it was (found by neither form; an operator merges them),
// since rewriting it would break the unique index.
func (db *DB) renormalizeEmails(ctx context.Context, tx *sql.Tx) error {
	type row struct{ id, email, normalized string }
	rows, err := tx.QueryContext(ctx, `SELECT id, email, email_normalized FROM users ORDER BY created_at, id`)
	if err != nil {
		return err
	}
	var change []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.email, &r.normalized); err != nil {
			rows.Close()
			return err
		}
		if n := store.NormalizeEmail(r.email); n != r.normalized {
			change = append(change, row{r.id, r.email, n})
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for _, r := range change {
		var taken int
		if err := tx.QueryRowContext(ctx, db.rebind(`SELECT COUNT(*) FROM users WHERE email_normalized = ?`), r.normalized).Scan(&taken); err != nil {
			return err
		}
		if taken > 0 {
			db.log.WarnContext(ctx, "two accounts have the same email under Unicode normalization; the newer one keeps its old form",
				"user_id", r.id)
			continue
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET email_normalized = ? WHERE id = ?`), r.normalized, r.id); err != nil {
			return err
		}
	}
	return nil
}
