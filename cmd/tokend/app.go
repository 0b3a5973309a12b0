package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/store/postgres"
	"github.com/tokend/tokend/internal/store/sqlite"
	"github.com/tokend/tokend/internal/store/sqlstore"
	"github.com/tokend/tokend/internal/users"
)

// hashWait is how long a password hash waits for a free slot before the
// request is answered 429.
const hashWait = 2 * time.Second

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openStore opens the database named by the configuration and applies
// pending migrations (every command does, so a fresh database works with
// any of them; instances that start together serialize on a lease row).
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*sqlstore.DB, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var db *sqlstore.DB
	var err error
	switch u := cfg.DatabaseURL; {
	case strings.HasPrefix(u, "sqlite:"):
		path := strings.TrimPrefix(u, "sqlite:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		db, err = sqlite.Open(octx, path, log)
	default:
		db, err = postgres.Open(octx, u, log)
	}
	if err != nil {
		return nil, err
	}
	mctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	applied, err := db.Migrate(mctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot migrate the database: %w", err)
	}
	if len(applied) > 0 {
		log.Info("applied migrations", "dialect", db.Dialect(), "versions", applied)
	}
	return db, nil
}

// newUsers builds the account service on db.
func newUsers(ctx context.Context, cfg config.Config, db *sqlstore.DB, now func() time.Time, log *slog.Logger) (*users.Service, *password.Hasher, error) {
	h, err := password.NewHasher(cfg.Argon2, cfg.HashMaxConcurrent, hashWait)
	if err != nil {
		return nil, nil, err
	}
	svc, err := users.New(ctx, db, h, now, log)
	if err != nil {
		return nil, nil, err
	}
	return svc, h, nil
}
