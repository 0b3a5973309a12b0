package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/httpapi"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
	"github.com/tokend/tokend/internal/users"
)

// shutdownTimeout bounds how long SIGTERM waits for requests in flight.
const shutdownTimeout = 20 * time.Second

// Demo credentials seeded in dev mode (printed at start and used by the
// README's curl examples).
const (
	demoEmail    = "demo@example.com"
	demoPassword = "demo-password"
)

func cmdServe(ctx context.Context, args []string, e env) error {
	cfg, err := config.Load(args, e.getenv, e.stderr)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, slog.LevelInfo)
	a, err := newApp(ctx, cfg, log, time.Now)
	if err != nil {
		return err
	}
	defer a.close()
	if cfg.Dev {
		if err := a.seedDev(ctx, e.stdout); err != nil {
			return fmt.Errorf("seed dev data: %w", err)
		}
	}
	return a.serve(ctx)
}

// app is a running tokend: its store, services and HTTP server.
type app struct {
	cfg   config.Config
	log   *slog.Logger
	now   func() time.Time
	db    *sqlstore.DB
	users *users.Service
	http  *httpapi.Server
	// ready is closed once the listener is up (tests wait on it).
	ready chan struct{}
	addr  string
}

func newApp(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*app, error) {
	log.Info("starting tokend", "version", version, "config", cfg.Redacted())
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, now: now, db: db, ready: make(chan struct{})}
	if a.users, _, err = newUsers(ctx, cfg, db, now, log); err != nil {
		db.Close()
		return nil, err
	}
	a.http = httpapi.New(httpapi.Config{
		Log:   log,
		Now:   now,
		Ready: a.readiness,
	})
	return a, nil
}

func (a *app) close() {
	if err := a.db.Close(); err != nil {
		a.log.Warn("close database", "err", err)
	}
}

// readiness is /readyz: the database answers.
func (a *app) readiness(ctx context.Context) error {
	return a.db.Ping(ctx)
}

// serve listens until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests in flight finish (bounded), and returns.
func (a *app) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v", a.cfg.Listen, errors.Unwrap(err))
	}
	srv := &http.Server{
		Handler:           a.http,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.addr = ln.Addr().String()
	a.log.Info("listening", "addr", a.addr, "issuer", a.cfg.Issuer)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	close(a.ready)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("shutdown did not finish every request in time", "err", err)
	}
	a.log.Info("stopped")
	return nil
}

// seedDev creates the demo clients and user if they are missing and prints
// the credentials.
func (a *app) seedDev(ctx context.Context, out io.Writer) error {
	now := a.now()
	for _, c := range []store.Client{
		{ID: "web", Kind: store.ClientWeb, CreatedAt: now},
		{ID: "mobile", Kind: store.ClientNative, CreatedAt: now},
	} {
		if err := a.db.CreateClient(ctx, c, nil); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return err
		}
	}
	if _, err := a.users.Create(ctx, demoEmail, demoPassword, audit.Meta{Address: "dev-seed"}); err != nil &&
		!errors.Is(err, store.ErrEmailTaken) {
		return err
	}
	fmt.Fprintf(out, `
  tokend dev mode: NOT FOR PRODUCTION
  issuer     %s
  demo user  %s / %s
  clients    web (cookie flow, /auth/*)   mobile (native flow, /oauth/token)
  reset links are printed to this log instead of being mailed

`, a.cfg.Issuer, demoEmail, demoPassword)
	return nil
}
