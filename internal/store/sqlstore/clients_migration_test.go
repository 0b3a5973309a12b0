package sqlstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
)

// TestClientsKeepTheirGrants: migration 7 turns the first release's
// clients into the client model; a web or native client registered before
// it keeps the password and refresh grants it had, its audience and
// algorithm, and gets the default scopes.
func TestClientsKeepTheirGrants(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := openAtVersion(t, b, 5)
		at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
		w := db.Writer()
		for _, c := range [][]string{{"web-old", "web", `["https://api.example.com"]`, "EdDSA"}, {"mobile-old", "native", "[]", ""}} {
			if _, err := w.ExecContext(ctx, w.Rebind(`INSERT INTO clients (id, kind, audience, alg, created_at) VALUES (?, ?, ?, ?, ?)`),
				c[0], c[1], c[2], c[3], at); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct {
			id, kind, alg string
			audience      []string
		}{{"web-old", "web", "EdDSA", []string{"https://api.example.com"}}, {"mobile-old", "native", "", nil}} {
			c, err := db.ClientByID(ctx, want.id)
			if err != nil {
				t.Fatal(err)
			}
			if string(c.Kind) != want.kind || c.Alg != want.alg || !slices.Equal(c.Audience, want.audience) ||
				!slices.Equal(c.Grants, []string{"password", "refresh_token"}) || !slices.Equal(c.Scopes, []string{"email", "openid", "profile"}) {
				t.Fatalf("%s after the migration: %+v", want.id, c)
			}
		}
	})
}
