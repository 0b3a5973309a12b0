package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

type rawResult struct {
	status int
	token  string
	err    error
}

// refreshAll sends one refresh per server in targets, all at once.
func refreshAll(targets []*tokendtest.Server, token string) []rawResult {
	out := make([]rawResult, len(targets))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"mobile"}}.Encode()
			resp, err := http.Post(s.URL+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(body))
			if err != nil {
				out[i].err = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var tr tokenResp
			_ = json.Unmarshal(b, &tr)
			out[i] = rawResult{status: resp.StatusCode, token: tr.RefreshToken}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// checkConcurrent: no 5xx, and the family is either usable through every
// returned token (all the same child) or revoked as a whole.
func checkConcurrent(t *testing.T, s *tokendtest.Server, results []rawResult, wantAllOK bool) {
	t.Helper()
	children := map[string]bool{}
	ok := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		switch r.status {
		case 200:
			ok++
			children[r.token] = true
		case 400:
		default:
			t.Fatalf("request %d: status %d", i, r.status)
		}
	}
	if wantAllOK && ok != len(results) {
		t.Fatalf("%d of %d concurrent refreshes inside the grace window failed", len(results)-ok, len(results))
	}
	if len(children) > 1 {
		t.Fatalf("concurrent refreshes produced %d different children: a second branch", len(children))
	}
	for child := range children {
		r := nativeRefresh(t, s, child)
		if r.Status == 200 {
			return // the family lives on through the child
		}
		// Otherwise the family must be revoked as a whole.
		list, err := s.Store.ListSessions(context.Background(), firstUserID(t, s), s.Clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 0 {
			t.Fatalf("the child is refused (%d %s) but the session is still live: half a family", r.Status, r.Body)
		}
	}
}

func firstUserID(t *testing.T, s *tokendtest.Server) string {
	t.Helper()
	us, err := s.Store.ListUsers(context.Background(), store.ListOptions{Limit: 1})
	if err != nil || len(us) == 0 {
		t.Fatal("no user")
	}
	return us[0].ID
}

func TestConcurrentRefresh(t *testing.T) {
	for _, grace := range []time.Duration{10 * time.Second, 0} {
		dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
			s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name, Configure: func(c *config.Config) { c.RefreshReuseGrace = grace }})
			createUser(t, s, "c@example.com")
			tok := nativeLogin(t, s, "c@example.com", "").RefreshToken
			targets := make([]*tokendtest.Server, 50)
			for i := range targets {
				targets[i] = s
			}
			checkConcurrent(t, s, refreshAll(targets, tok), grace > 0)
		})
	}
}

// TestTwoServersRefresh: two instances on one Postgres database. A token
// rotated on one and replayed on the other after the grace window is
// detected; 50 concurrent refreshes split across both give no 5xx.
func TestTwoServersRefresh(t *testing.T) {
	u := dbtest.PostgresURL(t)
	c := clock.NewFake(tokendtest.T0)
	mk := masterkey.Generate()
	same := func(cfg *config.Config) {
		cfg.Issuer, cfg.Audience = "https://auth.example.test", "https://auth.example.test"
	}
	a := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: mk, Configure: same})
	b := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: mk, Configure: same})
	createUser(t, a, "two@example.com")

	t0 := nativeLogin(t, a, "two@example.com", "").RefreshToken
	t1 := refreshed(t, nativeRefresh(t, a, t0)).RefreshToken
	// Inside the grace window, b serves the repeat with a's child.
	if got := refreshed(t, nativeRefresh(t, b, t0)).RefreshToken; got != t1 {
		t.Fatal("b derived another child than a")
	}
	c.Advance(11 * time.Second)
	wantError(t, nativeRefresh(t, b, t0), 400, "invalid_grant")
	wantError(t, nativeRefresh(t, a, t1), 400, "invalid_grant") // the family is revoked on a too

	tok := nativeLogin(t, b, "two@example.com", "").RefreshToken
	targets := make([]*tokendtest.Server, 50)
	for i := range targets {
		targets[i] = a
		if i%2 == 1 {
			targets[i] = b
		}
	}
	checkConcurrent(t, a, refreshAll(targets, tok), true)
}
