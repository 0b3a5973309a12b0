package httpapi_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store/sqlstore"
	"github.com/tokend/tokend/internal/tokendtest"
)

// orphans counts consumed refresh tokens without a child: a rotation that
// was half written. It must always be 0.
func orphans(t *testing.T, db *sqlstore.DB) int {
	t.Helper()
	var n int
	if err := db.Reader().GetContext(context.Background(), &n, `SELECT COUNT(*) FROM refresh_tokens p
		WHERE p.used_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM refresh_tokens c WHERE c.parent_hash = p.token_hash)`); err != nil {
		t.Fatal(err)
	}
	return n
}

type rotation struct{ parent, child string }

// TestPostgresGoesAway: under refresh load, Postgres terminates tokend's
// connections (pg_terminate_backend), then becomes unreachable, then comes
// back. Requests in flight fail only with 503 temporarily_unavailable;
// /readyz turns 503 and back; service resumes without a restart; every
// refresh answered 200 left its family consistent.
func TestPostgresGoesAway(t *testing.T) {
	base := dbtest.PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	app := "tokend_fault_" + hex.EncodeToString(b[:])
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	proxy, viaProxy := dbtest.StartProxy(t, u.String())
	db := dbtest.OpenPostgresURL(t, viaProxy)
	// The workers rotate as fast as they can on a frozen clock, far past
	// the per-session limit meant for real clients.
	s := tokendtest.Start(t, tokendtest.Options{Store: db, Configure: func(c *config.Config) { c.RefreshRateLimit = 0 }})
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	const workers = 8
	for w := range workers {
		createUser(t, s, fmt.Sprintf("f%d@example.com", w))
	}
	var (
		mu        sync.Mutex
		rotations []rotation
		last      = make([]string, workers)
		unavail   atomic.Int64
		bad       atomic.Int64
		badMsgs   []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for w := range workers {
		tok := nativeLogin(t, s, fmt.Sprintf("f%d@example.com", w), "").RefreshToken
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					mu.Lock()
					last[w] = tok
					mu.Unlock()
					return
				default:
				}
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "client_id": {"mobile"}}
				resp, err := client.Post(s.URL+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
				if err != nil {
					bad.Add(1)
					mu.Lock()
					badMsgs = append(badMsgs, err.Error())
					mu.Unlock()
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var tr struct {
					RefreshToken string `json:"refresh_token"`
					Error        string `json:"error"`
				}
				_ = json.Unmarshal(body, &tr)
				switch {
				case resp.StatusCode == 200:
					mu.Lock()
					rotations = append(rotations, rotation{tok, tr.RefreshToken})
					mu.Unlock()
					tok = tr.RefreshToken
				case resp.StatusCode == 503 && tr.Error == "temporarily_unavailable" && resp.Header.Get("Retry-After") != "":
					unavail.Add(1) // retry the same token: inside the grace window it gets the same child
				default:
					bad.Add(1)
					mu.Lock()
					badMsgs = append(badMsgs, fmt.Sprintf("%d %s", resp.StatusCode, body))
					mu.Unlock()
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	rotated := func() int { mu.Lock(); defer mu.Unlock(); return len(rotations) }
	ready := func() int {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	waitFor("load to start", func() bool { return rotated() > 50 })
	faults := 0
	for range 3 {
		res, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			faults++
		}
		n := rotated()
		waitFor("service to resume after terminated connections", func() bool { return rotated() > n+20 })
	}
	proxy.Down()
	faults++
	waitFor("/readyz to turn 503", func() bool { return ready() == 503 })
	time.Sleep(300 * time.Millisecond) // let requests fail during the outage
	proxy.Up()
	waitFor("/readyz to turn 200", func() bool { return ready() == 200 })
	n := rotated()
	waitFor("service to resume after the outage", func() bool { return rotated() > n+50 })
	close(stop)
	wg.Wait()

	t.Logf("faults injected %d, refreshes answered 200: %d, 503s: %d, other failures: %d", faults, rotated(), unavail.Load(), bad.Load())
	if bad.Load() != 0 {
		t.Fatalf("%d requests failed otherwise than with 503: %v", bad.Load(), badMsgs[:min(5, len(badMsgs))])
	}
	if faults < 2 {
		t.Fatalf("only %d faults were injected", faults)
	}
	// Every answered rotation: the parent is consumed and the child exists
	// in the same family.
	ctx := context.Background()
	for _, r := range rotations {
		p, pf, err := s.Sessions.Lookup(ctx, r.parent)
		if err != nil || p.UsedAt.IsZero() {
			t.Fatalf("an answered rotation left its parent unconsumed (%v)", err)
		}
		_, cf, err := s.Sessions.Lookup(ctx, r.child)
		if err != nil || cf.ID != pf.ID {
			t.Fatalf("an answered rotation's child is missing (%v)", err)
		}
	}
	for w, tok := range last {
		if r := nativeRefresh(t, s, tok); r.Status != 200 {
			t.Fatalf("worker %d's last token no longer works: %d %s", w, r.Status, r.Body)
		}
	}
	if n := orphans(t, db); n != 0 {
		t.Fatalf("%d half-written rotations", n)
	}
}
