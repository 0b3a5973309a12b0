package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type clientRow struct {
	ID                     string `db:"id"`
	Kind                   string `db:"kind"`
	RedirectURIs           string `db:"redirect_uris"`
	PostLogoutRedirectURIs string `db:"post_logout_redirect_uris"`
	Grants                 string `db:"grants"`
	Scopes                 string `db:"scopes"`
	Audience               string `db:"audience"`
	Alg                    string `db:"alg"`
	CreatedAt              int64  `db:"created_at"`
	SecretHash             string `db:"secret_hash"`
	PreviousSecretHash     string `db:"previous_secret_hash"`
	PreviousSecretExpires  int64  `db:"previous_secret_expires_at"`
	JWKS                   string `db:"jwks"`
}

const clientColumns = `id, kind, redirect_uris, post_logout_redirect_uris, grants, scopes, audience, alg, created_at,
	secret_hash, previous_secret_hash, previous_secret_expires_at, jwks`

func (r clientRow) client() (store.Client, error) {
	c := store.Client{ID: r.ID, Kind: store.ClientKind(r.Kind), Alg: r.Alg, CreatedAt: fromMicros(r.CreatedAt),
		SecretHash: r.SecretHash, PreviousSecretHash: r.PreviousSecretHash, JWKS: r.JWKS}
	if r.PreviousSecretExpires != 0 {
		c.PreviousSecretExpiresAt = fromMicros(r.PreviousSecretExpires)
	}
	for _, f := range []struct {
		name string
		text string
		into *[]string
	}{
		{"redirect_uris", r.RedirectURIs, &c.RedirectURIs},
		{"post_logout_redirect_uris", r.PostLogoutRedirectURIs, &c.PostLogoutRedirectURIs},
		{"grants", r.Grants, &c.Grants},
		{"scopes", r.Scopes, &c.Scopes},
		{"audience", r.Audience, &c.Audience},
	} {
		if err := json.Unmarshal([]byte(f.text), f.into); err != nil {
			return c, fmt.Errorf("client %q: %s column: %w", r.ID, f.name, err)
		}
	}
	return c, nil
}

// jsonList stores a list as a JSON array (never null).
func jsonList(l []string) (string, error) {
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// CreateClient implements store.ClientStore.
func (db *DB) CreateClient(ctx context.Context, c store.Client, ev *store.AuditEvent) error {
	args := []any{c.ID, string(c.Kind)}
	for _, l := range [][]string{c.RedirectURIs, c.PostLogoutRedirectURIs, c.Grants, c.Scopes, c.Audience} {
		j, err := jsonList(l)
		if err != nil {
			return fmt.Errorf("create client: %w", err)
		}
		args = append(args, j)
	}
	var prevExpires int64
	if !c.PreviousSecretExpiresAt.IsZero() {
		prevExpires = micros(c.PreviousSecretExpiresAt)
	}
	args = append(args, c.Alg, micros(c.CreatedAt), c.SecretHash, c.PreviousSecretHash, prevExpires, c.JWKS)
	return db.tx(ctx, "create client", func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO clients (`+clientColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), args...); err != nil {
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
	if err := db.r.GetContext(ctx, &r, db.rebind(`SELECT `+clientColumns+` FROM clients WHERE id = ?`), id); err != nil {
		return store.Client{}, db.err("get client", err)
	}
	return r.client()
}

// ListClients implements store.ClientStore.
func (db *DB) ListClients(ctx context.Context) ([]store.Client, error) {
	var rows []clientRow
	if err := db.r.SelectContext(ctx, &rows, `SELECT `+clientColumns+` FROM clients ORDER BY id`); err != nil {
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

// DeleteClient implements store.ClientStore: the client's live sessions are
// revoked and its unused codes deleted with it.
func (db *DB) DeleteClient(ctx context.Context, id string, at time.Time, ev *store.AuditEvent) error {
	if !store.Storable(id) {
		return fmt.Errorf("delete client: %w", store.ErrNotFound)
	}
	return db.tx(ctx, "delete client", func(tx *sqlx.Tx) error {
		if err := execOne(ctx, tx, db.rebind(`DELETE FROM clients WHERE id = ?`), id); err != nil {
			if err == store.ErrConflict {
				return store.ErrNotFound
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
			WHERE client_id = ? AND revoked_at IS NULL`), micros(at), "client deleted", id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM authorization_codes WHERE client_id = ? AND used_at IS NULL`), id); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// RotateClientSecret implements store.ClientStore.
func (db *DB) RotateClientSecret(ctx context.Context, r store.SecretRotation, ev *store.AuditEvent) error {
	if !store.Storable(r.ClientID) {
		return fmt.Errorf("rotate client secret: %w", store.ErrNotFound)
	}
	return db.tx(ctx, "rotate client secret", func(tx *sqlx.Tx) error {
		if err := execOne(ctx, tx, db.rebind(`UPDATE clients SET previous_secret_hash = secret_hash, previous_secret_expires_at = ?,
			secret_hash = ? WHERE id = ?`), micros(r.Grace), r.NewHash, r.ClientID); err != nil {
			if err == store.ErrConflict {
				return store.ErrNotFound
			}
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// UseForm implements store.FormStore: the id's hash is the primary key,
// so a second insert, from any instance, is a replay (ErrAlreadyExists).
func (db *DB) UseForm(ctx context.Context, idHash, purpose string, expires time.Time) error {
	return db.tx(ctx, "record a used form", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO used_forms (id_hash, purpose, expires_at) VALUES (?, ?, ?)`),
			idHash, purpose, micros(expires))
		return err
	})
}

// ReleaseForm implements store.FormStore.
func (db *DB) ReleaseForm(ctx context.Context, idHash string) error {
	return db.tx(ctx, "release a used form", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM used_forms WHERE id_hash = ?`), idHash)
		return err
	})
}

// UseClientAssertion implements store.ClientStore: the jti's hash is the
// primary key, so a second insert — from any instance — is a replay.
func (db *DB) UseClientAssertion(ctx context.Context, jtiHash, clientID string, expires time.Time) error {
	return db.tx(ctx, "record client assertion", func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO client_assertions (jti_hash, client_id, expires_at) VALUES (?, ?, ?)`),
			jtiHash, clientID, micros(expires))
		return err
	})
}
