package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
)

// TestResetTokensCarriedOver: migration 9 moves reset_tokens into
// onetime_tokens. A reset link mailed before the upgrade works after it
// (once), and used or voided ones stay dead; migrating down and up again
// keeps the live one.
func TestResetTokensCarriedOver(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := openAtVersion(t, b, 8)
		at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		w := db.Writer()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := w.ExecContext(ctx, w.Rebind(q), args...); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"live", "used", "voided"} {
			exec(`INSERT INTO users (id, email, email_normalized, password_hash, created_at, updated_at) VALUES (?, ?, ?, 'old', ?, ?)`,
				id, id+"@example.com", id+"@example.com", at.UnixMicro(), at.UnixMicro())
		}
		expires := at.Add(time.Hour).UnixMicro()
		exec(`INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at) VALUES ('h-live', 'live', ?, ?)`, at.UnixMicro(), expires)
		exec(`INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at, used_at) VALUES ('h-used', 'used', ?, ?, ?)`, at.UnixMicro(), expires, at.UnixMicro())
		exec(`INSERT INTO reset_tokens (token_hash, user_id, created_at, expires_at, voided_at) VALUES ('h-voided', 'voided', ?, ?, ?)`, at.UnixMicro(), expires, at.UnixMicro())

		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		tok, err := db.OneTimeToken(ctx, "h-live")
		if err != nil || tok.Purpose != store.PurposePasswordReset || tok.UserID != "live" || !tok.ExpiresAt.Equal(at.Add(time.Hour)) {
			t.Fatalf("the live reset token after the migration: %+v %v", tok, err)
		}
		for _, dead := range []string{"h-used", "h-voided"} {
			if _, err := db.OneTimeToken(ctx, dead); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s was carried over: %v", dead, err)
			}
		}
		// Down to 8 and up again keeps the live token, and only it.
		if err := db.DownTo(ctx, 8); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := w.GetContext(ctx, &n, `SELECT COUNT(*) FROM reset_tokens`); err != nil || n != 1 {
			t.Fatalf("after the down migration reset_tokens holds %d rows (%v), want the live one", n, err)
		}
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		use := store.OneTimeUse{Hash: "h-live", Purpose: store.PurposePasswordReset, At: at.Add(time.Minute), PasswordHash: "new",
			VerifyEmail: true, VoidOthers: true, RevokeSessions: true, RevokeReason: "password reset"}
		if _, err := db.UseOneTime(ctx, use); err != nil {
			t.Fatalf("using the carried-over link: %v", err)
		}
		if u, _ := db.UserByID(ctx, "live"); u.PasswordHash != "new" || !u.EmailVerified() {
			t.Fatalf("after the reset: %+v", u)
		}
		if _, err := db.UseOneTime(ctx, use); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the carried-over link worked twice: %v", err)
		}
	})
}
