package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/httpapi"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
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
	if limit, set := memoryLimit(cfg, e.getenv); set {
		debug.SetMemoryLimit(limit)
		log.Info("memory limit set from the hashing budget", "bytes", limit)
	}
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

// memoryLimit is the Go runtime's soft memory limit for `serve`, unless
// GOMEMLIMIT is set: a base for the process plus twice what
// the concurrent password hashes hold (m KiB × TOKEND_HASH_MAX_CONCURRENT).
// Every argon2id hash allocates a fresh m KiB buffer, so without a limit
// the heap grows to twice the live hashes between collections; with it,
// memory stays bounded when a login storm fills every hashing slot.
func memoryLimit(cfg config.Config, getenv func(string) string) (int64, bool) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	hashes := int64(cfg.Argon2.Memory) * 1024 * int64(cfg.HashMaxConcurrent)
	return 64<<20 + hashes*2, true
}

// server is a running tokend: the wired application and its listener.
type server struct {
	*app.App
	cfg config.Config
	log *slog.Logger
	db  *sqlstore.DB
	now func() time.Time
}

func newApp(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*server, error) {
	log.Info("starting tokend", "version", version, "config", cfg.Redacted())
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	ring, err := loadMasterKey(ctx, cfg, db, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	a, err := app.New(ctx, app.Options{Config: cfg, Store: db, MasterKey: ring.Current, PreviousMasterKey: ring.Previous, Now: now, Log: log, Version: version})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &server{App: a, cfg: cfg, log: log, db: db, now: now}, nil
}

func (a *server) close() {
	if err := a.db.Close(); err != nil {
		a.log.Warn("close database", "err", err)
	}
}

// serve listens until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests in flight finish (bounded), and returns. The
// admin listener (/metrics) runs beside the public one unless it is off.
func (a *server) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v", a.cfg.Listen, errors.Unwrap(err))
	}
	servers := []*http.Server{a.httpServer(a.Handler())}
	listeners := []net.Listener{ln}
	if a.cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", a.cfg.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("cannot listen on %s (TOKEND_ADMIN_LISTEN; off disables it): %v", a.cfg.AdminListen, errors.Unwrap(err))
		}
		servers = append(servers, a.httpServer(a.AdminHandler()))
		listeners = append(listeners, aln)
		a.log.Info("admin listener", "addr", aln.Addr().String(), "serves", "/metrics")
	}
	a.log.Info("listening", "addr", ln.Addr().String(), "issuer", a.cfg.Issuer)
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go a.Run(bg)
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			a.log.Warn("shutdown did not finish every request in time", "err", err)
		}
	}
	a.log.Info("stopped")
	return serveErr
}

func (a *server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Above tokend's own limit, which answers in the OAuth error
		// shape; past this one net/http answers 431 in text/plain.
		MaxHeaderBytes: 2 * httpapi.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

// seedDev creates the demo clients and user if they are missing and prints
// the credentials.
func (a *server) seedDev(ctx context.Context, out io.Writer) error {
	now := a.now()
	for _, spec := range clients.DemoSpecs() {
		if _, _, err := a.Clients.Create(ctx, spec, now, nil); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return err
		}
	}
	if _, err := a.Users.CreateVerified(ctx, demoEmail, demoPassword, audit.Meta{Address: "dev-seed"}); err != nil &&
		!errors.Is(err, store.ErrEmailTaken) {
		return err
	}
	fmt.Fprintf(out, `
  tokend dev mode: NOT FOR PRODUCTION
  issuer     %s
  demo user  %s / %s
  clients    web (cookie flow, /auth/*)
             mobile (native: authorization code flow with PKCE on http://127.0.0.1/callback, and the password grant)
  reset and confirmation links are printed to this log instead of being mailed

`, a.cfg.Issuer, demoEmail, demoPassword)
	return nil
}
