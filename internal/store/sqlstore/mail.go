package sqlstore

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type mailRow struct {
	ID            string `db:"id"`
	Kind          string `db:"kind"`
	UserID        string `db:"user_id"`
	Payload       []byte `db:"payload"`
	CreatedAt     int64  `db:"created_at"`
	NextAttemptAt int64  `db:"next_attempt_at"`
	ExpiresAt     int64  `db:"expires_at"`
	Attempts      int    `db:"attempts"`
	LastError     string `db:"last_error"`
	LockedBy      string `db:"locked_by"`
	LockedUntil   int64  `db:"locked_until"`
}

// ClaimMail implements store.MailStore. On Postgres the candidate rows are
// locked with FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint
// jobs without waiting; SQLite has a single writer. The outer conditions are
// repeated so that a row is never claimed twice whatever the isolation.
func (db *DB) ClaimMail(ctx context.Context, holder string, now, until time.Time, limit int) ([]store.MailJob, error) {
	var rows []mailRow
	err := db.tx(ctx, "claim mail", func(tx *sqlx.Tx) error {
		rows = rows[:0]
		return tx.SelectContext(ctx, &rows, db.rebind(`UPDATE mail_outbox
			SET locked_by = ?, locked_until = ?, attempts = attempts + 1
			WHERE locked_until <= ? AND next_attempt_at <= ? AND expires_at > ? AND id IN (
				SELECT id FROM mail_outbox
				WHERE locked_until <= ? AND next_attempt_at <= ? AND expires_at > ?
				ORDER BY next_attempt_at LIMIT ?`+db.d.SkipLocked+`)
			RETURNING id, kind, user_id, payload, created_at, next_attempt_at, expires_at, attempts, last_error, locked_by, locked_until`),
			holder, micros(until), micros(now), micros(now), micros(now), micros(now), micros(now), micros(now), limit)
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.MailJob, len(rows))
	for i, r := range rows {
		out[i] = store.MailJob{ID: r.ID, Kind: r.Kind, UserID: r.UserID, Payload: r.Payload, CreatedAt: fromMicros(r.CreatedAt),
			NextAttemptAt: fromMicros(r.NextAttemptAt), ExpiresAt: fromMicros(r.ExpiresAt), Attempts: r.Attempts,
			LastError: r.LastError, LockedBy: r.LockedBy, LockedUntil: fromMicros(r.LockedUntil)}
	}
	return out, nil
}

// CompleteMail implements store.MailStore.
func (db *DB) CompleteMail(ctx context.Context, id, holder string) error {
	return db.tx(ctx, "complete mail", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM mail_outbox WHERE id = ? AND locked_by = ?`), id, holder)
		return err
	})
}

// RetryMail implements store.MailStore.
func (db *DB) RetryMail(ctx context.Context, id, holder string, next time.Time, lastErr string) error {
	if len(lastErr) > 500 {
		lastErr = lastErr[:500]
	}
	return db.tx(ctx, "retry mail", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`UPDATE mail_outbox SET next_attempt_at = ?, last_error = ?, locked_by = '', locked_until = 0
			WHERE id = ? AND locked_by = ?`), micros(next), lastErr, id, holder)
		return err
	})
}

// DropExpiredMail implements store.MailStore.
func (db *DB) DropExpiredMail(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := db.tx(ctx, "drop expired mail", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM mail_outbox WHERE expires_at <= ? AND locked_until <= ?`), micros(now), micros(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// PendingMail implements store.MailStore.
func (db *DB) PendingMail(ctx context.Context) (int, error) {
	var n int
	if err := db.r.GetContext(ctx, &n, `SELECT COUNT(*) FROM mail_outbox`); err != nil {
		return 0, db.err("count mail", err)
	}
	return n, nil
}

// QueueMail implements store.MailStore.
func (db *DB) QueueMail(ctx context.Context, m store.MailJob, ev *store.AuditEvent) error {
	return db.tx(ctx, "queue mail", func(tx *sqlx.Tx) error {
		if err := db.insertMail(ctx, tx, m); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

func (db *DB) insertMail(ctx context.Context, tx *sqlx.Tx, m store.MailJob) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO mail_outbox
		(id, kind, user_id, payload, created_at, next_attempt_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		m.ID, m.Kind, m.UserID, m.Payload, micros(m.CreatedAt), micros(m.NextAttemptAt), micros(m.ExpiresAt))
	return err
}
