package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// prune-backlog measures whether pruning a large backlog is felt by
// traffic: on a fresh Postgres database seeded with an expired backlog of
// refresh-token families (and one token each) through tokend's own schema,
// it runs the refresh-token scenario once with no pruning going on and once
// while a `tokend prune` pass works the backlog off, and reports the
// refresh p99 of both runs and the longest single prune batch.

// pruneBacklogOpts are the mode's flags.
type pruneBacklogOpts struct {
	postgres string
	tokend   string
	families int
	workers  int
	duration time.Duration
	warmup   time.Duration
	users    int
	keep     bool
}

func cmdPruneBacklog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("prune-backlog", stderr)
	var o pruneBacklogOpts
	fs.StringVar(&o.postgres, "postgres", "", "Postgres URL of a database to connect to for creating (and dropping) the run's database (required)")
	fs.StringVar(&o.tokend, "tokend", "bin/tokend", "tokend binary (make build)")
	fs.IntVar(&o.families, "families", 2_000_000, "expired refresh-token families to seed (each with one token)")
	fs.IntVar(&o.workers, "workers", 64, "refresh-token workers")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	fs.IntVar(&o.users, "users", 8, "load users to seed")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory and the Postgres database")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.postgres == "" {
		return &usageError{"prune-backlog: --postgres is required"}
	}
	if o.families < 1 || o.workers < 1 || o.duration <= 0 || o.users < 1 {
		return &usageError{"prune-backlog: --families, --workers, --duration and --users must be positive"}
	}
	if _, err := os.Stat(o.tokend); err != nil {
		return fmt.Errorf("tokend binary %s: %v (run make build)", o.tokend, err)
	}
	dir, err := os.MkdirTemp("", "tokend-load-prune-")
	if err != nil {
		return err
	}
	s := &suite{o: suiteOpts{tokend: o.tokend, keep: o.keep, duration: o.duration, warmup: o.warmup, timeout: 5 * time.Second},
		log: stderr, dir: dir, master: newMasterKey(), password: "load-password-" + randomHex(4),
		users: userList(defaultUserPattern, o.users), started: time.Now()}
	if s.dbs, err = newDatabases(ctx, dir, o.postgres); err != nil {
		return err
	}
	defer s.cleanup()
	res, err := s.pruneBacklog(ctx, o)
	if err != nil {
		return err
	}
	res.print(stdout)
	return nil
}

// pruneBacklogResult is what the mode reports.
type pruneBacklogResult struct {
	families       int
	seedTook       time.Duration
	quiet, pruning *Result
	pruneOutput    string
	pruneTook      time.Duration
	pruneOutlasted bool // the pass was still running when the measured run ended
	longest        time.Duration
	rows           int
}

var pruneTotalLine = regexp.MustCompile(`(?m)^total\s+(\d+)\s+(\S+)\s*$`)

func (s *suite) pruneBacklog(ctx context.Context, o pruneBacklogOpts) (*pruneBacklogResult, error) {
	if err := s.seed(ctx, "postgres"); err != nil {
		return nil, err
	}
	dbURL, err := s.dbs.create(ctx, "postgres", "prune", "tpl")
	if err != nil {
		return nil, err
	}
	r := &pruneBacklogResult{families: o.families}
	s.progress("seeding %d expired refresh-token families with one token each", o.families)
	t0 := time.Now()
	if err := seedBacklog(ctx, dbURL, o.families); err != nil {
		return nil, err
	}
	r.seedTook = time.Since(t0)
	s.progress("seeded in %s", r.seedTook.Round(time.Second))

	// The server's own schedule is off: the backlog must still be there for
	// the run with pruning, and the only pass is the one measured.
	servers, err := s.start(ctx, deployment{name: "tokend-prune", dbURL: dbURL, alg: "EdDSA",
		extra: []string{"TOKEND_PRUNE_INTERVAL=0"}})
	if err != nil {
		return nil, err
	}
	defer stopAll(servers)
	cfg := s.baseConfig(servers)
	cfg.Scenario, cfg.Workers, cfg.Sessions = scRefreshToken, o.workers, newSessionPool()
	if err := Prepare(ctx, cfg); err != nil {
		return nil, fmt.Errorf("preparing sessions: %w", err)
	}

	s.progress("refresh-token ×%d, no pruning", o.workers)
	if r.quiet, err = Run(ctx, cfg); err != nil {
		return nil, err
	}
	s.progress("p99 %s, %.0f req/s", fmtDur(r.quiet.Lat.P99), r.quiet.RPS())

	s.progress("refresh-token ×%d while tokend prune works the backlog off", o.workers)
	cmd := exec.CommandContext(ctx, s.o.tokend, "prune")
	cmd.Env = s.env(dbURL, "")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	pruneStart := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	run, runErr := Run(ctx, cfg)
	select {
	case err := <-done:
		done <- err // read again below
	default:
		r.pruneOutlasted = true
	}
	if runErr != nil {
		_ = cmd.Process.Kill()
		<-done
		return nil, runErr
	}
	r.pruning = run
	s.progress("p99 %s, %.0f req/s; waiting for the pass to finish", fmtDur(run.Lat.P99), run.RPS())
	if err := <-done; err != nil {
		return nil, fmt.Errorf("tokend prune: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	r.pruneTook = time.Since(pruneStart)
	r.pruneOutput = out.String()
	m := pruneTotalLine.FindStringSubmatch(r.pruneOutput)
	if m == nil {
		return nil, fmt.Errorf("tokend prune printed no total line:\n%s", r.pruneOutput)
	}
	fmt.Sscan(m[1], &r.rows)
	if r.longest, err = time.ParseDuration(m[2]); err != nil {
		return nil, fmt.Errorf("tokend prune's longest batch %q: %v", m[2], err)
	}
	return r, nil
}

// seedBacklog inserts families expired 30 days ago (well past the prune
// grace), each with one expired token, as tokend's schema holds them, and
// analyzes the tables.
func seedBacklog(ctx context.Context, dbURL string, n int) error {
	u, _, err := splitPoolParam(dbURL)
	if err != nil {
		return err
	}
	db, err := sql.Open("postgres", u)
	if err != nil {
		return err
	}
	defer db.Close()
	var user string
	if err := db.QueryRowContext(ctx, `SELECT id FROM users ORDER BY id LIMIT 1`).Scan(&user); err != nil {
		return fmt.Errorf("seed backlog: a user: %w", err)
	}
	expired := time.Now().Add(-30 * 24 * time.Hour).UnixMicro()
	for _, q := range []string{
		`INSERT INTO refresh_families (id, user_id, client_id, created_at, expires_at)
		 SELECT 'backlog-' || i, $1, 'mobile', $2::bigint - 7776000000000 + i, $2::bigint + i FROM generate_series(1, $3::int) AS i`,
		`INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, client_kind, created_at, expires_at)
		 SELECT md5('backlog-' || i), 'backlog-' || i, $1, 'mobile', 'native', $2::bigint - 86400000000 + i, $2::bigint + i
		 FROM generate_series(1, $3::int) AS i`,
	} {
		if _, err := db.ExecContext(ctx, q, user, expired, n); err != nil {
			return fmt.Errorf("seed backlog: %w", err)
		}
	}
	if _, err := db.ExecContext(ctx, `ANALYZE refresh_families, refresh_tokens`); err != nil {
		return fmt.Errorf("seed backlog: %w", err)
	}
	return nil
}

func (r *pruneBacklogResult) print(w io.Writer) {
	ratio := 0.0
	if r.quiet.Lat.P99 > 0 {
		ratio = float64(r.pruning.Lat.P99) / float64(r.quiet.Lat.P99)
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "backlog: %d expired refresh-token families with one token each (seeded in %s)\n", r.families,
		r.seedTook.Round(time.Second))
	fmt.Fprintf(w, "refresh-token, EdDSA, %d workers, %s measured each:\n", r.quiet.Workers, r.quiet.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  no pruning     %7.0f req/s  p50 %s  p99 %s  max %s  errors %d%s\n", r.quiet.RPS(), fmtDur(r.quiet.Lat.P50),
		fmtDur(r.quiet.Lat.P99), fmtDur(r.quiet.Lat.Max), total(r.quiet.Errors), kindList(r.quiet.Errors))
	fmt.Fprintf(w, "  while pruning  %7.0f req/s  p50 %s  p99 %s  max %s  errors %d%s\n", r.pruning.RPS(), fmtDur(r.pruning.Lat.P50),
		fmtDur(r.pruning.Lat.P99), fmtDur(r.pruning.Lat.Max), total(r.pruning.Errors), kindList(r.pruning.Errors))
	fmt.Fprintf(w, "  CPU no pruning: %s; while pruning: %s\n", r.quiet.CPU, r.pruning.CPU)
	fmt.Fprintf(w, "p99 while pruning / p99 without: %.2f× (target ≤ 1.5×: %s)\n", ratio, verdict(ratio <= 1.5))
	fmt.Fprintf(w, "prune pass: %d rows in %s; longest single batch %s (target ≤ 200 ms: %s)\n", r.rows,
		r.pruneTook.Round(time.Second), r.longest, verdict(r.longest <= 200*time.Millisecond))
	if !r.pruneOutlasted {
		fmt.Fprintln(w, "warning: the pass ended before the measured run did; seed a larger backlog")
	}
	fmt.Fprintf(w, "tokend prune printed:\n%s", r.pruneOutput)
}
