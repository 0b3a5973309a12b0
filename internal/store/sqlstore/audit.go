package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type auditRow struct {
	ID        int64  `db:"id"`
	Type      string `db:"type"`
	UserID    string `db:"user_id"`
	ClientID  string `db:"client_id"`
	Address   string `db:"address"`
	Details   string `db:"details"`
	CreatedAt int64  `db:"created_at"`
}

// AppendAudit implements store.AuditStore.
func (db *DB) AppendAudit(ctx context.Context, ev store.AuditEvent) error {
	return db.tx(ctx, "append audit event", func(tx *sqlx.Tx) error {
		return db.appendAudit(ctx, tx, &ev)
	})
}

// auditDetails is ev's details as stored ("" for a nil ev).
func auditDetails(ev *store.AuditEvent) (string, error) {
	if ev == nil {
		return "", nil
	}
	details := ev.Details
	if details == nil {
		details = map[string]string{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return "", fmt.Errorf("audit details: %w", err)
	}
	return string(b), nil
}

// appendAudit writes ev inside tx; a nil ev writes nothing.
func (db *DB) appendAudit(ctx context.Context, tx *sqlx.Tx, ev *store.AuditEvent) error {
	if ev == nil {
		return nil
	}
	details := ev.Details
	if details == nil {
		details = map[string]string{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("audit details: %w", err)
	}
	_, err = tx.ExecContext(ctx, db.rebind(`INSERT INTO audit_events
		(type, user_id, client_id, address, details, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		ev.Type, ev.UserID, ev.ClientID, ev.Address, string(b), micros(ev.CreatedAt))
	return err
}

// ListAudit implements store.AuditStore.
func (db *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var where []string
	var args []any
	if f.UserID != "" {
		where = append(where, "user_id = ?")
		args = append(args, f.UserID)
	}
	if f.Type != "" {
		where = append(where, "type = ?")
		args = append(args, f.Type)
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, micros(f.Since))
	}
	q := `SELECT id, type, user_id, client_id, address, details, created_at FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC LIMIT ?"
	args = append(args, limit(f.Limit))
	var rows []auditRow
	if err := db.r.SelectContext(ctx, &rows, db.rebind(q), args...); err != nil {
		return nil, db.err("list audit events", err)
	}
	out := make([]store.AuditEvent, len(rows))
	for i, r := range rows {
		ev := store.AuditEvent{ID: r.ID, Type: r.Type, UserID: r.UserID, ClientID: r.ClientID,
			Address: r.Address, CreatedAt: fromMicros(r.CreatedAt)}
		if err := json.Unmarshal([]byte(r.Details), &ev.Details); err != nil {
			return nil, fmt.Errorf("audit event %d: details: %w", r.ID, err)
		}
		out[i] = ev
	}
	return out, nil
}
