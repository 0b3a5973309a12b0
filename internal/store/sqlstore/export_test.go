package sqlstore

import (
	"context"
	"time"
)

// DownTo rolls the schema back to version (tests of a migration's Down).
func (db *DB) DownTo(ctx context.Context, version int64) error {
	p, err := db.provider(&leaseLocker{db: db, ttl: 2 * time.Minute})
	if err != nil {
		return err
	}
	if m := db.w.Stats().MaxOpenConnections; m > 0 && m < 2 {
		db.w.SetMaxOpenConns(2)
		defer db.w.SetMaxOpenConns(m)
	}
	_, err = p.DownTo(ctx, version)
	return err
}
