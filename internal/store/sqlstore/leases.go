package sqlstore

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
)

// AcquireLease implements store.LeaseStore with one portable upsert: the
// row is taken when absent, expired, or already ours.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	var got bool
	err := db.tx(ctx, "acquire lease", func(tx *sqlx.Tx) error {
		var err error
		got, err = db.acquireLease(ctx, tx, name, holder, now, until)
		return err
	})
	return got, err
}

func (db *DB) acquireLease(ctx context.Context, tx *sqlx.Tx, name, holder string, now, until time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.expires_at <= ? OR leases.holder = excluded.holder`),
		name, holder, micros(until), micros(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseLease implements store.LeaseStore.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := db.w.ExecContext(ctx, db.rebind(`DELETE FROM leases WHERE name = ? AND holder = ?`), name, holder)
	return db.err("release lease", err)
}
