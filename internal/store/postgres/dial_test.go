package postgres

import (
	"errors"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

func TestParseURLTimeouts(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	tests := []struct {
		name, url   string
		env         func(string) (string, bool)
		wantConnect string // connect_timeout passed on to lib/pq
		wantRead    time.Duration
	}{
		{"defaults", "postgres://h/db", noEnv, "10", DefaultReadTimeout},
		{"url sets both", "postgres://h/db?connect_timeout=3&read_timeout=7", noEnv, "3", 7 * time.Second},
		{"read_timeout=0 is no bound", "postgres://h/db?read_timeout=0", noEnv, "10", -1},
		{"PGCONNECT_TIMEOUT is left to lib/pq", "postgres://h/db",
			func(k string) (string, bool) { return "4", k == "PGCONNECT_TIMEOUT" }, "", DefaultReadTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn, opts, err := parseURL(tc.url, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("connect_timeout"); got != tc.wantConnect {
				t.Errorf("connect_timeout = %q, want %q", got, tc.wantConnect)
			}
			if u.Query().Has("read_timeout") {
				t.Errorf("read_timeout reached lib/pq (it would send it to the server): %s", dsn)
			}
			if opts.ReadTimeout != tc.wantRead {
				t.Errorf("ReadTimeout = %v, want %v", opts.ReadTimeout, tc.wantRead)
			}
		})
	}
	for _, bad := range []string{"-1", "5s", "86401"} {
		if _, _, err := parseURL("postgres://h/db?read_timeout="+bad, noEnv); err == nil {
			t.Errorf("read_timeout=%s accepted", bad)
		}
	}
}

// TestBoundedConn: a server that accepts and never answers costs a read
// the bound, not for ever; a nearer deadline of the caller's (lib/pq's
// connect_timeout) wins, and clearing it restores the bound.
func TestBoundedConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := boundedDialer{timeout: 50 * time.Millisecond}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A black hole: accepted, never read, never written.
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatalf("write: %v", err)
	}
	timedOut := func(what string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		select {
		case err := <-done:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s: read returned %v, want a timeout", what, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: read still blocked after a minute", what)
		}
	}
	timedOut("the bound")

	// A deadline in the past (as lib/pq's connect_timeout once expired)
	// applies at once even though the bound is later.
	c.(*boundedConn).timeout = time.Hour
	if err := c.SetDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	timedOut("the caller's deadline")
	if got := c.(*boundedConn).next(); !got.Equal(time.Unix(1, 0)) {
		t.Fatalf("next deadline %v, want the caller's", got)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := c.(*boundedConn).next(); time.Until(got) < 59*time.Minute {
		t.Fatalf("after clearing the caller's deadline the next one is %v, want the bound", got)
	}
}
