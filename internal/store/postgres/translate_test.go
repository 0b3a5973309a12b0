package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/postgres"
)

// TestTranslateUnavailable: every way PostgreSQL or the network says the
// database cannot be used now is store.ErrUnavailable, and errors that
// share a SQLSTATE with one of them but mean something else are not. The
// Routine values are what PostgreSQL 15 sends (TestPostgresUnavailable and
// TestPostgresFailover in internal/httpapi meet them for real).
func TestTranslateUnavailable(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"timed out", timeout, true},
		{"bad connection", fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{"eof", io.ErrUnexpectedEOF, true},
		{"08006 connection failure", &pq.Error{Code: "08006", Message: "connection failure"}, true},
		{"08P01 protocol violation", &pq.Error{Code: "08P01", Message: "invalid startup packet layout: expected terminator as last byte",
			Routine: "ProcessStartupPacket"}, true},
		{"53300 too many connections", &pq.Error{Code: "53300", Message: `too many connections for role "r"`, Routine: "InitPostgres"}, true},
		{"57P01 admin shutdown", &pq.Error{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{"57P02 crash shutdown", &pq.Error{Code: "57P02", Message: "terminating connection because of crash of another server process"}, true},
		{"57P03 cannot connect now", &pq.Error{Code: "57P03", Message: "the database system is not accepting connections",
			Routine: "ProcessStartupPacket"}, true},
		{"55000 not accepting connections", &pq.Error{Code: "55000", Message: `database "d" is not currently accepting connections`,
			Routine: "CheckMyDatabase"}, true},
		{"55000 not accepting connections, translated message", &pq.Error{Code: "55000",
			Message: `la base de données « d » n'accepte plus les connexions`, Routine: "CheckMyDatabase"}, true},
		{"3D000 database does not exist", &pq.Error{Code: "3D000", Message: `database "tokend" does not exist`, Routine: "InitPostgres"}, true},
		{"25006 read-only transaction", &pq.Error{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}, true},
		{"0A000 read-write during recovery", &pq.Error{Code: "0A000", Message: "cannot set transaction read-write mode during recovery",
			Routine: "call_bool_check_hook"}, true},

		{"55000 currval not yet defined", &pq.Error{Code: "55000", Message: `currval of sequence "s" is not yet defined in this session`,
			Routine: "currval_oid"}, false},
		{"0A000 cached plan", &pq.Error{Code: "0A000", Message: "cached plan must not change result type", Routine: "RevalidateCachedQuery"}, false},
		{"42P01 undefined table", &pq.Error{Code: "42P01", Message: `relation "x" does not exist`}, false},
		{"plain error", errors.New("boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := postgres.Dialect.Translate(tc.err)
			if errors.Is(got, store.ErrUnavailable) != tc.want {
				t.Fatalf("Translate(%v) = %v; unavailable: %v, want %v", tc.err, got, !tc.want, tc.want)
			}
			if !tc.want && got != tc.err {
				t.Fatalf("Translate(%v) = %v, want the error unchanged", tc.err, got)
			}
		})
	}
}

// TestTranslateRealErrors asks a real PostgreSQL for the 55000 and 0A000
// errors that are not about availability and for the 55000 that is.
func TestTranslateRealErrors(t *testing.T) {
	d := dbtest.PostgresDatabase(t)
	db, err := sql.Open("postgres", d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"CREATE SEQUENCE s", "CREATE TABLE t (a int)"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	notUnavailable := func(code, what string, err error) {
		t.Helper()
		var pe *pq.Error
		if !errors.As(err, &pe) || string(pe.Code) != code {
			t.Fatalf("%s: %v, want SQLSTATE %s", what, err, code)
		}
		if got := postgres.Dialect.Translate(err); errors.Is(got, store.ErrUnavailable) {
			t.Fatalf("%s: %v is not about availability but translates to %v", what, err, got)
		}
	}
	_, err = conn.ExecContext(ctx, "SELECT currval('s')")
	notUnavailable("55000", "currval before nextval", err)
	// A prepared statement whose table changed under it (another
	// instance migrated): 0A000, as a standby's refusal is.
	st, err := conn.PrepareContext(ctx, "SELECT * FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE t ADD COLUMN b int"); err != nil {
		t.Fatal(err)
	}
	_, err = st.ExecContext(ctx)
	notUnavailable("0A000", "a cached plan whose result type changed", err)
	st.Close()
	conn.Close()
	db.Close()

	d.Exec(t, "ALTER DATABASE "+d.Quoted()+" ALLOW_CONNECTIONS false")
	d.TerminateBackends(t)
	db, err = sql.Open("postgres", d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.PingContext(ctx)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "55000" {
		t.Fatalf("connecting to a database that does not allow connections: %v, want SQLSTATE 55000", err)
	}
	if got := postgres.Dialect.Translate(err); !errors.Is(got, store.ErrUnavailable) {
		t.Fatalf("%v translates to %v, want store.ErrUnavailable", err, got)
	}
}
