package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
)

// TestSIGTERMUnderLoad runs the real binary under login and refresh load
// and sends it SIGTERM: requests it had accepted complete, new connections
// are refused, it exits 0 within the shutdown bound, and no rotation is left
// half-written.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tokend")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	dbPath := filepath.Join(dir, "tokend.db")
	env := append(os.Environ(), "TOKEND_DATABASE_URL=sqlite:"+dbPath, "TOKEND_MASTER_KEY="+masterkey.Generate().Encode(),
		"TOKEND_LISTEN="+addr, "TOKEND_ISSUER=http://"+addr, "TOKEND_ADMIN_LISTEN=127.0.0.1:0")
	cli := func(stdin string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tokend %v: %v\n%s", args, err, out)
		}
	}
	cli("", "clients", "create", "--id", "mobile", "--kind", "native", "--grant", "password", "--grant", "refresh_token")
	const workers = 8
	for w := range workers {
		cli("load password 1\n", "users", "create", "--email", fmt.Sprintf("l%d@example.com", w), "--password-stdin")
	}
	var stderr bytes.Buffer
	srv := exec.Command(bin, "serve")
	srv.Env, srv.Stderr = env, &stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill() })
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	var accepted, answered, refused, brokenInFlight, fivexx atomic.Int64
	var mu sync.Mutex
	var broken []string
	// signalled is when SIGTERM was sent (zero before). A request started
	// more than 100 ms before it was in flight and must complete; one
	// started later may be refused: its connection can sit in the kernel's
	// accept backlog, which closing the listener resets.
	var signalled atomic.Int64
	inFlightAtSignal := func(start time.Time) bool {
		s := signalled.Load()
		return s == 0 || start.UnixNano() < s-int64(100*time.Millisecond)
	}
	post := func(form url.Values) (string, bool) {
		start := time.Now()
		var gotConn atomic.Bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// A connection per request: a request is either accepted or refused.
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{}}}
		resp, err := c.Do(req)
		if err != nil {
			if !gotConn.Load() || !inFlightAtSignal(start) {
				refused.Add(1)
				return "", false
			}
			brokenInFlight.Add(1)
			mu.Lock()
			broken = append(broken, err.Error())
			mu.Unlock()
			return "", false
		}
		accepted.Add(1)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			brokenInFlight.Add(1)
			return "", false
		}
		answered.Add(1)
		if resp.StatusCode >= 500 {
			fivexx.Add(1)
		}
		if resp.StatusCode != 200 {
			return "", true
		}
		_, rest, _ := strings.Cut(string(body), `"refresh_token":"`)
		tok, _, _ := strings.Cut(rest, `"`)
		return tok, true
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, ok := post(url.Values{"grant_type": {"password"}, "username": {fmt.Sprintf("l%d@example.com", w)},
					"password": {"load password 1"}, "client_id": {"mobile"}})
				for i := 0; ok && tok != "" && i < 3; i++ {
					tok, ok = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "client_id": {"mobile"}})
				}
				if !ok && refused.Load() > 0 {
					return // the server stopped accepting
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond) // load runs
	sent := time.Now()
	signalled.Store(sent.UnixNano())
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	var waitErr error
	select {
	case waitErr = <-exited:
	case <-time.After(shutdownTimeout + 10*time.Second):
		t.Fatalf("tokend did not exit within %s of SIGTERM", shutdownTimeout+10*time.Second)
	}
	took := time.Since(sent)
	close(stop)
	wg.Wait()
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) || waitErr != nil {
		t.Fatalf("tokend exited with %v after SIGTERM:\n%s", waitErr, stderr.String())
	}
	t.Logf("SIGTERM: exited 0 after %v; requests answered %d (accepted %d), refused (started at or after shutdown) %d, cut in flight %d, 5xx %d",
		took, answered.Load(), accepted.Load(), refused.Load(), brokenInFlight.Load(), fivexx.Load())
	if brokenInFlight.Load() != 0 {
		t.Fatalf("%d accepted requests were cut: %v", brokenInFlight.Load(), broken)
	}
	if fivexx.Load() != 0 || answered.Load() == 0 {
		t.Fatalf("%d 5xx, %d answered", fivexx.Load(), answered.Load())
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", stderr.String())
	}
	db := dbtest.SQLiteAt(t, dbPath)
	var orphans int
	if err := db.Reader().Get(&orphans, `SELECT COUNT(*) FROM refresh_tokens p WHERE p.used_at IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM refresh_tokens c WHERE c.parent_hash = p.token_hash)`); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Fatalf("%d half-written rotations", orphans)
	}
}
