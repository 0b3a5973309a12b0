package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type signInRow struct {
	ID           string        `db:"id"`
	SecretHash   string        `db:"secret_hash"`
	UserID       string        `db:"user_id"`
	AuthTime     int64         `db:"auth_time"`
	AMR          string        `db:"amr"`
	UserAgent    string        `db:"user_agent"`
	Address      string        `db:"address"`
	CreatedAt    int64         `db:"created_at"`
	LastUsedAt   int64         `db:"last_used_at"`
	ExpiresAt    int64         `db:"expires_at"`
	RevokedAt    sql.NullInt64 `db:"revoked_at"`
	RevokeReason string        `db:"revoke_reason"`
}

const signInColumns = `id, secret_hash, user_id, auth_time, amr, user_agent, address, created_at, last_used_at, expires_at,
	revoked_at, revoke_reason`

func (r signInRow) signIn() store.SignIn {
	return store.SignIn{ID: r.ID, SecretHash: r.SecretHash, UserID: r.UserID, AuthTime: fromMicros(r.AuthTime),
		AMR: splitAMR(r.AMR), UserAgent: r.UserAgent, Address: r.Address, CreatedAt: fromMicros(r.CreatedAt),
		LastUsedAt: fromMicros(r.LastUsedAt), ExpiresAt: fromMicros(r.ExpiresAt), RevokedAt: fromNullMicros(r.RevokedAt),
		RevokeReason: r.RevokeReason}
}

// CreateSignIn implements store.SignInStore with the same guard as
// CreateSession: the row is inserted from the user's row, held, at the
// credential version the sign-in checked.
func (db *DB) CreateSignIn(ctx context.Context, n store.NewSignIn) error {
	s := n.SignIn
	return db.tx(ctx, "create sign-in session", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO signin_sessions (`+signInColumns+`)
			SELECT ?, ?, u.id, ?, ?, ?, ?, ?, ?, ?, NULL, '' FROM users u
			WHERE u.id = ? AND u.disabled_at IS NULL AND u.credential_version = ?`+db.d.ForShare),
			s.ID, s.SecretHash, micros(s.AuthTime), joinAMR(s.AMR), s.UserAgent, s.Address, micros(s.CreatedAt),
			micros(s.LastUsedAt), micros(s.ExpiresAt), s.UserID, n.CredentialVersion)
		if err != nil {
			return err
		}
		if k, err := res.RowsAffected(); err != nil {
			return err
		} else if k == 0 {
			return store.ErrStale
		}
		if err := db.settleThrottles(ctx, tx, n.Settle); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, n.Audit)
	})
}

// SignIn implements store.SignInStore.
func (db *DB) SignIn(ctx context.Context, id string) (store.SignIn, error) {
	if !store.Storable(id) {
		return store.SignIn{}, fmt.Errorf("get sign-in session: %w", store.ErrNotFound)
	}
	var r signInRow
	if err := db.r.GetContext(ctx, &r, db.rebind(`SELECT `+signInColumns+` FROM signin_sessions WHERE id = ?`), id); err != nil {
		return store.SignIn{}, db.err("get sign-in session", err)
	}
	return r.signIn(), nil
}

// ListSignIns implements store.SignInStore.
func (db *DB) ListSignIns(ctx context.Context, userID string, now time.Time) ([]store.SignIn, error) {
	var rows []signInRow
	if err := db.r.SelectContext(ctx, &rows, db.rebind(`SELECT `+signInColumns+` FROM signin_sessions
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id`), userID, micros(now)); err != nil {
		return nil, db.err("list sign-in sessions", err)
	}
	out := make([]store.SignIn, len(rows))
	for i, r := range rows {
		out[i] = r.signIn()
	}
	return out, nil
}

// RevokeSignIn implements store.SignInStore.
func (db *DB) RevokeSignIn(ctx context.Context, id, userID string, at time.Time, reason string, ev *store.AuditEvent) (bool, error) {
	if !store.Storable(id) {
		return false, fmt.Errorf("revoke sign-in session: %w", store.ErrNotFound)
	}
	var changed bool
	err := db.tx(ctx, "revoke sign-in session", func(tx *sqlx.Tx) error {
		changed = false
		q, args := `UPDATE signin_sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL`,
			[]any{micros(at), reason, id}
		if userID != "" {
			q += ` AND user_id = ? AND expires_at > ?`
			args = append(args, userID, micros(at))
		}
		res, err := tx.ExecContext(ctx, db.rebind(q), args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if userID != "" {
				return store.ErrNotFound
			}
			return nil
		}
		changed = true
		if err := db.revokeSignInFamilies(ctx, tx, []string{id}, at, reason); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return changed, err
}

// RevokeUserSignIns implements store.SignInStore.
func (db *DB) RevokeUserSignIns(ctx context.Context, userID, except string, at time.Time, reason string) (int, error) {
	var n int
	err := db.tx(ctx, "revoke sign-in sessions", func(tx *sqlx.Tx) error {
		var err error
		n, err = db.revokeUserSignIns(ctx, tx, userID, except, at, reason)
		return err
	})
	return n, err
}

// revokeUserSignIns ends the user's live sign-in sessions but except, and
// the families started through them.
func (db *DB) revokeUserSignIns(ctx context.Context, tx *sqlx.Tx, userID, except string, at time.Time, reason string) (int, error) {
	var ids []string
	if err := tx.SelectContext(ctx, &ids, db.rebind(`SELECT id FROM signin_sessions
		WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`), userID, except); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE signin_sessions SET revoked_at = ?, revoke_reason = ?
		WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`), micros(at), reason, userID, except); err != nil {
		return 0, err
	}
	return len(ids), db.revokeSignInFamilies(ctx, tx, ids, at, reason)
}

// revokeSignInFamilies revokes the live families started through the
// sign-in sessions ids.
func (db *DB) revokeSignInFamilies(ctx context.Context, tx *sqlx.Tx, ids []string, at time.Time, reason string) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
			WHERE signin_id = ? AND revoked_at IS NULL`), micros(at), reason, id); err != nil {
			return err
		}
	}
	return nil
}

type codeRow struct {
	Hash          string        `db:"code_hash"`
	ClientID      string        `db:"client_id"`
	RedirectURI   string        `db:"redirect_uri"`
	CodeChallenge string        `db:"code_challenge"`
	Nonce         string        `db:"nonce"`
	Scope         string        `db:"scope"`
	SignInID      string        `db:"signin_id"`
	UserID        string        `db:"user_id"`
	AuthTime      int64         `db:"auth_time"`
	AMR           string        `db:"amr"`
	CreatedAt     int64         `db:"created_at"`
	ExpiresAt     int64         `db:"expires_at"`
	UsedAt        sql.NullInt64 `db:"used_at"`
	FamilyID      string        `db:"family_id"`
}

const codeColumns = `code_hash, client_id, redirect_uri, code_challenge, nonce, scope, signin_id, user_id, auth_time, amr,
	created_at, expires_at, used_at, family_id`

func (r codeRow) code() store.AuthCode {
	return store.AuthCode{Hash: r.Hash, ClientID: r.ClientID, RedirectURI: r.RedirectURI, CodeChallenge: r.CodeChallenge,
		Nonce: r.Nonce, Scope: r.Scope, SignInID: r.SignInID, UserID: r.UserID, AuthTime: fromMicros(r.AuthTime),
		AMR: splitAMR(r.AMR), CreatedAt: fromMicros(r.CreatedAt), ExpiresAt: fromMicros(r.ExpiresAt),
		UsedAt: fromNullMicros(r.UsedAt), FamilyID: r.FamilyID}
}

// CreateCode implements store.CodeStore: the code is inserted from the
// live sign-in session's row (held, with its user's), so a logout or a
// reset committing first makes it fail.
func (db *DB) CreateCode(ctx context.Context, c store.AuthCode) error {
	return db.tx(ctx, "create authorization code", func(tx *sqlx.Tx) error {
		at := micros(c.CreatedAt)
		res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO authorization_codes (`+codeColumns+`)
			SELECT ?, ?, ?, ?, ?, ?, s.id, s.user_id, ?, ?, ?, ?, NULL, ''
			FROM signin_sessions s JOIN users u ON u.id = s.user_id
			WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled_at IS NULL`+db.d.ForShare),
			c.Hash, c.ClientID, c.RedirectURI, c.CodeChallenge, c.Nonce, c.Scope, micros(c.AuthTime), joinAMR(c.AMR),
			at, micros(c.ExpiresAt), c.SignInID, c.UserID, at)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrStale
		}
		_, err = tx.ExecContext(ctx, db.rebind(`UPDATE signin_sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?`),
			at, c.SignInID, at)
		return err
	})
}

// Code implements store.CodeStore.
func (db *DB) Code(ctx context.Context, hash string) (store.AuthCode, error) {
	var r codeRow
	if err := db.r.GetContext(ctx, &r, db.rebind(`SELECT `+codeColumns+` FROM authorization_codes WHERE code_hash = ?`), hash); err != nil {
		return store.AuthCode{}, db.err("get authorization code", err)
	}
	return r.code(), nil
}

// ExchangeCode implements store.CodeStore.
func (db *DB) ExchangeCode(ctx context.Context, x store.CodeExchange) (store.AuthCode, error) {
	var code store.AuthCode
	f := x.Session.Family
	err := db.tx(ctx, "exchange authorization code", func(tx *sqlx.Tx) error {
		var r codeRow
		if err := tx.GetContext(ctx, &r, db.rebind(`UPDATE authorization_codes SET used_at = ?, family_id = ?
			WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?
			RETURNING `+codeColumns), micros(x.At), f.ID, x.Hash, micros(x.At)); err != nil {
			return err // sql.ErrNoRows: ErrNotFound
		}
		code = r.code()
		args := append(append([]any{f.ID}, familyValues(f)...), r.SignInID, r.UserID, micros(x.At))
		res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO refresh_families (`+familyColumns+`)
			SELECT ?, u.id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
			FROM signin_sessions s JOIN users u ON u.id = s.user_id
			WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled_at IS NULL`+db.d.ForShare),
			args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrStale
		}
		if err := db.insertToken(ctx, tx, x.Session.Token); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, x.Session.Audit)
	})
	if errors.Is(err, store.ErrStale) {
		return store.AuthCode{}, store.ErrStale
	}
	return code, err
}
