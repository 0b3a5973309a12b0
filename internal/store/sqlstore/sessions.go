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
	ClientKind   string        `db:"client_kind"`
	Generation   int64         `db:"generation"`
	RotatedAt    int64         `db:"rotated_at"`
	IdleExpires  int64         `db:"idle_expires_at"`
}

func (r familyRow) family() store.RefreshFamily {
	return store.RefreshFamily{ID: r.ID, UserID: r.UserID, ClientID: r.ClientID, Scope: r.Scope, UserAgent: r.UserAgent,
		Address: r.Address, CreatedAt: fromMicros(r.CreatedAt), ExpiresAt: fromMicros(r.ExpiresAt),
		RevokedAt: fromNullMicros(r.RevokedAt), RevokeReason: r.RevokeReason, SignInID: r.SignInID,
		AuthTime: fromMicros(r.AuthTime), AMR: splitAMR(r.AMR), ClientKind: store.ClientKind(r.ClientKind),
		Generation: r.Generation, RotatedAt: fromMicros(r.RotatedAt), IdleExpiresAt: fromMicros(r.IdleExpires)}
}

// familyColumns are a family's columns but its rate window
// (rate_window_start, rate_count), which only the store reads.
const familyColumns = `id, user_id, client_id, scope, user_agent, address, created_at, expires_at, revoked_at, revoke_reason,
	signin_id, auth_time, amr, client_kind, generation, rotated_at, idle_expires_at`

// splitAMR and joinAMR store authentication methods as space-separated
// text (RFC 8176 values have no spaces).
func splitAMR(s string) []string { return strings.Fields(s) }
func joinAMR(l []string) string  { return strings.Join(l, " ") }

// familyValues are the values of familyColumns after the id and user id,
// in order, for an INSERT … SELECT that takes those two from elsewhere.
func familyValues(f store.RefreshFamily) []any {
	return []any{f.ClientID, f.Scope, f.UserAgent, f.Address, micros(f.CreatedAt), micros(f.ExpiresAt),
		nullMicros(f.RevokedAt), f.RevokeReason, f.SignInID, micros(f.AuthTime), joinAMR(f.AMR), string(f.ClientKind),
		f.Generation, micros(f.RotatedAt), micros(f.IdleExpiresAt)}
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
// or commits first and makes the SELECT find nothing. The family starts at
// generation 1 (0 and a first row in refresh_tokens for s.Legacy), its rate
// window at its creation with one token.
func (db *DB) CreateSession(ctx context.Context, s store.NewSession) error {
	f := s.Family
	f.Generation, f.RotatedAt = 1, f.CreatedAt
	f.IdleExpiresAt = minTime(f.IdleExpiresAt, f.ExpiresAt)
	if s.Legacy != nil {
		f.Generation, f.RotatedAt, f.IdleExpiresAt, f.ClientKind = 0, time.Time{}, time.Time{}, ""
	}
	return db.tx(ctx, "create session", func(tx *sqlx.Tx) error {
		tokens := 1 // the rate window counts the first token
		if s.Legacy != nil {
			tokens = 0 // counted in refresh_tokens
		}
		args := append(append([]any{f.ID}, familyValues(f)...), micros(f.CreatedAt), tokens, f.UserID, s.CredentialVersion)
		res, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO refresh_families (`+familyColumns+`, rate_window_start, rate_count)
			SELECT ?, u.id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM users u
			WHERE u.id = ? AND u.disabled_at IS NULL AND u.credential_version = ?`+db.d.ForShare), args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrStale
		}
		if s.Legacy != nil {
			if err := db.insertToken(ctx, tx, *s.Legacy); err != nil {
				return err
			}
		}
		if err := db.settleThrottles(ctx, tx, s.Settle); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, s.Audit)
	})
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// RotateFamily implements store.SessionStore: one conditional UPDATE of
// the family's row by primary key, which changes no indexed column (so
// Postgres can make it a heap-only update) and inserts nothing. Every
// condition is in its WHERE clause, the user's state included, so
// concurrent rotations of one generation serialize on the row and the
// losers change nothing. A Postgres serialization failure is retried.
func (db *DB) RotateFamily(ctx context.Context, r store.FamilyRotation) (store.RefreshFamily, error) {
	if !store.Storable(r.FamilyID) {
		return store.RefreshFamily{}, fmt.Errorf("rotate session: %w", store.ErrNotFound)
	}
	at, idle, since := micros(r.At), micros(r.IdleExpiresAt), micros(r.RateSince)
	args := []any{at, idle, idle, since, since, at, r.FamilyID, r.Generation, at, at, string(r.ClientKind)}
	cond := ""
	if r.ClientID != "" {
		cond += ` AND client_id = ?`
		args = append(args, r.ClientID)
	}
	if r.RateLimit > 0 {
		cond += ` AND (rate_window_start <= ? OR rate_count < ?)`
		args = append(args, since, r.RateLimit)
	}
	st, err := db.prepared(ctx, db.rebind(`UPDATE refresh_families SET generation = generation + 1, rotated_at = ?,
			idle_expires_at = CASE WHEN CAST(? AS BIGINT) < expires_at THEN CAST(? AS BIGINT) ELSE expires_at END,
			rate_count = CASE WHEN rate_window_start > ? THEN rate_count + 1 ELSE 1 END,
			rate_window_start = CASE WHEN rate_window_start > ? THEN rate_window_start ELSE ? END
		WHERE id = ? AND generation = ? AND revoked_at IS NULL AND expires_at > ? AND idle_expires_at > ?
		  AND client_kind = ?`+cond+`
		  AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_families.user_id AND u.disabled_at IS NOT NULL)
		RETURNING `+familyColumns))
	if err != nil {
		return store.RefreshFamily{}, db.err("rotate session", err)
	}
	var row familyRow
	for rt := newRetrier(); ; {
		err = st.GetContext(ctx, &row, args...)
		if err == nil || !rt.again(ctx, db.d.Retryable(err)) {
			break
		}
	}
	if err != nil {
		return store.RefreshFamily{}, db.err("rotate session", err)
	}
	return row.family(), nil
}

// RotateRefreshToken implements store.SessionStore: a conditional UPDATE
// that only a live token of the old form passes (unused, unexpired, of the
// right client, in a family at generation 0 that is not revoked, of an
// enabled user, under the family's rate limit), and the UPDATE that moves
// its family to generation 1, atomically. Concurrent rotations of one token
// serialize on its row; the losers find it used and change nothing. On
// Postgres both run in one statement (a data-modifying CTE, its own
// transaction); SQLite runs them in a transaction.
func (db *DB) RotateRefreshToken(ctx context.Context, r store.Rotation) (parent store.RefreshToken, fam store.RefreshFamily, err error) {
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
		AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = refresh_tokens.family_id
			AND (f.revoked_at IS NOT NULL OR f.generation <> 0))
		AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = refresh_tokens.user_id AND u.disabled_at IS NOT NULL)` + rateCond
	// The family moves to generation 1, issued now, with the token's kind.
	convert := `UPDATE refresh_families SET generation = 1, rotated_at = CAST(? AS BIGINT), client_kind = ?,
			idle_expires_at = CASE WHEN CAST(? AS BIGINT) < refresh_families.expires_at THEN CAST(? AS BIGINT)
				ELSE refresh_families.expires_at END,
			rate_window_start = CAST(? AS BIGINT), rate_count = 1`
	at, idle := micros(r.At), micros(r.IdleExpiresAt)
	if db.d.Name == "postgres" {
		q := `WITH parent AS (` + update + ` RETURNING ` + tokenColumns + `),
		fam AS (` + convert + ` FROM parent p WHERE refresh_families.id = p.family_id AND refresh_families.generation = 0
			RETURNING ` + prefixed("refresh_families.", familyColumns) + `)
		SELECT ` + prefixed("p.", tokenColumns) + `, ` + aliased("f.", familyColumns, "fam.") + ` FROM parent p, fam f`
		st, err := db.prepared(ctx, db.rebind(q))
		if err != nil {
			return parent, fam, db.err("rotate refresh token", err)
		}
		args = append(args, at, string(r.ClientKind), idle, idle, at)
		var row convertedRow
		for rt := newRetrier(); ; {
			err = st.GetContext(ctx, &row, args...)
			if err == nil || !rt.again(ctx, db.d.Retryable(err)) {
				break
			}
		}
		if err != nil {
			return parent, fam, db.err("rotate refresh token", err)
		}
		return row.tokenRow.token(), row.Family.family(), nil
	}
	upd, err := db.prepared(ctx, db.rebind(update+` RETURNING `+tokenColumns))
	if err != nil {
		return parent, fam, db.err("rotate refresh token", err)
	}
	conv, err := db.prepared(ctx, db.rebind(convert+` WHERE id = ? AND generation = 0 RETURNING `+familyColumns))
	if err != nil {
		return parent, fam, db.err("rotate refresh token", err)
	}
	err = db.tx(ctx, "rotate refresh token", func(tx *sqlx.Tx) error {
		var p tokenRow
		if err := tx.StmtxContext(ctx, upd).GetContext(ctx, &p, args...); err != nil {
			return err // sql.ErrNoRows: not rotatable
		}
		var f familyRow
		if err := tx.StmtxContext(ctx, conv).GetContext(ctx, &f, at, p.ClientKind, idle, idle, at, p.FamilyID); err != nil {
			return err
		}
		parent, fam = p.token(), f.family()
		return nil
	})
	return parent, fam, err
}

// convertedRow is the consumed token and the family of a rotation of the
// old form.
type convertedRow struct {
	tokenRow
	Family familyRow `db:"fam"`
}

// aliased qualifies each of a comma-separated list of columns and names it
// alias+column (sqlx maps "fam.id" to the field tagged fam's id).
func aliased(prefix, columns, alias string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		c = strings.TrimSpace(c)
		cols[i] = prefix + c + ` AS "` + alias + c + `"`
	}
	return strings.Join(cols, ", ")
}

// prefixed qualifies each of a comma-separated list of columns.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
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
	err := db.r.GetContext(ctx, &n, db.rebind(`SELECT
			(SELECT COALESCE(SUM(CASE WHEN rate_window_start > ? THEN rate_count ELSE 0 END), 0) FROM refresh_families WHERE id = ?)
			+ (SELECT COUNT(*) FROM refresh_tokens WHERE family_id = ? AND created_at > ?)`),
		micros(since), familyID, familyID, micros(since))
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
	q := db.rebind(`SELECT ` + prefixed("f.", familyColumns) + `, u.disabled_at AS user_disabled_at
		FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.id = ?`)
	var err error
	if db.r == db.w {
		// One pool (Postgres): introspection asks this for every access
		// token, so it runs prepared, parsed and planned once per
		// connection.
		var st *sqlx.Stmt
		if st, err = db.prepared(ctx, q); err == nil {
			err = st.GetContext(ctx, &r, familyID)
		}
	} else {
		err = db.r.GetContext(ctx, &r, q, familyID)
	}
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
	LastUsed  sql.NullInt64 `db:"last_used"`
	LiveUntil sql.NullInt64 `db:"live_until"`
}

// ListSessions implements store.SessionStore.
func (db *DB) ListSessions(ctx context.Context, userID string, now time.Time) ([]store.RefreshFamily, error) {
	var rows []sessionRow
	// A family of the old form (generation 0) still reads its tokens.
	err := db.r.SelectContext(ctx, &rows, db.rebind(`SELECT `+familyColumns+`,
			CASE WHEN f.generation > 0 THEN f.rotated_at
				ELSE (SELECT MAX(t.created_at) FROM refresh_tokens t WHERE t.family_id = f.id) END AS last_used,
			CASE WHEN f.generation > 0 THEN f.idle_expires_at
				ELSE (SELECT MAX(t.expires_at) FROM refresh_tokens t WHERE t.family_id = f.id AND t.used_at IS NULL) END AS live_until
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
		f.LastUsedAt = fromNullMicros(r.LastUsed)
		out = append(out, f)
	}
	return out, nil
}
