package main

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
)

// TestSeedSessions: the scale seed writes families tokend can read: one
// row each, spread over the users, live ones rotatable, within the history.
func TestSeedSessions(t *testing.T) {
	db := dbtest.Postgres(t) // skips without TOKEND_TEST_POSTGRES_URL
	ctx := context.Background()
	for _, id := range []string{"u1", "u2"} {
		if err := db.CreateUser(ctx, store.User{ID: id, Email: id + "@example.com", PasswordHash: "x", CreatedAt: time.Now()}, nil); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := seedSessions(ctx, db.Writer().DB, 200, 90); err != nil {
		t.Fatal(err)
	}
	var m scaleMeasure
	if err := sizes(ctx, db.Writer().DB, &m); err != nil {
		t.Fatal(err)
	}
	if m.rows != 200 || m.tokenRows != 0 || m.tableBytes == 0 {
		t.Fatalf("after seeding 200: %+v", m)
	}
	for _, u := range []string{"u1", "u2"} {
		fams, err := db.ListSessions(ctx, u, start)
		if err != nil {
			t.Fatal(err)
		}
		if len(fams) < 30 { // about 66 expected: 5% revoked, about 30% idled out
			t.Fatalf("%s has %d live seeded sessions of 100", u, len(fams))
		}
		for _, f := range fams {
			if f.Generation < 1 || f.RotatedAt.Before(f.CreatedAt) || f.RotatedAt.After(start) ||
				f.IdleExpiresAt.After(f.ExpiresAt) || f.CreatedAt.Before(start.Add(-91*24*time.Hour)) || f.ClientKind == "" {
				t.Fatalf("a seeded session: %+v", f)
			}
		}
	}
}
