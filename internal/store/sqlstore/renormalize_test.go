package sqlstore_test

import (
	"context"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
)

// TestEmailRenormalization: accounts stored before emails were compared
// under NFC (migration 6) are found by either form afterwards; of two
// accounts that became the same address, the older keeps it.
func TestEmailRenormalization(t *testing.T) {
	const composed, decomposed = "\u00e5sa@example.com", "a\u030asa@example.com"
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := openAtVersion(t, b, 5)
		w := db.Writer()
		for _, u := range []struct{ id, email string }{{"older", decomposed}, {"plain", "Bob@Example.com"}, {"newer", "A\u030aSA@example.com"}} {
			// What tokend stored before: lower-cased and trimmed only.
			norm := map[string]string{"older": decomposed, "plain": "bob@example.com", "newer": "a\u030asa@example.com "}[u.id]
			if _, err := w.ExecContext(ctx, w.Rebind(`INSERT INTO users (id, email, email_normalized, password_hash, created_at, updated_at)
				VALUES (?, ?, ?, 'x', ?, ?)`), u.id, u.email, norm, map[string]int{"older": 1, "plain": 2, "newer": 3}[u.id], 1); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		for _, email := range []string{composed, decomposed, "  \u00c5SA@example.com"} {
			u, err := db.UserByEmail(ctx, email)
			if err != nil || u.ID != "older" {
				t.Fatalf("UserByEmail(%q) = %q, %v; want the older account", email, u.ID, err)
			}
		}
		if u, err := db.UserByEmail(ctx, "bob@example.com"); err != nil || u.ID != "plain" {
			t.Fatalf("an ASCII email: %q %v", u.ID, err)
		}
	})
}
