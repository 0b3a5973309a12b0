package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/store/postgres"
	"github.com/tokend/tokend/internal/store/sqlite"
	"github.com/tokend/tokend/internal/store/sqlstore"
	"github.com/tokend/tokend/internal/users"
)

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openAdmin prepares an operator command: the configuration from the
// environment, a logger for warnings, and the migrated store (the caller
// closes it).
func openAdmin(ctx context.Context, e env) (config.Config, *slog.Logger, *sqlstore.DB, error) {
	cfg, err := config.FromEnv(e.getenv)
	if err != nil {
		return config.Config{}, nil, nil, err
	}
	log := newLogger(e.stderr, slog.LevelWarn)
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return config.Config{}, nil, nil, err
	}
	return cfg, log, db, nil
}

// openStore opens the database named by the configuration and applies
// pending migrations (every command does, so a fresh database works with
// any of them; instances that start together serialize on a lease row).
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (*sqlstore.DB, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var db *sqlstore.DB
	var err error
	switch u := cfg.DatabaseURL.Reveal(); {
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

// devMasterKeyFile is where dev mode keeps its generated master key.
const devMasterKeyFile = "keys/dev-master.key"

// loadMasterKey loads the master keys (generating the dev one in dev mode)
// and checks the current one against the database's check value.
func loadMasterKey(ctx context.Context, cfg config.Config, db *sqlstore.DB, log *slog.Logger) (*masterkey.Keyring, error) {
	ring, err := loadKeyring(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := ring.Check(ctx, db); err != nil {
		return nil, err
	}
	return ring, nil
}

// loadKeyring loads TOKEND_MASTER_KEY and TOKEND_MASTER_KEY_PREVIOUS
// without checking them against the database.
func loadKeyring(cfg config.Config, log *slog.Logger) (*masterkey.Keyring, error) {
	k, generated, err := masterkey.Load(masterkey.Source{Value: cfg.MasterKey.Reveal(), File: cfg.MasterKeyFile, Dev: cfg.Dev, DevFile: devMasterKeyFile})
	if err != nil {
		return nil, err
	}
	if generated {
		log.Warn("dev mode: generated a master key; it is for development only", "file", devMasterKeyFile)
	}
	prev, err := masterkey.LoadPrevious(cfg.MasterKeyPrevious.Reveal(), cfg.MasterKeyPreviousFile, k)
	if err != nil {
		return nil, err
	}
	return &masterkey.Keyring{Current: k, Previous: prev}, nil
}

// newUsers builds the account service on db.
func newUsers(ctx context.Context, cfg config.Config, db *sqlstore.DB, now func() time.Time, log *slog.Logger) (*users.Service, *password.Hasher, error) {
	h, err := password.NewHasher(cfg.Argon2, cfg.HashMaxConcurrent, app.HashWait)
	if err != nil {
		return nil, nil, err
	}
	svc, err := users.New(ctx, db, h, now, log)
	if err != nil {
		return nil, nil, err
	}
	return svc, h, nil
}
