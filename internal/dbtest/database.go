package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/lib/pq"
)

// Database is a PostgreSQL database of one test's own, owned by a login
// role of its own that is not a superuser, so that the test may change the
// connection rules of both (ALLOW_CONNECTIONS, CONNECTION LIMIT, SET) without
// disturbing other tests on the server.
type Database struct {
	// Name is the database's name; Role the owner's.
	Name, Role string
	// URL connects to the database as Role.
	URL string
	// AdminURL connects to the database as the server's superuser.
	AdminURL string
	admin    *sql.DB // the superuser on the database TOKEND_TEST_POSTGRES_URL names
}

// PostgresDatabase creates a new database and its owning role, both named
// tokend_fault_<random>, and drops them when t ends. It skips or fails t as
// PostgresURL does when no server is configured.
func PostgresDatabase(t testing.TB) *Database {
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
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "tokend_fault_" + hex.EncodeToString(b[:])
	d := &Database{Name: name, Role: name, admin: admin}
	d.Exec(t, "CREATE ROLE "+pq.QuoteIdentifier(name)+" LOGIN NOSUPERUSER")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP ROLE IF EXISTS "+pq.QuoteIdentifier(name)); err != nil {
			t.Logf("drop role %s: %v", name, err)
		}
	})
	d.Exec(t, "CREATE DATABASE "+pq.QuoteIdentifier(name)+" OWNER "+pq.QuoteIdentifier(name))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE: a test may end with the database refusing connections
		// or with backends still attached.
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	mark(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	d.AdminURL = u.String()
	u.User = url.User(name)
	d.URL = u.String()
	return d
}

// Exec runs a statement as the superuser (on the server's test database,
// not on d).
func (d *Database) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.admin.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// Quoted returns the database's name quoted as an SQL identifier.
func (d *Database) Quoted() string { return pq.QuoteIdentifier(d.Name) }

// TerminateBackends ends every session on the database
// (pg_terminate_backend) and waits until they are gone, so that whoever
// used them must connect again.
func (d *Database) TerminateBackends(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		var left int
		err := d.admin.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()`, d.Name).Scan(&left)
		if err != nil {
			t.Fatalf("terminate backends of %s: %v", d.Name, err)
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("backends of %s did not end", d.Name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TerminateWaiting ends every session on the database that waits for a
// lock and reports how many it signalled.
func (d *Database) TerminateWaiting(ctx context.Context) (int, error) {
	var n int
	err := d.admin.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`, d.Name).Scan(&n)
	return n, err
}
