package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestLoginTiming: a login for an unknown email takes the same time as a
// wrong password for a real account (both verify one argon2id hash at the
// production parameters), within 20 % at the median.
func TestLoginTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes at production cost")
	}
	s := tokendtest.Start(t, tokendtest.Options{Configure: func(c *config.Config) {
		c.Argon2 = password.DefaultParams
		c.HashMaxConcurrent = 2
	}})
	const n = 15
	ctx := context.Background()
	for i := range n {
		if _, err := s.Users.Create(ctx, fmt.Sprintf("t%d@example.com", i), testPassword, audit.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	login := func(email string) time.Duration {
		start := time.Now()
		r := s.PostJSON(t, "/auth/login", map[string]string{"email": email, "password": "not the password", "client_id": "web"})
		d := time.Since(start)
		wantError(t, r, 400, "invalid_grant")
		return d
	}
	login("warmup@example.com")
	var known, unknown []time.Duration
	for i := range n {
		// Interleaved, and each account fails once, so the brute-force
		// lock never engages.
		known = append(known, login(fmt.Sprintf("t%d@example.com", i)))
		unknown = append(unknown, login(fmt.Sprintf("nobody%d@example.com", i)))
	}
	slices.Sort(known)
	slices.Sort(unknown)
	mk, mu := known[n/2], unknown[n/2]
	diff := (mk - mu).Abs()
	t.Logf("median login time: wrong password %v, unknown email %v (difference %.1f%%)", mk, mu, 100*float64(diff)/float64(max(mk, mu)))
	if diff > max(mk, mu)/5 {
		t.Fatalf("median login time: wrong password %v, unknown email %v: more than 20%% apart", mk, mu)
	}
	if mk < 5*time.Millisecond {
		t.Fatalf("a login took %v: the hash is not at production cost", mk)
	}
}
