// Package postgres opens tokend's store on PostgreSQL (or a
// Postgres-compatible engine) through sqlx and lib/pq, and translates the
// engine's errors into the store's sentinels.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// DefaultMaxConns is the pool size when the URL does not set
// pool_max_conns. Every connection is kept open while idle: re-dialing under
// load costs more than the idle connections do.
const DefaultMaxConns = 20

// DefaultConnectTimeout bounds connecting (TCP and the startup handshake)
// when neither the URL's connect_timeout nor PGCONNECT_TIMEOUT is set;
// lib/pq alone would wait for ever on a server that accepts and never
// answers.
const DefaultConnectTimeout = 10 * time.Second

// DefaultReadTimeout is how long tokend waits for the server to send or
// accept the next bytes of a statement when the URL does not set
// read_timeout. A server that stops answering (a partition, a hung host)
// would otherwise hold the request and its connection for ever: lib/pq
// honours a cancelled context only by asking the same server to cancel.
// 30 s is the HTTP server's write timeout: a later answer could not reach
// the client anyway.
const DefaultReadTimeout = 30 * time.Second

// Options tune the pool; zero values take the defaults.
type Options struct {
	MaxConns int
	// ReadTimeout bounds each wait for the server (negative: no bound).
	ReadTimeout time.Duration
}

// Open connects to databaseURL (postgres:// or postgresql://), verifies that
// the server answers, and returns the store. The URL may carry
// pool_max_conns=N and read_timeout=SECONDS (0 for no bound), which tokend
// consumes; every other parameter goes to lib/pq, with connect_timeout set
// to DefaultConnectTimeout when neither the URL nor the environment sets it.
func Open(ctx context.Context, databaseURL string, log *slog.Logger) (*sqlstore.DB, error) {
	dsn, opts, err := parseURL(databaseURL, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	conn, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %v", redact(err, databaseURL))
	}
	if opts.ReadTimeout > 0 {
		conn.Dialer(boundedDialer{timeout: opts.ReadTimeout})
	}
	sdb := sql.OpenDB(conn)
	sdb.SetMaxOpenConns(opts.MaxConns)
	sdb.SetMaxIdleConns(opts.MaxConns)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	sdb.SetConnMaxLifetime(time.Hour)
	db := sqlx.NewDb(sdb, "postgres")
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: cannot reach %s: %v", describe(databaseURL), redact(err, databaseURL))
	}
	return sqlstore.New(Dialect, db, nil, log), nil
}

// Dialect is the Postgres flavour of the shared SQL store.
var Dialect = sqlstore.Dialect{
	Name:       "postgres",
	Translate:  translate,
	Retryable:  retryable,
	SkipLocked: " FOR UPDATE SKIP LOCKED",
	ForShare:   " FOR SHARE",
	ForUpdate:  " FOR UPDATE",
}

func parseURL(raw string, lookupEnv func(string) (string, bool)) (string, Options, error) {
	opts := Options{MaxConns: DefaultMaxConns, ReadTimeout: DefaultReadTimeout}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return "", opts, errors.New("postgres: not a postgres:// URL")
	}
	q := u.Query()
	if v := q.Get("pool_max_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", opts, fmt.Errorf("postgres: pool_max_conns=%q is not a number from 1 to 1000", v)
		}
		opts.MaxConns = n
	}
	q.Del("pool_max_conns")
	if v := q.Get("read_timeout"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 86400 {
			return "", opts, fmt.Errorf("postgres: read_timeout=%q is not a number of seconds from 0 (no bound) to 86400", v)
		}
		opts.ReadTimeout = time.Duration(n) * time.Second
		if n == 0 {
			opts.ReadTimeout = -1
		}
	}
	q.Del("read_timeout")
	if _, ok := lookupEnv("PGCONNECT_TIMEOUT"); !ok && q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", strconv.Itoa(int(DefaultConnectTimeout/time.Second)))
	}
	// Send every parameterized statement as one Parse/Bind/Execute
	// round trip instead of lib/pq's default prepare-then-execute (two
	// round trips); []byte travels as binary, which is what BYTEA wants.
	if q.Get("binary_parameters") == "" {
		q.Set("binary_parameters", "yes")
	}
	u.RawQuery = q.Encode()
	return u.String(), opts, nil
}

// describe names the server without credentials.
func describe(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the database"
	}
	return u.Host + u.Path
}

// redact removes the URL's password from a driver error message.
func redact(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "redacted")
		}
	}
	return msg
}

// SQLSTATE codes tokend reacts to.
const (
	uniqueViolation     = "23505"
	checkViolation      = "23514"
	notNullViolation    = "23502"
	foreignKeyViolation = "23503"
	// Text Postgres cannot hold (NUL, invalid UTF-8): callers check
	// store.Storable first; this is the net under a check that was missed.
	characterNotInRepertoire = "22021"
	untranslatableCharacter  = "22P05"
	serializationFailure     = "40001"
	deadlockDetected         = "40P01"
	tooManyConnections       = "53300"
	adminShutdown            = "57P01"
	crashShutdown            = "57P02"
	cannotConnectNow         = "57P03"
	// The database does not exist (dropped, or not restored yet): at
	// connect, so tokend is not serving it.
	invalidCatalogName  = "3D000"
	readOnlyTransaction = "25006"
	// Raised by much besides connecting; see notAcceptingConnections.
	objectNotInPrerequisiteState = "55000"
	// Raised by much besides a standby; see readWriteInRecovery.
	featureNotSupported = "0A000"
)

func translate(err error) error {
	if err == nil {
		return nil
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		code := string(pe.Code)
		switch {
		case code == uniqueViolation:
			return fmt.Errorf("%w: %s", store.ErrAlreadyExists, pe.Constraint)
		case code == checkViolation || code == notNullViolation || code == foreignKeyViolation ||
			code == characterNotInRepertoire || code == untranslatableCharacter:
			return fmt.Errorf("%w: %s", store.ErrInvalid, pe.Message)
		case code == tooManyConnections || code == adminShutdown || code == crashShutdown ||
			code == cannotConnectNow || code == invalidCatalogName || code == readOnlyTransaction || code[:2] == "08" ||
			notAcceptingConnections(pe) || readWriteInRecovery(pe):
			return fmt.Errorf("%w: %s", store.ErrUnavailable, pe.Message)
		}
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

// notAcceptingConnections recognises the 55000 a database answers at
// connect while ALLOW_CONNECTIONS is false (maintenance, or a database
// being moved). Other 55000 errors (currval before nextval, an object in
// the wrong state) are not about availability. The routine name is what
// PostgreSQL reports whatever the server's language; the message is the
// fallback for compatible engines that do not send one.
func notAcceptingConnections(pe *pq.Error) bool {
	return string(pe.Code) == objectNotInPrerequisiteState &&
		(pe.Routine == "CheckMyDatabase" || strings.Contains(pe.Message, "is not currently accepting connections"))
}

// readWriteInRecovery recognises the 0A000 a standby (a server in
// recovery: a failover not finished, or tokend pointed at a replica)
// answers to BEGIN READ WRITE, which is how lib/pq starts every read-write
// transaction; the writes themselves would fail with 25006. Other 0A000
// errors (a cached plan whose result type changed, say) are not about
// availability. PostgreSQL reports it from the check of the boolean
// setting transaction_read_only.
func readWriteInRecovery(pe *pq.Error) bool {
	return string(pe.Code) == featureNotSupported &&
		(pe.Routine == "call_bool_check_hook" || strings.Contains(pe.Message, "read-write mode during recovery"))
}

// unavailable recognises a lost or refused connection.
func unavailable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, sql.ErrConnDone):
		return true
	case errors.As(err, &oe):
		return true
	case errors.As(err, &ne):
		return true
	}
	return false
}

func retryable(err error) bool {
	var pe *pq.Error
	if errors.As(err, &pe) {
		c := string(pe.Code)
		return c == serializationFailure || c == deadlockDetected
	}
	return false
}
