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

type userRow struct {
	ID           string        `db:"id"`
	Email        string        `db:"email"`
	PasswordHash string        `db:"password_hash"`
	CreatedAt    int64         `db:"created_at"`
	UpdatedAt    int64         `db:"updated_at"`
	DisabledAt   sql.NullInt64 `db:"disabled_at"`
	Credential   int64         `db:"credential_version"`
	Verified     sql.NullInt64 `db:"email_verified_at"`
}

func (r userRow) user() store.User {
	return store.User{
		ID:           r.ID,
		Email:        r.Email,
		PasswordHash: r.PasswordHash,
		CreatedAt:    fromMicros(r.CreatedAt),
		UpdatedAt:    fromMicros(r.UpdatedAt),
		DisabledAt:   fromNullMicros(r.DisabledAt),

		CredentialVersion: r.Credential,
		EmailVerifiedAt:   fromNullMicros(r.Verified),
	}
}

const userColumns = `id, email, password_hash, created_at, updated_at, disabled_at, credential_version, email_verified_at`

// CreateUser implements store.UserStore.
func (db *DB) CreateUser(ctx context.Context, u store.User, ev *store.AuditEvent) error {
	return db.tx(ctx, "create user", func(tx *sqlx.Tx) error {
		if err := db.insertUser(ctx, tx, u); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// insertUser inserts u; a taken email is store.ErrEmailTaken.
func (db *DB) insertUser(ctx context.Context, tx *sqlx.Tx, u store.User) error {
	_, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO users
		(id, email, email_normalized, password_hash, created_at, updated_at, disabled_at, credential_version, email_verified_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.Email, store.NormalizeEmail(u.Email), u.PasswordHash,
		micros(u.CreatedAt), micros(u.CreatedAt), nullMicros(u.DisabledAt), u.CredentialVersion, nullMicros(u.EmailVerifiedAt))
	if err != nil && errors.Is(db.d.Translate(err), store.ErrAlreadyExists) {
		return store.ErrEmailTaken
	}
	return err
}

// UserByID implements store.UserStore.
func (db *DB) UserByID(ctx context.Context, id string) (store.User, error) {
	if !store.Storable(id) {
		return store.User{}, fmt.Errorf("get user: %w", store.ErrNotFound)
	}
	var r userRow
	err := db.r.GetContext(ctx, &r, db.rebind(`SELECT `+userColumns+` FROM users WHERE id = ?`), id)
	if err != nil {
		return store.User{}, db.err("get user", err)
	}
	return r.user(), nil
}

// UserByEmail implements store.UserStore.
func (db *DB) UserByEmail(ctx context.Context, email string) (store.User, error) {
	if !store.Storable(email) {
		return store.User{}, fmt.Errorf("get user: %w", store.ErrNotFound)
	}
	var r userRow
	err := db.r.GetContext(ctx, &r, db.rebind(`SELECT `+userColumns+` FROM users WHERE email_normalized = ?`),
		store.NormalizeEmail(email))
	if err != nil {
		return store.User{}, db.err("get user by email", err)
	}
	return r.user(), nil
}

// ListUsers implements store.UserStore.
func (db *DB) ListUsers(ctx context.Context, opts store.ListOptions) ([]store.User, error) {
	var rows []userRow
	err := db.r.SelectContext(ctx, &rows, db.rebind(`SELECT `+userColumns+` FROM users
		ORDER BY created_at, id LIMIT ?`), limit(opts.Limit))
	if err != nil {
		return nil, db.err("list users", err)
	}
	users := make([]store.User, len(rows))
	for i, r := range rows {
		users[i] = r.user()
	}
	return users, nil
}

// DisableUser implements store.UserStore.
func (db *DB) DisableUser(ctx context.Context, id string, at time.Time, ev *store.AuditEvent) error {
	return db.tx(ctx, "disable user", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE users
			SET disabled_at = COALESCE(disabled_at, ?), updated_at = ? WHERE id = ?`),
			micros(at), micros(at), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		if _, err := db.revokeUserFamilies(ctx, tx, id, "", at, "user disabled"); err != nil {
			return err
		}
		if _, err := db.revokeUserSignIns(ctx, tx, id, "", at, "user disabled"); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, ev)
	})
}

// UpdatePasswordHash implements store.UserStore.
func (db *DB) UpdatePasswordHash(ctx context.Context, id, oldHash, newHash string, at time.Time) error {
	return db.tx(ctx, "update password hash", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, db.rebind(`UPDATE users SET password_hash = ?, updated_at = ?
			WHERE id = ? AND password_hash = ?`), newHash, micros(at), id, oldHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		var one int
		if err := tx.GetContext(ctx, &one, db.rebind(`SELECT 1 FROM users WHERE id = ?`), id); err != nil {
			return err
		}
		return store.ErrConflict
	})
}

// limit applies the default page size and a hard cap.
func limit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 10000:
		return 10000
	}
	return n
}
