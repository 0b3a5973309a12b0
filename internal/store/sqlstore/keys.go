package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type keyRow struct {
	KID           string        `db:"kid"`
	Alg           string        `db:"alg"`
	State         string        `db:"state"`
	PublicJWK     string        `db:"public_jwk"`
	PrivateSealed []byte        `db:"private_sealed"`
	Origin        string        `db:"origin"`
	CreatedAt     int64         `db:"created_at"`
	ActivatedAt   sql.NullInt64 `db:"activated_at"`
	RetiredAt     sql.NullInt64 `db:"retired_at"`
	PublishUntil  sql.NullInt64 `db:"publish_until"`
	RevokedAt     sql.NullInt64 `db:"revoked_at"`
}

const keyColumns = `kid, alg, state, public_jwk, private_sealed, origin, created_at, activated_at, retired_at, publish_until, revoked_at`

func (r keyRow) key() store.SigningKey {
	return store.SigningKey{
		KID: r.KID, Alg: r.Alg, State: store.KeyState(r.State), PublicJWK: []byte(r.PublicJWK),
		PrivateSealed: r.PrivateSealed, Origin: r.Origin, CreatedAt: fromMicros(r.CreatedAt),
		ActivatedAt: fromNullMicros(r.ActivatedAt), RetiredAt: fromNullMicros(r.RetiredAt),
		PublishUntil: fromNullMicros(r.PublishUntil), RevokedAt: fromNullMicros(r.RevokedAt),
	}
}

// SigningKeys implements store.KeyStore.
func (db *DB) SigningKeys(ctx context.Context, states ...store.KeyState) ([]store.SigningKey, error) {
	q := `SELECT ` + keyColumns + ` FROM signing_keys`
	args := make([]any, len(states))
	if len(states) > 0 {
		q += ` WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `)`
		for i, s := range states {
			args[i] = string(s)
		}
	}
	q += ` ORDER BY alg, created_at DESC, kid`
	var rows []keyRow
	if err := db.r.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, db.err("list signing keys", err)
	}
	out := make([]store.SigningKey, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return out, nil
}

func (db *DB) insertKey(ctx context.Context, tx *sqlx.Tx, k store.SigningKey) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO signing_keys (`+keyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		k.KID, k.Alg, string(k.State), string(k.PublicJWK), k.PrivateSealed, k.Origin, micros(k.CreatedAt),
		nullMicros(k.ActivatedAt), nullMicros(k.RetiredAt), nullMicros(k.PublishUntil), nullMicros(k.RevokedAt))
	return err
}

// BootstrapSigningKeys implements store.KeyStore.
func (db *DB) BootstrapSigningKeys(ctx context.Context, current, next store.SigningKey, ev *store.AuditEvent) error {
	return db.tx(ctx, "bootstrap signing keys", func(tx *sqlx.Tx) error {
		if err := db.insertKey(ctx, tx, current); err != nil {
			return err
		}
		if err := db.insertKey(ctx, tx, next); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// execOne runs a statement that must change exactly one row; otherwise the
// state it expected is gone and the transaction is a conflict.
func execOne(ctx context.Context, tx *sqlx.Tx, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return store.ErrConflict
	}
	return nil
}

// RotateSigningKeys implements store.KeyStore. The order of statements
// keeps the one-current and one-next indexes satisfied at every step.
func (db *DB) RotateSigningKeys(ctx context.Context, r store.KeyRotation, ev *store.AuditEvent) error {
	return db.tx(ctx, "rotate signing keys", func(tx *sqlx.Tx) error {
		if r.CurrentKID != "" {
			if err := execOne(ctx, tx, db.rebind(`UPDATE signing_keys SET state = 'retired', retired_at = ?, publish_until = ?
				WHERE kid = ? AND alg = ? AND state = 'current'`), micros(r.At), micros(r.PublishUntil), r.CurrentKID, r.Alg); err != nil {
				return err
			}
		}
		if err := execOne(ctx, tx, db.rebind(`UPDATE signing_keys SET state = 'current', activated_at = ?
			WHERE kid = ? AND alg = ? AND state = 'next'`), micros(r.At), r.NextKID, r.Alg); err != nil {
			return err
		}
		if err := db.insertKey(ctx, tx, r.NewNext); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// ReplaceNextSigningKey implements store.KeyStore.
func (db *DB) ReplaceNextSigningKey(ctx context.Context, k store.SigningKey, ev *store.AuditEvent) error {
	return db.tx(ctx, "replace next signing key", func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM signing_keys WHERE alg = ? AND state = 'next'`), k.Alg); err != nil {
			return err
		}
		if err := db.insertKey(ctx, tx, k); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// RevokeSigningKey implements store.KeyStore.
func (db *DB) RevokeSigningKey(ctx context.Context, kid string, at time.Time, newNext *store.SigningKey, ev *store.AuditEvent) error {
	return db.tx(ctx, "revoke signing key", func(tx *sqlx.Tx) error {
		var k keyRow
		if err := tx.GetContext(ctx, &k, db.rebind(`SELECT `+keyColumns+` FROM signing_keys WHERE kid = ?`), kid); err != nil {
			return err
		}
		state := store.KeyState(k.State)
		if state == store.KeyRevoked || state == store.KeyExpired {
			return fmt.Errorf("%w: key %s is already %s", store.ErrConflict, kid, state)
		}
		if err := execOne(ctx, tx, db.rebind(`UPDATE signing_keys SET state = 'revoked', revoked_at = ?
			WHERE kid = ? AND state = ?`), micros(at), kid, k.State); err != nil {
			return err
		}
		if state == store.KeyCurrent {
			// Promote the next key first so that signing never stops.
			if err := execOne(ctx, tx, db.rebind(`UPDATE signing_keys SET state = 'current', activated_at = ?
				WHERE alg = ? AND state = 'next'`), micros(at), k.Alg); err != nil {
				return fmt.Errorf("promote next key: %w", err)
			}
		}
		if state == store.KeyCurrent || state == store.KeyNext {
			if newNext == nil || newNext.Alg != k.Alg {
				return fmt.Errorf("%w: revoking a %s key needs a new next %s key", store.ErrInvalid, state, k.Alg)
			}
			if err := db.insertKey(ctx, tx, *newNext); err != nil {
				return err
			}
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// ExpireSigningKeys implements store.KeyStore.
func (db *DB) ExpireSigningKeys(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := db.tx(ctx, "expire signing keys", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE signing_keys SET state = 'expired'
			WHERE state = 'retired' AND publish_until <= ?`), micros(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// PutMetaIfAbsent implements store.MetaStore.
func (db *DB) PutMetaIfAbsent(ctx context.Context, name, value string) (string, error) {
	var stored string
	err := db.tx(ctx, "put meta", func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO meta (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO NOTHING`), name, value); err != nil {
			return err
		}
		return tx.GetContext(ctx, &stored, db.rebind(`SELECT value FROM meta WHERE name = ?`), name)
	})
	return stored, err
}
