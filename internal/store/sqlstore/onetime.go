package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

type onetimeRow struct {
	Hash      string        `db:"token_hash"`
	Purpose   string        `db:"purpose"`
	UserID    string        `db:"user_id"`
	Data      []byte        `db:"data"`
	CreatedAt int64         `db:"created_at"`
	ExpiresAt int64         `db:"expires_at"`
	UsedAt    sql.NullInt64 `db:"used_at"`
	VoidedAt  sql.NullInt64 `db:"voided_at"`
}

const onetimeColumns = `token_hash, purpose, user_id, data, created_at, expires_at, used_at, voided_at`

func (r onetimeRow) token() store.OneTimeToken {
	return store.OneTimeToken{Hash: r.Hash, Purpose: store.OneTimePurpose(r.Purpose), UserID: r.UserID, Data: r.Data,
		CreatedAt: fromMicros(r.CreatedAt), ExpiresAt: fromMicros(r.ExpiresAt), UsedAt: fromNullMicros(r.UsedAt),
		VoidedAt: fromNullMicros(r.VoidedAt)}
}

// IssueOneTime implements store.OneTimeStore. A partial unique index allows
// one usable token per user and purpose: when two requests race, the second
// one's insert conflicts with the first one's token (which its void did not
// see), and running it again voids that token and inserts its own.
func (db *DB) IssueOneTime(ctx context.Context, n store.NewOneTime) error {
	for rt := newRetrier(); ; {
		err := db.issueOneTime(ctx, n)
		if errors.Is(err, store.ErrEmailTaken) || !errors.Is(err, store.ErrAlreadyExists) {
			return err
		}
		if !rt.again(ctx, true) {
			return fmt.Errorf("issue one-time token: %w", store.ErrConflict)
		}
	}
}

func (db *DB) issueOneTime(ctx context.Context, n store.NewOneTime) error {
	t, m := n.Token, n.Mail
	return db.tx(ctx, "issue one-time token", func(tx *sqlx.Tx) error {
		if n.CreateUser != nil {
			if err := db.insertUser(ctx, tx, *n.CreateUser); err != nil {
				return err
			}
		} else {
			// Hold the user's row: an email change or a disable committing
			// meanwhile either waits for this token (and voids it) or makes
			// this check fail.
			var one int
			err := tx.GetContext(ctx, &one, db.rebind(`SELECT 1 FROM users
				WHERE id = ? AND email_normalized = ? AND disabled_at IS NULL`+db.d.ForShare),
				t.UserID, store.NormalizeEmail(n.UserEmail))
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrStale
			}
			if err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE onetime_tokens SET voided_at = ?
			WHERE user_id = ? AND purpose = ? AND used_at IS NULL AND voided_at IS NULL`),
			micros(t.CreatedAt), t.UserID, string(t.Purpose)); err != nil {
			return err
		}
		// Their mails would carry dead links: drop the ones no worker holds.
		if _, err := tx.ExecContext(ctx, db.rebind(`DELETE FROM mail_outbox
			WHERE user_id = ? AND kind = ? AND locked_until <= ?`), m.UserID, m.Kind, micros(t.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.rebind(`INSERT INTO onetime_tokens
			(token_hash, purpose, user_id, data, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
			t.Hash, string(t.Purpose), t.UserID, nullBytes(t.Data), micros(t.CreatedAt), micros(t.ExpiresAt)); err != nil {
			return err
		}
		if err := db.insertMail(ctx, tx, m); err != nil {
			return err
		}
		if n.Notice != nil {
			if err := db.insertMail(ctx, tx, *n.Notice); err != nil {
				return err
			}
		}
		return db.appendAudit(ctx, tx, n.Audit)
	})
}

// OneTimeToken implements store.OneTimeStore.
func (db *DB) OneTimeToken(ctx context.Context, hash string) (store.OneTimeToken, error) {
	var r onetimeRow
	if err := db.r.GetContext(ctx, &r, db.rebind(`SELECT `+onetimeColumns+` FROM onetime_tokens WHERE token_hash = ?`), hash); err != nil {
		return store.OneTimeToken{}, db.err("get one-time token", err)
	}
	return r.token(), nil
}

// UseOneTime implements store.OneTimeStore.
func (db *DB) UseOneTime(ctx context.Context, u store.OneTimeUse) (store.OneTimeToken, error) {
	var r onetimeRow
	err := db.tx(ctx, "use one-time token", func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &r, db.rebind(`UPDATE onetime_tokens SET used_at = ?
			WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND voided_at IS NULL AND expires_at > ?
			RETURNING `+onetimeColumns), micros(u.At), u.Hash, string(u.Purpose), micros(u.At)); err != nil {
			return err
		}
		r.UsedAt = sql.NullInt64{} // as it was before
		if err := db.applyOneTime(ctx, tx, r.UserID, u); err != nil {
			return err
		}
		if u.VoidOthers {
			if _, err := tx.ExecContext(ctx, db.rebind(`UPDATE onetime_tokens SET voided_at = ?
				WHERE user_id = ? AND used_at IS NULL AND voided_at IS NULL`), micros(u.At), r.UserID); err != nil {
				return err
			}
		}
		if u.RevokeSessions {
			keepSignIn := ""
			if u.KeepFamily != "" {
				err := tx.GetContext(ctx, &keepSignIn, db.rebind(`SELECT signin_id FROM refresh_families
					WHERE id = ? AND user_id = ?`), u.KeepFamily, r.UserID)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			if _, err := db.revokeUserFamilies(ctx, tx, r.UserID, u.KeepFamily, u.At, u.RevokeReason); err != nil {
				return err
			}
			if _, err := db.revokeUserSignIns(ctx, tx, r.UserID, keepSignIn, u.At, u.RevokeReason); err != nil {
				return err
			}
		}
		if u.Audit != nil {
			ev := *u.Audit
			ev.UserID = r.UserID
			return db.appendAudit(ctx, tx, &ev)
		}
		return nil
	})
	if err != nil {
		return store.OneTimeToken{}, err
	}
	return r.token(), nil
}

// applyOneTime applies a token's effects to its user, who must be enabled
// (store.ErrNotFound otherwise, which rolls the use back).
func (db *DB) applyOneTime(ctx context.Context, tx *sqlx.Tx, userID string, u store.OneTimeUse) error {
	set, args := []string{"updated_at = ?"}, []any{micros(u.At)}
	if u.PasswordHash != "" {
		set = append(set, "password_hash = ?", "credential_version = credential_version + 1")
		args = append(args, u.PasswordHash)
	}
	switch {
	case u.NewEmail != "":
		// The new address was proved just now.
		set = append(set, "email = ?", "email_normalized = ?", "email_verified_at = ?")
		args = append(args, u.NewEmail, store.NormalizeEmail(u.NewEmail), micros(u.At))
	case u.VerifyEmail:
		set = append(set, "email_verified_at = COALESCE(email_verified_at, ?)")
		args = append(args, micros(u.At))
	}
	err := execOne(ctx, tx, db.rebind(`UPDATE users SET `+strings.Join(set, ", ")+` WHERE id = ? AND disabled_at IS NULL`),
		append(args, userID)...)
	switch {
	case errors.Is(err, store.ErrConflict):
		return store.ErrNotFound // disabled meanwhile: roll the use back
	case err != nil && errors.Is(db.d.Translate(err), store.ErrAlreadyExists):
		return store.ErrEmailTaken
	}
	return err
}

// nullBytes stores an empty byte slice as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
