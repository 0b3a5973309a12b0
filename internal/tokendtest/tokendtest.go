// Package tokendtest starts a complete tokend (the same wiring as `tokend
// serve`, from package app) behind an httptest server, on a fresh SQLite file
// or Postgres schema, with a fake clock. End-to-end tests drive it over real
// HTTP.
package tokendtest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/grants"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
	"github.com/tokend/tokend/internal/users"
)

// T0 is where fake clocks start.
var T0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// Options configure Start. Zero values take defaults.
type Options struct {
	// Store to run on; nil opens a fresh one on Backend (SQLite when empty).
	Store   *sqlstore.DB
	Backend string
	// Clock shared with other instances; nil makes a new one at T0.
	Clock *clock.Fake
	// MasterKey shared with other instances on the same store.
	MasterKey *masterkey.Key
	// PreviousMasterKey is TOKEND_MASTER_KEY_PREVIOUS (none when nil).
	PreviousMasterKey *masterkey.Key
	// Configure adjusts the configuration after the defaults.
	Configure func(*config.Config)
	// Log receives the server's log lines (the test's output when nil).
	Log io.Writer
	// SMTPURL and MailTLS point the mailer at a test SMTP server.
	SMTPURL string
	MailTLS *tls.Config
	// ResetMinDuration is the minimum time of a reset request, a sign-up,
	// a re-sent confirmation and a change of address (1 ms when 0, to keep
	// tests fast; timing tests set it).
	ResetMinDuration time.Duration
	// WrapHasher wraps the accounts' password hasher (to count or pace
	// the hashing).
	WrapHasher func(users.Hasher) users.Hasher
	// Hostname, when set, names the server in its issuer (and URL) instead
	// of its IP address: "localhost" gives an issuer passkeys work with
	// (WebAuthn refuses an IP address as relying party ID).
	Hostname string
}

// Server is a running tokend.
type Server struct {
	*app.App
	URL       string
	Clock     *clock.Fake
	MasterKey *masterkey.Key
	TS        *httptest.Server
	// AdminTS serves the admin listener's handler (/metrics).
	AdminTS *httptest.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	scan    *secretScan
}

// Config returns the defaults tests start from: production settings with
// cheap password hashing.
func Config(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Argon2 = password.Params{Memory: 64, Time: 1, Threads: 1}
	cfg.HashMaxConcurrent = 8
	return cfg
}

// Start runs a tokend for the test.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	db := o.Store
	if db == nil {
		if o.Backend == "postgres" {
			db = dbtest.Postgres(t)
		} else {
			db = dbtest.SQLite(t)
		}
	}
	if o.Clock == nil {
		o.Clock = clock.NewFake(T0)
	}
	if o.MasterKey == nil {
		o.MasterKey = masterkey.Generate()
	}
	ts := httptest.NewUnstartedServer(nil)
	url := "http://" + ts.Listener.Addr().String()
	if o.Hostname != "" {
		_, port, err := net.SplitHostPort(ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		url = "http://" + net.JoinHostPort(o.Hostname, port)
	}
	cfg := Config(t)
	cfg.Issuer, cfg.Audience, cfg.ResetURL = url, url, url+"/reset"
	cfg.SMTPURL = secret.String(o.SMTPURL)
	if o.ResetMinDuration == 0 {
		o.ResetMinDuration = time.Millisecond
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	w := o.Log
	if w == nil {
		w = t.Output()
	}
	scan := newSecretScan()
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(w, scan), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	if err := (&masterkey.Keyring{Current: o.MasterKey, Previous: o.PreviousMasterKey}).Check(ctx, db); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, app.Options{Config: cfg, Store: db, MasterKey: o.MasterKey, PreviousMasterKey: o.PreviousMasterKey, Now: o.Clock.Now, Log: log,
		MailTLS: o.MailTLS, ResetMinDuration: o.ResetMinDuration, WrapHasher: o.WrapHasher})
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range clients.DemoSpecs() {
		if _, _, err := a.Clients.Create(ctx, spec, T0, nil); err != nil && !isExists(err) {
			t.Fatal(err)
		}
	}
	ts.Config.Handler = a.Handler()
	ts.Start()
	s := &Server{App: a, URL: url, Clock: o.Clock, MasterKey: o.MasterKey, TS: ts, AdminTS: httptest.NewServer(a.AdminHandler()), scan: scan}
	t.Cleanup(func() {
		s.Close()
		s.scanNow(t)
	})
	return s
}

// RunBackground starts the background workers (the tests usually call their
// steps directly instead, with the fake clock).
func (s *Server) RunBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.App.Run(ctx) }()
}

// Close stops the server.
func (s *Server) Close() {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	s.TS.Close()
	s.AdminTS.Close()
}

// Client returns an HTTP client that does not follow redirects.
func (s *Server) Client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

func isExists(err error) bool { return errors.Is(err, store.ErrAlreadyExists) }

// PasswordLogin signs in with a password on a client, as the password grant
// (or /auth/login for a web client) does, with the request metadata m (the
// client's address, say), and returns what the token endpoint would.
func (s *Server) PasswordLogin(ctx context.Context, clientID, email, password string, m audit.Meta) (*grants.Response, error) {
	c, err := s.Clients.Get(ctx, clientID)
	if err != nil {
		return nil, err
	}
	m.ClientID = clientID
	return grants.PasswordLogin(ctx, s.Login, s.Sessions, grants.Request{Client: c, Meta: m}, email, secret.String(password))
}
