package sqlstore

import (
	"context"
	"database/sql"
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
// reset committing first makes it fail. The session's last use is written
// when it is more than a minute old, not on every code. On Postgres it is
// one prepared statement.
func (db *DB) CreateCode(ctx context.Context, c store.AuthCode) error {
	at := micros(c.CreatedAt)
	codeArgs := []any{c.Hash, c.ClientID, c.RedirectURI, c.CodeChallenge, c.Nonce, c.Scope, micros(c.AuthTime), joinAMR(c.AMR),
		at, micros(c.ExpiresAt)}
	if db.d.Name == "postgres" {
		st, err := db.prepared(ctx, db.rebind(`WITH live AS (
				SELECT s.id, s.user_id, s.last_used_at FROM signin_sessions s JOIN users u ON u.id = s.user_id
				WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled_at IS NULL
				FOR SHARE OF s, u),
			touch AS (UPDATE signin_sessions SET last_used_at = ? WHERE id IN (SELECT id FROM live WHERE last_used_at < ?))
			INSERT INTO authorization_codes (`+codeColumns+`)
			SELECT ?, ?, ?, ?, ?, ?, l.id, l.user_id, ?, ?, ?, ?, NULL, '' FROM live l`))
		if err != nil {
			return db.err("create authorization code", err)
		}
		args := append([]any{c.SignInID, c.UserID, at, at, at - int64(time.Minute/time.Microsecond)}, codeArgs...)
		var n int64
		for rt := newRetrier(); ; {
			var res sql.Result
			res, err = st.ExecContext(ctx, args...)
			if err == nil {
				n, err = res.RowsAffected()
			}
			if err == nil || !rt.again(ctx, db.d.Retryable(err)) {
				break
			}
		}
		if err != nil {
			return db.err("create authorization code", err)
		}
		if n == 0 {
			return store.ErrStale
		}
		return nil
	}
	return db.tx(ctx, "create authorization code", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO authorization_codes (`+codeColumns+`)
			SELECT ?, ?, ?, ?, ?, ?, s.id, s.user_id, ?, ?, ?, ?, NULL, ''
			FROM signin_sessions s JOIN users u ON u.id = s.user_id
			WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled_at IS NULL`),
			append(codeArgs, c.SignInID, c.UserID, at)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrStale
		}
		_, err = tx.ExecContext(ctx, db.rebind(`UPDATE signin_sessions SET last_used_at = ? WHERE id = ? AND last_used_at < ?`),
			at, c.SignInID, at-int64(time.Minute/time.Microsecond))
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

// exchangedRow is a consumed code with its user.
type exchangedRow struct {
	codeRow
	Email    string        `db:"email"`
	Verified sql.NullInt64 `db:"email_verified_at"`
}

// ExchangeCode implements store.CodeStore. Every condition is in the
// UPDATE that consumes the code, so the common case is one write: on
// Postgres one prepared statement (data-modifying CTEs, as the refresh
// rotation), whose first step holds the sign-in session and user rows as
// CreateSession holds the user's; on SQLite one transaction.
func (db *DB) ExchangeCode(ctx context.Context, x store.CodeExchange) (store.AuthCode, store.User, error) {
	details, err := auditDetails(x.Audit)
	if err != nil {
		return store.AuthCode{}, store.User{}, err
	}
	at := micros(x.At)
	var row exchangedRow
	if db.d.Name == "postgres" {
		st, err := db.prepared(ctx, db.rebind(`WITH live AS (
				SELECT s.id FROM signin_sessions s JOIN users u ON u.id = s.user_id
				WHERE s.id = (SELECT signin_id FROM authorization_codes WHERE code_hash = ?)
				  AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled_at IS NULL
				FOR SHARE OF s),
			code AS (
				UPDATE authorization_codes SET used_at = ?, family_id = ?
				WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? AND client_id = ? AND redirect_uri = ?
				  AND code_challenge = ? AND signin_id IN (SELECT id FROM live)
				RETURNING `+codeColumns+`),
			fam AS (
				INSERT INTO refresh_families (`+familyColumns+`, rate_window_start, rate_count)
				SELECT c.family_id, c.user_id, c.client_id, c.scope, ?, ?, ?, ?, NULL, '', c.signin_id, c.auth_time, c.amr,
					?, 1, ?, ?, ?, 1 FROM code c
				RETURNING id),
			ev AS (
				INSERT INTO audit_events (type, user_id, client_id, address, details, created_at)
				SELECT ?, c.user_id, c.client_id, ?, ?, ? FROM code c WHERE ? <> '')
			SELECT c.*, u.email, u.email_verified_at FROM code c JOIN users u ON u.id = c.user_id`))
		if err != nil {
			return store.AuthCode{}, store.User{}, db.err("exchange authorization code", err)
		}
		evType, evAddr := "", ""
		if x.Audit != nil {
			evType, evAddr = x.Audit.Type, x.Audit.Address
		}
		args := []any{x.Hash, at, at, x.FamilyID, x.Hash, at, x.ClientID, x.RedirectURI, x.Challenge,
			x.UserAgent, x.Address, at, micros(x.FamilyExpiresAt),
			string(x.ClientKind), at, micros(x.TokenExpiresAt), at,
			evType, evAddr, details, at, evType}
		for rt := newRetrier(); ; {
			err = st.GetContext(ctx, &row, args...)
			if err == nil || !rt.again(ctx, db.d.Retryable(err)) {
				break
			}
		}
		if err != nil {
			return store.AuthCode{}, store.User{}, db.err("exchange authorization code", err)
		}
		return row.code(), store.User{ID: row.UserID, Email: row.Email, EmailVerifiedAt: fromNullMicros(row.Verified)}, nil
	}
	err = db.tx(ctx, "exchange authorization code", func(tx *sqlx.Tx) error {
		var r codeRow
		if err := tx.GetContext(ctx, &r, db.rebind(`UPDATE authorization_codes SET used_at = ?, family_id = ?
			WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? AND client_id = ? AND redirect_uri = ? AND code_challenge = ?
			  AND EXISTS (SELECT 1 FROM signin_sessions s JOIN users u ON u.id = s.user_id
			    WHERE s.id = authorization_codes.signin_id AND s.revoked_at IS NULL AND s.expires_at > ? AND u.disabled_at IS NULL)
			RETURNING `+codeColumns), at, x.FamilyID, x.Hash, at, x.ClientID, x.RedirectURI, x.Challenge, at); err != nil {
			return err // sql.ErrNoRows: ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO refresh_families (`+familyColumns+`, rate_window_start, rate_count)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, '', ?, ?, ?, ?, 1, ?, ?, ?, 1)`), x.FamilyID, r.UserID, r.ClientID, r.Scope,
			x.UserAgent, x.Address, at, micros(x.FamilyExpiresAt), r.SignInID, r.AuthTime, r.AMR,
			string(x.ClientKind), at, micros(x.TokenExpiresAt), at); err != nil {
			return err
		}
		if x.Audit != nil {
			ev := *x.Audit
			ev.UserID = r.UserID
			if err := db.appendAudit(ctx, tx, &ev); err != nil {
				return err
			}
		}
		row.codeRow = r
		return tx.QueryRowxContext(ctx, db.rebind(`SELECT email, email_verified_at FROM users WHERE id = ?`), r.UserID).
			Scan(&row.Email, &row.Verified)
	})
	if err != nil {
		return store.AuthCode{}, store.User{}, err
	}
	return row.code(), store.User{ID: row.UserID, Email: row.Email, EmailVerifiedAt: fromNullMicros(row.Verified)}, nil
}

// StepUpSignIn implements store.SignInStore.
func (db *DB) StepUpSignIn(ctx context.Context, id string, amr []string, at time.Time, settle store.ThrottleSettlement, ev *store.AuditEvent) error {
	if !store.Storable(id) {
		return store.ErrStale
	}
	return db.tx(ctx, "step up sign-in session", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE signin_sessions SET amr = ?, auth_time = ?, last_used_at = ?
			WHERE id = ? AND revoked_at IS NULL AND expires_at > ?`), joinAMR(amr), micros(at), micros(at), id, micros(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrStale
		}
		if err := db.settleThrottles(ctx, tx, settle); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}
