package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq"
	_ "modernc.org/sqlite"
)

// baselineBody is a JSON document of exactly size bytes, shaped like a key
// set, so the baseline sends what the JWKS sends.
func baselineBody(size int) []byte {
	const head, tail = `{"keys":[{"x":"`, `"}]}`
	if size < len(head)+len(tail) {
		return bytes.Repeat([]byte{' '}, size)
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte{'A'}, size-len(head)-len(tail))...)
	return append(b, tail...)
}

// baselineHandler answers every request with the fixed body and the
// headers tokend's JWKS carries: the floor of an HTTP endpoint of that size.
func baselineHandler(size int) http.Handler {
	body := baselineBody(size)
	ctype := []string{"application/json"}
	cache := []string{"public, max-age=300"}
	etag := []string{`"baseline"`}
	length := []string{strconv.Itoa(len(body))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = ctype
		h["Cache-Control"] = cache
		h["Etag"] = etag
		h["Content-Length"] = length
		_, _ = w.Write(body)
	})
}

// signHandler is the floor of a client-credentials answer over HTTP: POST
// /oauth/token with a form and Basic credentials (neither checked) answered
// with a freshly signed access token (edSigner) in tokend's JSON shape and
// headers. It is what the bare net/http server and signing alone allow,
// without anything else a token endpoint does (client authentication,
// limits, logging, metrics).
func signHandler(issuer string) http.Handler {
	signer := newEdSigner()
	ctype := []string{"application/json"}
	nostore, nocache := []string{"no-store"}, []string{"no-cache"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // the readiness probe
			return
		}
		id, _, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" || !ok {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		body, _ := json.Marshal(struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int    `json:"expires_in"`
		}{signer.token(issuer, id), "Bearer", 900})
		h := w.Header()
		h["Content-Type"] = ctype
		h["Cache-Control"] = nostore
		h["Pragma"] = nocache
		_, _ = w.Write(body)
	})
}

// serveBaseline runs the baseline server until SIGTERM or SIGINT: the
// fixed body of size bytes, or with sign the client-credentials floor.
func serveBaseline(ctx context.Context, addr string, size int, sign bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := baselineHandler(size)
	what := fmt.Sprintf("%d-byte body", size)
	if sign {
		h, what = signHandler("http://"+addr), "signed client-credentials tokens"
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "serve-baseline: %s on %s\n", what, addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// baselineDB is the bare database round trip tokend's refresh is compared
// with: one transaction holding one UPDATE … RETURNING on a row of the
// worker's own, through database/sql with tokend's pool settings.
type baselineDB struct {
	db     *sql.DB
	query  string
	engine string
}

// openBaselineDB opens databaseURL (tokend's syntax: sqlite:PATH or
// postgres://…) and creates the table, one row per worker.
func openBaselineDB(ctx context.Context, databaseURL string, pool, workers int) (*baselineDB, error) {
	b := &baselineDB{}
	switch {
	case strings.HasPrefix(databaseURL, "sqlite:"):
		path := strings.TrimPrefix(databaseURL, "sqlite:")
		// As tokend's store: WAL, synchronous FULL, busy_timeout, and one
		// writer connection whose transactions begin IMMEDIATE.
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
			"&_pragma=synchronous(FULL)&_pragma=journal_mode(WAL)&_txlock=immediate"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, err
		}
		if pool < 1 {
			pool = 1
		}
		db.SetMaxOpenConns(pool)
		db.SetMaxIdleConns(pool)
		db.SetConnMaxIdleTime(0)
		b.db, b.engine = db, "sqlite"
		b.query = "UPDATE load_baseline SET n = n + 1 WHERE id = ? RETURNING n"
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		dsn, urlPool, err := splitPoolParam(databaseURL)
		if err != nil {
			return nil, err
		}
		if pool < 1 {
			pool = urlPool
		}
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			return nil, err
		}
		// As tokend: a pool of pool_max_conns (20), every connection kept.
		db.SetMaxOpenConns(pool)
		db.SetMaxIdleConns(pool)
		db.SetConnMaxIdleTime(5 * time.Minute)
		b.db, b.engine = db, "postgres"
		b.query = "UPDATE load_baseline SET n = n + 1 WHERE id = $1 RETURNING n"
	default:
		return nil, errors.New("baseline-db: --db must be sqlite:PATH or postgres://…")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stmts := []string{"DROP TABLE IF EXISTS load_baseline",
		"CREATE TABLE load_baseline (id INTEGER PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0)"}
	for _, s := range stmts {
		if _, err := b.db.ExecContext(cctx, s); err != nil {
			b.db.Close()
			return nil, fmt.Errorf("baseline-db: %s: %w", s, err)
		}
	}
	var vals strings.Builder
	for i := range workers {
		if i > 0 {
			vals.WriteByte(',')
		}
		fmt.Fprintf(&vals, "(%d, 0)", i)
	}
	if _, err := b.db.ExecContext(cctx, "INSERT INTO load_baseline (id, n) VALUES "+vals.String()); err != nil {
		b.db.Close()
		return nil, fmt.Errorf("baseline-db: insert rows: %w", err)
	}
	return b, nil
}

// close drops the table and closes the pool.
func (b *baselineDB) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = b.db.ExecContext(ctx, "DROP TABLE IF EXISTS load_baseline")
	b.db.Close()
}

// splitPoolParam removes tokend's own parameters (pool_max_conns,
// read_timeout) from a Postgres URL, which lib/pq would send to the server,
// and returns pool_max_conns (20 when absent).
func splitPoolParam(raw string) (string, int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, errors.New("baseline-db: bad postgres URL")
	}
	q := u.Query()
	n := 20
	if v := q.Get("pool_max_conns"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return "", 0, errors.New("baseline-db: bad pool_max_conns")
		}
	}
	q.Del("pool_max_conns")
	q.Del("read_timeout")
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

// dbWorker runs the baseline round trip on its own row.
type dbWorker struct {
	base
	db *baselineDB
}

func (w *dbWorker) setup(context.Context) error { return nil }
func (w *dbWorker) done()                       {}

func (w *dbWorker) step(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.run.cfg.Timeout)
	defer cancel()
	t0 := time.Now()
	err := w.roundTrip(ctx)
	d := time.Since(t0)
	switch {
	case err == nil:
		w.rec.success(d)
	case errors.Is(err, context.DeadlineExceeded):
		w.rec.failure("timeout", d)
	case errors.Is(err, context.Canceled):
	default:
		w.rec.failure("db error", d)
	}
}

func (w *dbWorker) roundTrip(ctx context.Context) error {
	tx, err := w.db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, w.db.query, w.id).Scan(&n); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
