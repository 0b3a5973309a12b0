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
	const n = 21
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
	// Pairs measured back to back, in alternating order, so that a slow
	// phase of a busy machine weighs on both sides of a pair alike. Each
	// account fails once, so the brute-force lock never engages.
	var known, unknown []time.Duration
	var rel []float64
	for i := range n {
		var k, u time.Duration
		if i%2 == 0 {
			k, u = login(fmt.Sprintf("t%d@example.com", i)), login(fmt.Sprintf("nobody%d@example.com", i))
		} else {
			u, k = login(fmt.Sprintf("nobody%d@example.com", i)), login(fmt.Sprintf("t%d@example.com", i))
		}
		known, unknown = append(known, k), append(unknown, u)
		rel = append(rel, float64(k-u)/float64(k+u)*2)
	}
	slices.Sort(known)
	slices.Sort(unknown)
	slices.Sort(rel)
	mk, mu, mrel := known[n/2], unknown[n/2], rel[n/2]
	t.Logf("median login time: wrong password %v, unknown email %v; median paired difference %.1f%%", mk, mu, 100*mrel)
	if mrel > 0.2 || mrel < -0.2 {
		t.Fatalf("a wrong password and an unknown email differ by %.1f%% at the median (wrong password %v, unknown email %v)", 100*mrel, mk, mu)
	}
	if mk < 5*time.Millisecond {
		t.Fatalf("a login took %v: the hash is not at production cost", mk)
	}
}
