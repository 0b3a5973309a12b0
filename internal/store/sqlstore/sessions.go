package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type familyRow struct {
	ID           string        `db:"id"`
	UserID       string        `db:"user_id"`
	ClientID     string        `db:"client_id"`
	Scope        string        `db:"scope"`
	UserAgent    string        `db:"user_agent"`
	Address      string        `db:"address"`
	CreatedAt    int64         `db:"created_at"`
	ExpiresAt    int64         `db:"expires_at"`
	RevokedAt    sql.NullInt64 `db:"revoked_at"`
	RevokeReason string        `db:"revoke_reason"`
	SignInID     string        `db:"signin_id"`
	AuthTime     int64         `db:"auth_time"`
	AMR          string        `db:"amr"`
}

func (r familyRow) family() store.RefreshFamily {
	return store.RefreshFamily{ID: r.ID, UserID: r.UserID, ClientID: r.ClientID, Scope: r.Scope, UserAgent: r.UserAgent,
		Address: r.Address, CreatedAt: fromMicros(r.CreatedAt), ExpiresAt: fromMicros(r.ExpiresAt),
		RevokedAt: fromNullMicros(r.RevokedAt), RevokeReason: r.RevokeReason, SignInID: r.SignInID,
		AuthTime: fromMicros(r.AuthTime), AMR: splitAMR(r.AMR)}
}

const familyColumns = `id, user_id, client_id, scope, user_agent, address, created_at, expires_at, revoked_at, revoke_reason,
	signin_id, auth_time, amr`

// splitAMR and joinAMR store authentication methods as space-separated
// text (RFC 8176 values have no spaces).
func splitAMR(s string) []string { return strings.Fields(s) }
func joinAMR(l []string) string  { return strings.Join(l, " ") }

// familyValues are the values of familyColumns after the id and user id,
// in order, for an INSERT … SELECT that takes those two from elsewhere.
func familyValues(f store.RefreshFamily) []any {
	return []any{f.ClientID, f.Scope, f.UserAgent, f.Address, micros(f.CreatedAt), micros(f.ExpiresAt),
		nullMicros(f.RevokedAt), f.RevokeReason, f.SignInID, micros(f.AuthTime), joinAMR(f.AMR)}
}

type tokenRow struct {
	Hash       string        `db:"token_hash"`
	FamilyID   string        `db:"family_id"`
	UserID     string        `db:"user_id"`
	ClientID   string        `db:"client_id"`
	ClientKind string        `db:"client_kind"`
	Scope      string        `db:"scope"`
	ParentHash string        `db:"parent_hash"`
	CreatedAt  int64         `db:"created_at"`
	ExpiresAt  int64         `db:"expires_at"`
	UsedAt     sql.NullInt64 `db:"used_at"`
}

func (r tokenRow) token() store.RefreshToken {
	return store.RefreshToken{Hash: r.Hash, FamilyID: r.FamilyID, UserID: r.UserID, ClientID: r.ClientID,
		ClientKind: store.ClientKind(r.ClientKind), Scope: r.Scope, ParentHash: r.ParentHash,
		CreatedAt: fromMicros(r.CreatedAt), ExpiresAt: fromMicros(r.ExpiresAt), UsedAt: fromNullMicros(r.UsedAt)}
}

const tokenColumns = `token_hash, family_id, user_id, client_id, client_kind, scope, parent_hash, created_at, expires_at, used_at`

func (db *DB) insertToken(ctx context.Context, tx *sqlx.Tx, t store.RefreshToken) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO refresh_tokens (`+tokenColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), t.Hash, t.FamilyID, t.UserID, t.ClientID, string(t.ClientKind),
		t.Scope, t.ParentHash, micros(t.CreatedAt), micros(t.ExpiresAt), nullMicros(t.UsedAt))
	return err
}

// CreateSession implements store.SessionStore. The family is inserted by
// an INSERT … SELECT from the user's row under the check that the user is
// enabled at the verified credential version; on Postgres the row is held
// FOR SHARE, so a reset or disable (which update that row, then revoke the
// user's families) either waits for this commit and revokes the new family,
// or commits first and makes the SELECT find nothing.
func (db *DB) CreateSession(ctx context.Context, s store.NewSession) error {
	f := s.Family
	return db.tx(ctx, "create session", func(tx *sqlx.Tx) error {
		args := append(append([]any{f.ID}, familyValues(f)...), f.UserID, s.CredentialVersion)
		res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO refresh_families (`+familyColumns+`)
			SELECT ?, u.id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM users u
			WHERE u.id = ? AND u.disabled_at IS NULL AND u.credential_version = ?`+db.d.ForShare), args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrStale
		}
		if err := db.insertToken(ctx, tx, s.Token); err != nil {
			return err
		}
		if err := db.settleThrottles(ctx, tx, s.Settle); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, s.Audit)
	})
}

// RotateRefreshToken implements store.SessionStore: a conditional UPDATE
// that only a live token passes (unused, unexpired, of the right client, in
// a family that is not revoked, of an enabled user, under the family's rate
// limit), and the child's INSERT, atomically.
// Concurrent rotations of one token serialize on its row; the losers find
// it used and change nothing. On Postgres both run in one statement (a
// data-modifying CTE, one round trip, its own transaction); SQLite, which
// has no such CTEs and no round trips, runs them in a transaction.
func (db *DB) RotateRefreshToken(ctx context.Context, r store.Rotation) (parent, child store.RefreshToken, err error) {
	clientCond := ""
	args := []any{micros(r.At), r.Hash, micros(r.At), string(r.ClientKind)}
	if r.ClientID != "" {
		clientCond = ` AND client_id = ?`
		args = append(args, r.ClientID)
	}
	rateCond := ""
	if r.RateLimit > 0 {
		rateCond = `
		AND (SELECT COUNT(*) FROM refresh_tokens r WHERE r.family_id = refresh_tokens.family_id AND r.created_at > ?) < ?`
		args = append(args, micros(r.RateSince), r.RateLimit)
	}
	update := `UPDATE refresh_tokens SET used_at = ?
		WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? AND client_kind = ?` + clientCond + `
		AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NOT NULL)
		AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_tokens.user_id AND u.disabled_at IS NOT NULL)` + rateCond
	if db.d.Name == "postgres" {
		return db.rotateOneStatement(ctx, update, args, r)
	}
	upd, err := db.prepared(ctx, db.rebind(update+` RETURNING `+tokenColumns))
	if err != nil {
		return parent, child, db.err("rotate refresh token", err)
	}
	ins, err := db.prepared(ctx, db.rebind(`INSERT INTO refresh_tokens (`+tokenColumns+`)
		SELECT ?, f.id, f.user_id, f.client_id, ?, f.scope, ?, CAST(? AS BIGINT),
			CASE WHEN CAST(? AS BIGINT) < f.expires_at THEN CAST(? AS BIGINT) ELSE f.expires_at END, NULL
		FROM refresh_families f WHERE f.id = ?
		RETURNING `+tokenColumns))
	if err != nil {
		return parent, child, db.err("rotate refresh token", err)
	}
	err = db.tx(ctx, "rotate refresh token", func(tx *sqlx.Tx) error {
		var p tokenRow
		if err := tx.StmtxContext(ctx, upd).GetContext(ctx, &p, args...); err != nil {
			return err // sql.ErrNoRows: not rotatable
		}
		var c tokenRow
		if err := tx.StmtxContext(ctx, ins).GetContext(ctx, &c,
			r.ChildHash, p.ClientKind, p.Hash, micros(r.At), micros(r.ChildExpiresAt), micros(r.ChildExpiresAt), p.FamilyID); err != nil {
			return err
		}
		parent, child = p.token(), c.token()
		return nil
	})
	return parent, child, err
}

// rotatedRow is the parent and the child of a one-statement rotation.
type rotatedRow struct {
	tokenRow
	ChildHash      string `db:"child_hash"`
	ChildCreatedAt int64  `db:"child_created_at"`
	ChildExpiresAt int64  `db:"child_expires_at"`
}

func (db *DB) rotateOneStatement(ctx context.Context, update string, args []any, r store.Rotation) (parent, child store.RefreshToken, err error) {
	q := `WITH parent AS (` + update + ` RETURNING ` + tokenColumns + `),
	child AS (
		INSERT INTO refresh_tokens (` + tokenColumns + `)
		SELECT ?, p.family_id, p.user_id, p.client_id, p.client_kind, p.scope, p.token_hash, p.used_at,
			LEAST(CAST(? AS BIGINT), f.expires_at), NULL
		FROM parent p JOIN refresh_families f ON f.id = p.family_id
		RETURNING token_hash, created_at, expires_at)
	SELECT p.token_hash, p.family_id, p.user_id, p.client_id, p.client_kind, p.scope, p.parent_hash, p.created_at,
		p.expires_at, p.used_at, c.token_hash AS child_hash, c.created_at AS child_created_at, c.expires_at AS child_expires_at
	FROM parent p, child c`
	args = append(args, r.ChildHash, micros(r.ChildExpiresAt))
	st, err := db.prepared(ctx, db.rebind(q))
	if err != nil {
		return parent, child, db.err("rotate refresh token", err)
	}
	var row rotatedRow
	for rt := newRetrier(); ; {
		err = st.GetContext(ctx, &row, args...)
		if err == nil || !rt.again(ctx, db.d.Retryable(err)) {
			break
		}
	}
	if err != nil {
		return parent, child, db.err("rotate refresh token", err)
	}
	parent = row.tokenRow.token()
	child = store.RefreshToken{Hash: row.ChildHash, FamilyID: parent.FamilyID, UserID: parent.UserID, ClientID: parent.ClientID,
		ClientKind: parent.ClientKind, Scope: parent.Scope, ParentHash: parent.Hash, CreatedAt: fromMicros(row.ChildCreatedAt),
		ExpiresAt: fromMicros(row.ChildExpiresAt)}
	return parent, child, nil
}

// RefreshToken implements store.SessionStore.
func (db *DB) RefreshToken(ctx context.Context, hash string) (store.RefreshToken, store.RefreshFamily, error) {
	var t tokenRow
	if err := db.r.GetContext(ctx, &t, db.rebind(`SELECT `+tokenColumns+` FROM refresh_tokens WHERE token_hash = ?`), hash); err != nil {
		return store.RefreshToken{}, store.RefreshFamily{}, db.err("get refresh token", err)
	}
	f, err := db.Family(ctx, t.FamilyID)
	if err != nil {
		return store.RefreshToken{}, store.RefreshFamily{}, err
	}
	return t.token(), f, nil
}

// RecentRotations implements store.SessionStore.
func (db *DB) RecentRotations(ctx context.Context, familyID string, since time.Time) (int, error) {
	var n int
	err := db.r.GetContext(ctx, &n, db.rebind(`SELECT COUNT(*) FROM refresh_tokens WHERE family_id = ? AND created_at > ?`),
		familyID, micros(since))
	return n, db.err("count rotations", err)
}

type sessionStateRow struct {
	familyRow
	UserDisabled sql.NullInt64 `db:"user_disabled_at"`
}

// SessionState implements store.SessionStore.
func (db *DB) SessionState(ctx context.Context, familyID string) (store.SessionState, error) {
	if !store.Storable(familyID) {
		return store.SessionState{}, fmt.Errorf("get session state: %w", store.ErrNotFound)
	}
	var r sessionStateRow
	err := db.r.GetContext(ctx, &r, db.rebind(`SELECT f.id, f.user_id, f.client_id, f.scope, f.user_agent, f.address, f.created_at,
		f.expires_at, f.revoked_at, f.revoke_reason, f.signin_id, f.auth_time, f.amr, u.disabled_at AS user_disabled_at
		FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.id = ?`), familyID)
	if err != nil {
		return store.SessionState{}, db.err("get session state", err)
	}
	return store.SessionState{Family: r.family(), UserDisabled: r.UserDisabled.Valid}, nil
}

// Family implements store.SessionStore.
func (db *DB) Family(ctx context.Context, id string) (store.RefreshFamily, error) {
	if !store.Storable(id) {
		return store.RefreshFamily{}, fmt.Errorf("get session: %w", store.ErrNotFound)
	}
	var f familyRow
	if err := db.r.GetContext(ctx, &f, db.rebind(`SELECT `+familyColumns+` FROM refresh_families WHERE id = ?`), id); err != nil {
		return store.RefreshFamily{}, db.err("get session", err)
	}
	return f.family(), nil
}

// RevokeFamily implements store.SessionStore.
func (db *DB) RevokeFamily(ctx context.Context, familyID string, at time.Time, reason string, ev *store.AuditEvent) (bool, error) {
	var changed bool
	err := db.tx(ctx, "revoke session", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
			WHERE id = ? AND revoked_at IS NULL`), micros(at), reason, familyID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		changed = true
		return db.appendAudit(ctx, tx, ev)
	})
	return changed, err
}

// RevokeUserFamily implements store.SessionStore.
func (db *DB) RevokeUserFamily(ctx context.Context, userID, familyID string, at time.Time, reason string, ev *store.AuditEvent) error {
	if !store.Storable(familyID) {
		return fmt.Errorf("revoke session: %w", store.ErrNotFound)
	}
	return db.tx(ctx, "revoke session", func(tx *sqlx.Tx) error {
		if err := execOne(ctx, tx, db.rebind(`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
			WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?`),
			micros(at), reason, familyID, userID, micros(at)); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return store.ErrNotFound
			}
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// RevokeUserFamilies implements store.SessionStore.
func (db *DB) RevokeUserFamilies(ctx context.Context, userID, except string, at time.Time, reason string, ev *store.AuditEvent) (int, error) {
	var n int
	err := db.tx(ctx, "revoke sessions", func(tx *sqlx.Tx) error {
		var err error
		n, err = db.revokeUserFamilies(ctx, tx, userID, except, at, reason)
		if err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
	return n, err
}

func (db *DB) revokeUserFamilies(ctx context.Context, tx *sqlx.Tx, userID, except string, at time.Time, reason string) (int, error) {
	res, err := tx.ExecContext(ctx, db.rebind(`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
		WHERE user_id = ? AND id <> ? AND revoked_at IS NULL`), micros(at), reason, userID, except)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

type sessionRow struct {
	familyRow
	LastUsed  int64         `db:"last_used"`
	LiveUntil sql.NullInt64 `db:"live_until"`
}

// ListSessions implements store.SessionStore.
func (db *DB) ListSessions(ctx context.Context, userID string, now time.Time) ([]store.RefreshFamily, error) {
	var rows []sessionRow
	err := db.r.SelectContext(ctx, &rows, db.rebind(`SELECT `+familyColumns+`,
			(SELECT MAX(t.created_at) FROM refresh_tokens t WHERE t.family_id = f.id) AS last_used,
			(SELECT MAX(t.expires_at) FROM refresh_tokens t WHERE t.family_id = f.id AND t.used_at IS NULL) AS live_until
		FROM refresh_families f
		WHERE f.user_id = ? AND f.revoked_at IS NULL AND f.expires_at > ?
		ORDER BY f.created_at DESC, f.id`), userID, micros(now))
	if err != nil {
		return nil, db.err("list sessions", err)
	}
	out := make([]store.RefreshFamily, 0, len(rows))
	for _, r := range rows {
		if !r.LiveUntil.Valid || r.LiveUntil.Int64 <= micros(now) {
			continue // its newest token idled out
		}
		f := r.family()
		f.LastUsedAt = fromMicros(r.LastUsed)
		out = append(out, f)
	}
	return out, nil
}
