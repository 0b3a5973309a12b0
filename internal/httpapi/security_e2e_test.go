package httpapi_test

import (
	"context"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestLoginTiming: a login for an unknown email does the same hashing work
// as one with a wrong password for a real account, or with the right
// password for a disabled one: exactly one argon2id verification at the
// configured parameters, salt and key sizes, on both login endpoints. The
// hash is what a login's time is made of, so equal work is equal time, and
// counting the work is exact where a stopwatch on a shared machine is not.
// BenchmarkLoginTiming measures the time itself.
func TestLoginTiming(t *testing.T) {
	// Cheap, but not tokendtest's defaults, so that the check shows the
	// unknown-email path follows the configuration.
	params := password.Params{Memory: 128, Time: 2, Threads: 1}
	s := tokendtest.Start(t, tokendtest.Options{Configure: func(c *config.Config) { c.Argon2 = params }})
	var (
		mu   sync.Mutex
		work []password.Work
	)
	s.Hasher.Observe(func(w password.Work) {
		mu.Lock()
		defer mu.Unlock()
		work = append(work, w)
	})
	t.Cleanup(func() { s.Hasher.Observe(nil) })
	createUser(t, s, "known@example.com")
	createUser(t, s, "disabled@example.com")
	if _, err := s.Users.Disable(context.Background(), "disabled@example.com", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	// What a verification of those accounts' hashes computes: their
	// parameters and sizes, as Create hashed them.
	if len(work) != 2 || work[0] != work[1] || work[0].Verify || work[0].Params != params {
		t.Fatalf("creating two accounts hashed %+v", work)
	}
	want := []password.Work{work[0]}
	want[0].Verify = true

	endpoints := []struct {
		name  string
		login func(email, pw string) *tokendtest.Response
	}{
		{"/auth/login", func(email, pw string) *tokendtest.Response {
			return s.PostJSON(t, "/auth/login", map[string]string{"email": email, "password": pw, "client_id": "web"})
		}},
		{"/oauth/token", func(email, pw string) *tokendtest.Response {
			return s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {email},
				"password": {pw}, "client_id": {"mobile"}})
		}},
	}
	attempts := []struct{ name, email, pw string }{
		{"wrong password", "known@example.com", "not the password"},
		{"unknown email", "nobody@example.com", "not the password"},
		{"disabled account", "disabled@example.com", testPassword},
	}
	for _, ep := range endpoints {
		for _, a := range attempts {
			mu.Lock()
			work = nil
			mu.Unlock()
			wantError(t, ep.login(a.email, a.pw), 400, "invalid_grant")
			// The observer runs before the handler answers, so the
			// response orders it before this read.
			mu.Lock()
			got := slices.Clone(work)
			mu.Unlock()
			if !slices.Equal(got, want) {
				t.Errorf("%s, %s: hashing work %+v, want %+v", ep.name, a.name, got, want)
			}
		}
	}
}
