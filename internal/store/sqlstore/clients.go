package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type clientRow struct {
	ID        string `db:"id"`
	Kind      string `db:"kind"`
	Audience  string `db:"audience"`
	Alg       string `db:"alg"`
	CreatedAt int64  `db:"created_at"`
}

func (r clientRow) client() (store.Client, error) {
	c := store.Client{ID: r.ID, Kind: store.ClientKind(r.Kind), Alg: r.Alg, CreatedAt: fromMicros(r.CreatedAt)}
	if err := json.Unmarshal([]byte(r.Audience), &c.Audience); err != nil {
		return c, fmt.Errorf("client %q: audience column: %w", r.ID, err)
	}
	return c, nil
}

// CreateClient implements store.ClientStore.
func (db *DB) CreateClient(ctx context.Context, c store.Client, ev *store.AuditEvent) error {
	aud := c.Audience
	if aud == nil {
		aud = []string{}
	}
	audJSON, err := json.Marshal(aud)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return db.tx(ctx, "create client", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO clients (id, kind, audience, alg, created_at)
			VALUES (?, ?, ?, ?, ?)`), c.ID, string(c.Kind), string(audJSON), c.Alg, micros(c.CreatedAt))
		if err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// ClientByID implements store.ClientStore.
func (db *DB) ClientByID(ctx context.Context, id string) (store.Client, error) {
	if !store.Storable(id) {
		return store.Client{}, fmt.Errorf("get client: %w", store.ErrNotFound)
	}
	var r clientRow
	if err := db.r.GetContext(ctx, &r, db.rebind(`SELECT id, kind, audience, alg, created_at
		FROM clients WHERE id = ?`), id); err != nil {
		return store.Client{}, db.err("get client", err)
	}
	return r.client()
}

// ListClients implements store.ClientStore.
func (db *DB) ListClients(ctx context.Context) ([]store.Client, error) {
	var rows []clientRow
	if err := db.r.SelectContext(ctx, &rows, `SELECT id, kind, audience, alg, created_at FROM clients ORDER BY id`); err != nil {
		return nil, db.err("list clients", err)
	}
	out := make([]store.Client, 0, len(rows))
	for _, r := range rows {
		c, err := r.client()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
