// Package dbtest opens fresh, migrated stores for tests: an SQLite file in a
// temporary directory, or a new schema in the PostgreSQL database named by
// TOKEND_TEST_POSTGRES_URL, so that test packages can run in parallel against
// one server.
//
// For fault tests it also gives a test a database and role of its own
// (PostgresDatabase), a server of its own (StartCluster), and a proxy that
// cuts, resets or black-holes connections (StartProxy).
//
// Without TOKEND_TEST_POSTGRES_URL the Postgres half skips, unless
// TOKEND_TEST_REQUIRE_POSTGRES=1 (set by .ci/run), in which case it fails: a
// green CI run always means both stores passed.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq" // the admin connection that creates schemas

	"github.com/tokend/tokend/internal/store/postgres"
	"github.com/tokend/tokend/internal/store/sqlite"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// Env names.
const (
	PostgresURLEnv     = "TOKEND_TEST_POSTGRES_URL"
	RequirePostgresEnv = "TOKEND_TEST_REQUIRE_POSTGRES"
	markerDirEnv       = "TOKEND_TEST_PG_MARKER_DIR"
	// OnlyPostgresEnv=1 skips every SQLite store: the second CI pass runs
	// the Postgres half again, on a database whose default isolation is
	// SERIALIZABLE (what CockroachDB and YugabyteDB run).
	OnlyPostgresEnv = "TOKEND_TEST_ONLY_POSTGRES"
	// IsolationEnv, when set, is the default_transaction_isolation the
	// test database must have; a mismatch fails the test rather than
	// passing under the wrong isolation.
	IsolationEnv = "TOKEND_TEST_POSTGRES_ISOLATION"
)

// Backend opens a fresh store for one test.
type Backend struct {
	Name string
	Open func(t testing.TB) *sqlstore.DB
}

// Backends returns SQLite and Postgres, in that order.
func Backends() []Backend {
	return []Backend{{Name: "sqlite", Open: SQLite}, {Name: "postgres", Open: Postgres}}
}

// Each runs fn as a subtest per backend.
func Each(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// SQLite returns a migrated store on a new file in t's temporary directory.
// The file starts as a copy of one migrated once per test process (running
// every migration through the pure-Go SQLite under -race took a sixth of
// the HTTP tests' CPU); Migrate then finds it current.
func SQLite(t testing.TB) *sqlstore.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokend.db")
	if os.Getenv(OnlyPostgresEnv) != "1" {
		data, err := sqliteTemplate()
		if err != nil {
			t.Fatalf("migrated SQLite template: %v", err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return SQLiteAt(t, path)
}

var sqliteTmpl struct {
	once sync.Once
	data []byte
	err  error
}

// sqliteTemplate is the content of a freshly migrated SQLite file, made
// once per process: migrated, closed (which checkpoints the WAL into the
// file and removes it), read and deleted.
func sqliteTemplate() ([]byte, error) {
	sqliteTmpl.once.Do(func() {
		sqliteTmpl.data, sqliteTmpl.err = func() ([]byte, error) {
			dir, err := os.MkdirTemp("", "tokend-dbtest-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			path := filepath.Join(dir, "template.db")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			db, err := sqlite.Open(ctx, path, slog.New(slog.DiscardHandler))
			if err != nil {
				return nil, err
			}
			if _, err := db.Migrate(ctx); err != nil {
				db.Close()
				return nil, err
			}
			if err := db.Close(); err != nil {
				return nil, err
			}
			if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
				return nil, fmt.Errorf("the WAL of %s was not checkpointed on close", path)
			}
			return os.ReadFile(path)
		}()
	})
	return sqliteTmpl.data, sqliteTmpl.err
}

// SQLiteAt returns a migrated store on the SQLite file at path (a second
// instance, or a file a test inspects).
func SQLiteAt(t testing.TB, path string) *sqlstore.DB {
	t.Helper()
	if os.Getenv(OnlyPostgresEnv) == "1" {
		t.Skipf("%s=1: this pass runs the Postgres half only", OnlyPostgresEnv)
	}
	db, err := sqlite.Open(context.Background(), path, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	migrate(t, db)
	return db
}

// PostgresURL returns a database URL whose search_path is a new, empty
// schema (dropped when t ends), or skips or fails t when no server is
// configured.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		if os.Getenv(RequirePostgresEnv) == "1" {
			t.Fatalf("%s is not set but %s=1: the Postgres suite must run", PostgresURLEnv, RequirePostgresEnv)
		}
		t.Skipf("set %s to run against PostgreSQL", PostgresURLEnv)
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("postgres admin connection: %v", err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "tokend_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema (is PostgreSQL up? %s): %v", PostgresURLEnv, err)
	}
	if want := os.Getenv(IsolationEnv); want != "" {
		var got string
		if err := admin.QueryRowContext(ctx, "SHOW default_transaction_isolation").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("the test database runs %q, but %s=%q", got, IsolationEnv, want)
		}
	}
	t.Cleanup(func() {
		a, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	mark(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Postgres returns a migrated store on a new schema.
func Postgres(t testing.TB) *sqlstore.DB {
	t.Helper()
	return OpenPostgresURL(t, PostgresURL(t))
}

// OpenPostgresURL opens another store on a URL from PostgresURL (a second
// tokend instance on the same database).
func OpenPostgresURL(t testing.TB, u string) *sqlstore.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), u, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	migrate(t, db)
	return db
}

func migrate(t testing.TB, db *sqlstore.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// mark records that a Postgres test really ran, for .ci/run to check.
func mark(t testing.TB) {
	dir := os.Getenv(markerDirEnv)
	if dir == "" {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(name) > 100 {
		name = name[:100]
	}
	_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d", name, os.Getpid())), nil, 0o644)
}

// Logger returns a logger that writes to the test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
