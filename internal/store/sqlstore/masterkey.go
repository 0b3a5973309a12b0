package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type dataKeyRow struct {
	Purpose   string `db:"purpose"`
	Version   int64  `db:"version"`
	Sealed    []byte `db:"key_sealed"`
	CreatedAt int64  `db:"created_at"`
}

// DataKeys implements store.MasterKeyStore.
func (db *DB) DataKeys(ctx context.Context) ([]store.DataKey, error) {
	var rows []dataKeyRow
	if err := db.r.SelectContext(ctx, &rows, `SELECT purpose, version, key_sealed, created_at FROM data_keys ORDER BY purpose, version`); err != nil {
		return nil, db.err("list data keys", err)
	}
	out := make([]store.DataKey, len(rows))
	for i, r := range rows {
		out[i] = store.DataKey{Purpose: r.Purpose, Version: uint32(r.Version), Sealed: r.Sealed, CreatedAt: fromMicros(r.CreatedAt)}
	}
	return out, nil
}

// AddDataKey implements store.MasterKeyStore.
func (db *DB) AddDataKey(ctx context.Context, k store.DataKey) error {
	if k.Purpose == "" || k.Version == 0 || len(k.Sealed) == 0 {
		return fmt.Errorf("add data key: %w: purpose, version and key are required", store.ErrInvalid)
	}
	return db.tx(ctx, "add data key", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO data_keys (purpose, version, key_sealed, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (purpose, version) DO NOTHING`), k.Purpose, int64(k.Version), k.Sealed, micros(k.CreatedAt))
		return err
	})
}

// sealedSource is where one kind of sealed value lives.
type sealedSource struct {
	kind store.SealedKind
	// list selects (id, sealed) pairs; update sets one row's value.
	list, update string
}

// sealedSources are the columns sealed under the master key, in the order
// of store.SealedKind. Rows without a sealed value (a passkey's empty
// secret, a token without data) are skipped.
var sealedSources = []sealedSource{
	{store.SealedSigningKey, `SELECT kid AS id, private_sealed AS sealed FROM signing_keys ORDER BY kid`,
		`UPDATE signing_keys SET private_sealed = ? WHERE kid = ?`},
	{store.SealedMail, `SELECT id, payload AS sealed FROM mail_outbox ORDER BY id`,
		`UPDATE mail_outbox SET payload = ? WHERE id = ?`},
	{store.SealedTOTP, `SELECT id, secret_sealed AS sealed FROM user_factors WHERE kind = 'totp' AND secret_sealed <> '' ORDER BY id`,
		`UPDATE user_factors SET secret_sealed = ? WHERE id = ?`},
	{store.SealedOneTime, `SELECT token_hash AS id, data AS sealed FROM onetime_tokens WHERE data IS NOT NULL ORDER BY token_hash`,
		`UPDATE onetime_tokens SET data = ? WHERE token_hash = ?`},
	{store.SealedDataKey, `SELECT purpose, version, key_sealed AS sealed FROM data_keys ORDER BY purpose, version`,
		`UPDATE data_keys SET key_sealed = ? WHERE purpose = ? AND version = ?`},
	{store.SealedCheck, `SELECT name AS id, value AS sealed FROM meta WHERE name = 'master_key_check'`,
		`UPDATE meta SET value = ? WHERE name = ?`},
}

type sealedRow struct {
	ID      string `db:"id"`
	Purpose string `db:"purpose"`
	Version int64  `db:"version"`
	Sealed  []byte `db:"sealed"`
}

func (r sealedRow) id(kind store.SealedKind) string {
	if kind == store.SealedDataKey {
		return r.Purpose + "/" + strconv.FormatInt(r.Version, 10)
	}
	return r.ID
}

// textKind reports whether a kind's column is text rather than bytes.
func textKind(kind store.SealedKind) bool {
	return kind == store.SealedTOTP || kind == store.SealedCheck
}

func (db *DB) listSealed(ctx context.Context, q sqlx.QueryerContext, src sealedSource) ([]store.SealedValue, error) {
	var rows []sealedRow
	if err := sqlx.SelectContext(ctx, q, &rows, src.list); err != nil {
		return nil, fmt.Errorf("list %s values: %w", src.kind, err)
	}
	out := make([]store.SealedValue, len(rows))
	for i, r := range rows {
		out[i] = store.SealedValue{Kind: src.kind, ID: r.id(src.kind), Sealed: r.Sealed}
	}
	return out, nil
}

// SealedValues implements store.MasterKeyStore.
func (db *DB) SealedValues(ctx context.Context, fn func(store.SealedValue) error) error {
	for _, src := range sealedSources {
		vals, err := db.listSealed(ctx, db.r, src)
		if err != nil {
			return db.err("list sealed values", err)
		}
		for _, v := range vals {
			if err := fn(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reseal implements store.MasterKeyStore. Rows are read into memory kind by
// kind and updated by their keys; a row deleted meanwhile (a mail sent by
// another instance) updates nothing, and rows inserted meanwhile are left
// for the next run.
func (db *DB) Reseal(ctx context.Context, fn func(store.SealedValue) ([]byte, error), ev func(map[store.SealedKind]int) *store.AuditEvent) (map[store.SealedKind]int, error) {
	var counts map[store.SealedKind]int
	err := db.tx(ctx, "reseal", func(tx *sqlx.Tx) error {
		counts = map[store.SealedKind]int{}
		for _, src := range sealedSources {
			vals, err := db.listSealed(ctx, tx, src)
			if err != nil {
				return err
			}
			for _, v := range vals {
				b, err := fn(v)
				if err != nil {
					return err
				}
				if b == nil {
					continue
				}
				var arg any = b
				if textKind(src.kind) {
					arg = string(b)
				}
				args := []any{arg, v.ID}
				if src.kind == store.SealedDataKey {
					purpose, version, _ := strings.Cut(v.ID, "/")
					n, err := strconv.ParseInt(version, 10, 64)
					if err != nil {
						return fmt.Errorf("data key %q: %w", v.ID, err)
					}
					args = []any{arg, purpose, n}
				}
				if _, err := tx.ExecContext(ctx, db.rebind(src.update), args...); err != nil {
					return fmt.Errorf("update %s %s: %w", src.kind, v.ID, err)
				}
				counts[src.kind]++
			}
		}
		if ev == nil {
			return nil
		}
		return db.appendAudit(ctx, tx, ev(counts))
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}
