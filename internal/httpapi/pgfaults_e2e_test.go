package httpapi_test

import (
	"context"
	"database/sql"
	"net/url"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/tokendtest"
)

// faultEnv is one tokend on a database of its own, reached through a proxy.
type faultEnv struct {
	db    *dbtest.Database
	proxy *dbtest.Proxy
	s     *tokendtest.Server
	stop  func() // set by a break that runs something until healed
}

// newFaultEnv starts a tokend on a new database (owned by a new role)
// through a proxy. connect_timeout and read_timeout are short so that the
// black hole costs seconds, not the defaults' tens of seconds.
func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	db := dbtest.PostgresDatabase(t)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("connect_timeout", "2")
	q.Set("read_timeout", "2")
	u.RawQuery = q.Encode()
	proxy, viaProxy := dbtest.StartProxy(t, u.String())
	store := dbtest.OpenPostgresURL(t, viaProxy)
	s := tokendtest.Start(t, tokendtest.Options{Store: store})
	// Heal the proxy before the server closes (cleanups run last first):
	// a handler stuck on a black-holed connection would keep Close waiting.
	t.Cleanup(func() { proxy.SetMode(dbtest.Forward) })
	return &faultEnv{db: db, proxy: proxy, s: s}
}

// pollUntil calls f until it returns true, failing t after a generous
// deadline (the machine may be busy).
func pollUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unavailableOr200 checks that r is 200 or exactly 503
// temporarily_unavailable with Retry-After, and reports whether it is the
// 503.
func unavailableOr200(t *testing.T, what string, r *tokendtest.Response) bool {
	t.Helper()
	switch r.Status {
	case 200:
		return false
	case 503:
		if code := r.ErrorCode(t); code != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: 503 with error %q, Retry-After %q: want temporarily_unavailable with Retry-After",
				what, code, r.Header.Get("Retry-After"))
		}
		return true
	}
	t.Fatalf("%s: %d %s, want 200 or 503", what, r.Status, r.Body)
	return false
}

// TestPostgresUnavailable breaks the database under a running tokend in
// each way a database can be unavailable and checks that token requests
// answer 503 temporarily_unavailable with Retry-After (never 500), that
// /readyz says whether the database can be reached, and that service
// resumes without restarting tokend once the database is healthy.
func TestPostgresUnavailable(t *testing.T) {
	tests := []struct {
		name string
		// ready is /readyz while broken: 503 where the database cannot be
		// reached, 200 where it answers but refuses the work.
		ready         int
		breakDB, heal func(t *testing.T, e *faultEnv)
	}{
		{
			name:    "connection refused",
			ready:   503,
			breakDB: func(t *testing.T, e *faultEnv) { e.proxy.Down() },
			heal:    func(t *testing.T, e *faultEnv) { e.proxy.Up() },
		},
		{
			name:    "connection reset",
			ready:   503,
			breakDB: func(t *testing.T, e *faultEnv) { e.proxy.SetMode(dbtest.Reset) },
			heal:    func(t *testing.T, e *faultEnv) { e.proxy.SetMode(dbtest.Forward) },
		},
		{
			// Open connections and new ones alike get no answer: only
			// tokend's own timeouts (connect_timeout, read_timeout) end
			// the request; a hang fails the test when tokendtest's client
			// gives up after 30 s.
			name:    "timed out",
			ready:   503,
			breakDB: func(t *testing.T, e *faultEnv) { e.proxy.SetMode(dbtest.BlackHole) },
			heal:    func(t *testing.T, e *faultEnv) { e.proxy.SetMode(dbtest.Forward) },
		},
		{
			name:  "08P01 protocol violation at connect",
			ready: 503,
			breakDB: func(t *testing.T, e *faultEnv) {
				e.proxy.SetMode(dbtest.CorruptStartup)
				e.db.TerminateBackends(t)
			},
			heal: func(t *testing.T, e *faultEnv) { e.proxy.SetMode(dbtest.Forward) },
		},
		{
			name:  "53300 too many connections for role",
			ready: 503,
			breakDB: func(t *testing.T, e *faultEnv) {
				e.db.Exec(t, "ALTER ROLE "+e.db.Quoted()+" CONNECTION LIMIT 0")
				e.db.TerminateBackends(t)
			},
			heal: func(t *testing.T, e *faultEnv) { e.db.Exec(t, "ALTER ROLE "+e.db.Quoted()+" CONNECTION LIMIT -1") },
		},
		{
			name:  "55000 database not accepting connections",
			ready: 503,
			breakDB: func(t *testing.T, e *faultEnv) {
				e.db.Exec(t, "ALTER DATABASE "+e.db.Quoted()+" ALLOW_CONNECTIONS false")
				e.db.TerminateBackends(t)
			},
			heal: func(t *testing.T, e *faultEnv) {
				e.db.Exec(t, "ALTER DATABASE "+e.db.Quoted()+" ALLOW_CONNECTIONS true")
			},
		},
		{
			// Sessions are terminated in the middle of a request (as a
			// failover or a fast shutdown does): every request waits for a
			// lock the test holds and is terminated while it waits.
			name:    "57P01 terminated during the request",
			ready:   200,
			breakDB: terminateWaiters,
			heal:    func(t *testing.T, e *faultEnv) { e.stop() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t)
			expectOutage(t, e.s, tc.ready, func() { tc.breakDB(t, e) }, func() { tc.heal(t, e) })
		})
	}
}

// expectOutage signs a user in, breaks the database, and checks that token
// requests (the password grant and a refresh) answer exactly 503
// temporarily_unavailable with Retry-After, never anything else, and that
// /readyz answers ready. Then it heals the database and checks that
// service resumes without restarting tokend, and that the refresh that
// failed changed nothing.
func expectOutage(t *testing.T, s *tokendtest.Server, ready int, breakDB, heal func()) {
	t.Helper()
	email := "fault@example.com"
	createUser(t, s, email)
	refresh := nativeLogin(t, s, email, "").RefreshToken
	if r := s.Get(t, "/readyz"); r.Status != 200 {
		t.Fatalf("/readyz before the fault: %d %s", r.Status, r.Body)
	}

	breakDB()
	login := url.Values{"grant_type": {"password"}, "username": {email}, "password": {testPassword}, "client_id": {"mobile"}}
	pollUntil(t, "the password grant to answer 503", func() bool {
		return unavailableOr200(t, "password grant", s.PostForm(t, "/oauth/token", login))
	})
	// Once one request saw the fault, every request does until it is
	// healed.
	if r := s.PostForm(t, "/oauth/token", login); !unavailableOr200(t, "password grant", r) {
		t.Fatalf("password grant answered 200 with the database still broken")
	}
	if r := nativeRefresh(t, s, refresh); !unavailableOr200(t, "refresh grant", r) {
		t.Fatalf("refresh grant answered 200 with the database still broken")
	}
	if ready == 503 {
		pollUntil(t, "/readyz to answer 503", func() bool {
			return unavailableOr200(t, "/readyz", s.Get(t, "/readyz"))
		})
	} else if r := s.Get(t, "/readyz"); r.Status != ready {
		t.Fatalf("/readyz with the database broken: %d %s, want %d", r.Status, r.Body, ready)
	}

	heal()
	pollUntil(t, "the password grant to answer 200 again", func() bool {
		return !unavailableOr200(t, "password grant", s.PostForm(t, "/oauth/token", login))
	})
	pollUntil(t, "/readyz to answer 200 again", func() bool {
		return !unavailableOr200(t, "/readyz", s.Get(t, "/readyz"))
	})
	refreshed(t, nativeRefresh(t, s, refresh))
}

// terminateWaiters holds an exclusive lock on the tables the token
// endpoint reads and terminates (pg_terminate_backend, SQLSTATE 57P01)
// every session that waits for it, until e.stop is called.
func terminateWaiters(t *testing.T, e *faultEnv) {
	t.Helper()
	admin, err := sql.Open("postgres", e.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	tx, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE users, refresh_tokens IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := e.db.TerminateWaiting(ctx); err != nil {
					t.Errorf("terminate waiting sessions: %v", err)
					return
				}
			}
		}
	}()
	e.stop = func() {
		close(done)
		<-stopped
		_ = tx.Rollback()
	}
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			e.stop()
		}
	})
}
