package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type factorRow struct {
	ID           string        `db:"id"`
	UserID       string        `db:"user_id"`
	Kind         string        `db:"kind"`
	Name         string        `db:"name"`
	SecretSealed string        `db:"secret_sealed"`
	LastStep     int64         `db:"last_step"`
	CredentialID string        `db:"credential_id"`
	Credential   string        `db:"credential"`
	SignCount    int64         `db:"sign_count"`
	CreatedAt    int64         `db:"created_at"`
	LastUsedAt   sql.NullInt64 `db:"last_used_at"`
}

const factorColumns = `id, user_id, kind, name, secret_sealed, last_step, credential_id, credential, sign_count, created_at, last_used_at`

func (r factorRow) factor() store.Factor {
	return store.Factor{ID: r.ID, UserID: r.UserID, Kind: r.Kind, Name: r.Name, SecretSealed: r.SecretSealed,
		LastStep: r.LastStep, CredentialID: r.CredentialID, Credential: r.Credential, SignCount: r.SignCount,
		CreatedAt: fromMicros(r.CreatedAt), LastUsedAt: fromNullMicros(r.LastUsedAt)}
}

// Factors implements store.FactorStore.
func (db *DB) Factors(ctx context.Context, userID string) ([]store.Factor, error) {
	if !store.Storable(userID) {
		return nil, nil
	}
	var rows []factorRow
	if err := db.r.SelectContext(ctx, &rows, db.rebind(`SELECT `+factorColumns+` FROM user_factors
		WHERE user_id = ? ORDER BY created_at, id`), userID); err != nil {
		return nil, db.err("list factors", err)
	}
	out := make([]store.Factor, len(rows))
	for i, r := range rows {
		out[i] = r.factor()
	}
	return out, nil
}

// FactorByCredential implements store.FactorStore.
func (db *DB) FactorByCredential(ctx context.Context, credentialID string) (store.Factor, error) {
	if credentialID == "" || !store.Storable(credentialID) {
		return store.Factor{}, fmt.Errorf("get factor: %w", store.ErrNotFound)
	}
	var r factorRow
	if err := db.r.GetContext(ctx, &r, db.rebind(`SELECT `+factorColumns+` FROM user_factors
		WHERE credential_id = ? AND kind = ?`), credentialID, store.FactorWebAuthn); err != nil {
		return store.Factor{}, db.err("get factor", err)
	}
	return r.factor(), nil
}

// AddFactor implements store.FactorStore.
func (db *DB) AddFactor(ctx context.Context, f store.Factor, recoveryHashes []string, ev *store.AuditEvent) error {
	return db.tx(ctx, "add factor", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO user_factors (`+factorColumns+`)
			SELECT ?, id, ?, ?, ?, ?, ?, ?, ?, ?, NULL FROM users WHERE id = ?`),
			f.ID, f.Kind, f.Name, f.SecretSealed, f.LastStep, f.CredentialID, f.Credential, f.SignCount, micros(f.CreatedAt),
			f.UserID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		if len(recoveryHashes) > 0 {
			if err := db.replaceRecoveryCodes(ctx, tx, f.UserID, recoveryHashes, f.CreatedAt); err != nil {
				return err
			}
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// UseTOTPStep implements store.FactorStore with a conditional update: of
// two instances accepting the same code at once, one changes the row.
func (db *DB) UseTOTPStep(ctx context.Context, id string, step int64, at time.Time) (bool, error) {
	var n int64
	err := db.tx(ctx, "use totp step", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE user_factors SET last_step = ?, last_used_at = ?
			WHERE id = ? AND kind = ? AND last_step < ?`), step, micros(at), id, store.FactorTOTP, step)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

// UseWebAuthn implements store.FactorStore.
func (db *DB) UseWebAuthn(ctx context.Context, credentialID string, signCount int64, credential string, at time.Time) (bool, error) {
	var n int64
	err := db.tx(ctx, "use webauthn credential", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE user_factors SET sign_count = ?, credential = ?, last_used_at = ?
			WHERE credential_id = ? AND kind = ? AND ((? = 0 AND sign_count = 0) OR sign_count < ?)`),
			signCount, credential, micros(at), credentialID, store.FactorWebAuthn, signCount, signCount)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

// UseChallenge implements store.FactorStore: the hash is the primary key,
// so a second insert — from any instance — is a replay.
func (db *DB) UseChallenge(ctx context.Context, hash string, expires time.Time) error {
	if hash == "" || !store.Storable(hash) {
		return fmt.Errorf("record webauthn challenge: %w", store.ErrAlreadyExists)
	}
	return db.tx(ctx, "record webauthn challenge", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO webauthn_challenges (challenge_hash, expires_at) VALUES (?, ?)`),
			hash, micros(expires))
		return err
	})
}

// UseRecoveryCode implements store.FactorStore.
func (db *DB) UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time, ev *store.AuditEvent) (bool, error) {
	var n int64
	err := db.tx(ctx, "use recovery code", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE recovery_codes SET used_at = ?
			WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`), micros(at), userID, hash)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return n == 1, err
}

// RecoveryCodesLeft implements store.FactorStore.
func (db *DB) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := db.r.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`), userID)
	return n, db.err("count recovery codes", err)
}

// ReplaceRecoveryCodes implements store.FactorStore.
func (db *DB) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, at time.Time, ev *store.AuditEvent) error {
	return db.tx(ctx, "replace recovery codes", func(tx *sqlx.Tx) error {
		if err := db.replaceRecoveryCodes(ctx, tx, userID, hashes, at); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

func (db *DB) replaceRecoveryCodes(ctx context.Context, tx *sqlx.Tx, userID string, hashes []string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM recovery_codes WHERE user_id = ?`), userID); err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO recovery_codes (user_id, code_hash, created_at, used_at)
			VALUES (?, ?, ?, NULL)`), userID, h, micros(at)); err != nil {
			return err
		}
	}
	return nil
}

// RemoveFactor implements store.FactorStore.
func (db *DB) RemoveFactor(ctx context.Context, userID, id string, ev *store.AuditEvent) error {
	if !store.Storable(id) || !store.Storable(userID) {
		return fmt.Errorf("remove factor: %w", store.ErrNotFound)
	}
	return db.tx(ctx, "remove factor", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM user_factors WHERE id = ? AND user_id = ?`), id, userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM recovery_codes WHERE user_id = ?
			AND NOT EXISTS (SELECT 1 FROM user_factors WHERE user_id = ?)`), userID, userID); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// RemoveFactors implements store.FactorStore.
func (db *DB) RemoveFactors(ctx context.Context, userID string, ev *store.AuditEvent) (int, error) {
	var n int64
	err := db.tx(ctx, "remove factors", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM user_factors WHERE user_id = ?`), userID)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM recovery_codes WHERE user_id = ?`), userID); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return int(n), err
}
