package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// scaleOpts are the scale mode's flags.
type scaleOpts struct {
	postgres string
	tokend   string
	sessions int
	days     int
	runs     int
	duration time.Duration
	warmup   time.Duration
	timeout  time.Duration
	users    int
	workers  int
	keep     bool
	// cold is a shell command run before each run on the empty and the
	// seeded database, with tokend stopped (restart Postgres, drop the OS
	// page cache): every run starts with nothing in memory.
	cold string
}

// cmdScale measures refresh on a database that holds many sessions: it
// seeds --sessions families with --days of history through tokend's own
// schema (generate_series in Postgres, families only: one row per session,
// no refresh_tokens rows), then runs refresh-token (EdDSA) on it, on an
// empty database, and the bare UPDATE … RETURNING baseline, and reports
// the rates, the WAL bytes per rotation (pg_stat_wal) and the table and
// index bytes per session (pg_total_relation_size).
func cmdScale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scale", stderr)
	var o scaleOpts
	fs.StringVar(&o.postgres, "postgres", "", "Postgres URL of a database to connect to for creating (and dropping) the databases (required)")
	fs.StringVar(&o.tokend, "tokend", "bin/tokend", "tokend binary (make build)")
	fs.IntVar(&o.sessions, "sessions", 1_000_000, "sessions to seed")
	fs.IntVar(&o.days, "days", 90, "days of history the seeded sessions span")
	fs.IntVar(&o.runs, "runs", 3, "runs of each measurement (the median is reported)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound of each request")
	fs.IntVar(&o.users, "users", 32, "load users to seed (the seeded sessions are spread over them)")
	fs.IntVar(&o.workers, "workers", 64, "workers")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory and the Postgres databases")
	fs.StringVar(&o.cold, "cold-cmd", "", "shell command run before each refresh run, tokend stopped, to empty the caches (e.g. "+
		"'pg_ctlcluster --skip-systemctl-redirect 15 main stop && sync && echo 3 > /proc/sys/vm/drop_caches && "+
		"pg_ctlcluster --skip-systemctl-redirect 15 main start')")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.postgres == "" {
		return &usageError{"scale: --postgres is required"}
	}
	if o.sessions < 0 || o.days < 1 || o.runs < 1 || o.duration <= 0 || o.users < 1 || o.workers < 1 {
		return &usageError{"scale: --sessions must not be negative; --days, --runs, --duration, --users and --workers must be positive"}
	}
	if _, err := os.Stat(o.tokend); err != nil {
		return fmt.Errorf("tokend binary %s: %v (run make build)", o.tokend, err)
	}
	dir, err := os.MkdirTemp("", "tokend-load-scale-")
	if err != nil {
		return err
	}
	s := &suite{o: suiteOpts{postgres: o.postgres, tokend: o.tokend, runs: o.runs, duration: o.duration, warmup: o.warmup,
		timeout: o.timeout, users: o.users, keep: o.keep}, log: stderr, dir: dir, master: newMasterKey(),
		password: "load-password-" + randomHex(4), users: userList(defaultUserPattern, o.users), started: time.Now()}
	dbs, err := newDatabases(ctx, dir, o.postgres)
	if err != nil {
		return err
	}
	s.dbs = dbs
	defer s.cleanup()
	if err := s.seed(ctx, "postgres"); err != nil {
		return err
	}
	var rep scaleReport
	rep.sessions, rep.days = o.sessions, o.days

	// The bare UPDATE … RETURNING on a fresh database, in the same run.
	baseURL, err := s.dbs.create(ctx, "postgres", "scale_baseline", "")
	if err != nil {
		return err
	}
	cfg := s.baseConfig(nil)
	cfg.Scenario, cfg.Workers, cfg.DB = scBaselineDB, o.workers, baseURL
	rep.baseline = s.scaleRuns(ctx, "baseline-db", cfg, nil, nil, nil)
	rep.cold = o.cold != ""

	for _, big := range []bool{false, true} {
		name := "scale_empty"
		if big {
			name = "scale_full"
		}
		dbURL, err := s.dbs.create(ctx, "postgres", name, "tpl")
		if err != nil {
			return err
		}
		db, err := openPostgres(dbURL)
		if err != nil {
			return err
		}
		m := &rep.empty
		if big {
			m = &rep.full
			s.progress("seeding %d sessions with %d days of history", o.sessions, o.days)
			t0 := time.Now()
			if err := seedSessions(ctx, db, o.sessions, o.days); err != nil {
				db.Close()
				return err
			}
			rep.seedTime = time.Since(t0)
			s.progress("seeded in %s", rep.seedTime.Round(time.Second))
		}
		if err := sizes(ctx, db, m); err != nil {
			db.Close()
			return err
		}
		d := deployment{name: "tokend-" + name, dbURL: dbURL, alg: "EdDSA"}
		cfg := s.baseConfig(nil)
		cfg.Scenario, cfg.Workers, cfg.Sessions = scRefreshToken, o.workers, newSessionPool()
		servers, err := s.start(ctx, d)
		if err != nil {
			db.Close()
			return err
		}
		pcfg := cfg
		pcfg.Targets = urls(servers)
		err = Prepare(ctx, pcfg)
		stopAll(servers)
		if err != nil {
			db.Close()
			return fmt.Errorf("preparing sessions: %w", err)
		}
		servers, err = s.start(ctx, d)
		if err != nil {
			db.Close()
			return err
		}
		cfg.Targets, cfg.PIDs = urls(servers), pids(servers)
		*m = scaleMeasure{rows: m.rows, tableBytes: m.tableBytes, tokenRows: m.tokenRows, tokenBytes: m.tokenBytes}
		var before func(*Config) error
		if o.cold != "" {
			before = func(c *Config) error {
				stopAll(servers)
				servers = nil
				if err := coldStart(ctx, o.cold, db, s.log); err != nil {
					return err
				}
				var err error
				if servers, err = s.start(ctx, d); err != nil {
					return err
				}
				c.Targets, c.PIDs = urls(servers), pids(servers)
				return nil
			}
		}
		m.runs = s.scaleRuns(ctx, name, cfg, db, &m.walPerOp, before)
		stopAll(servers)
		time.Sleep(time.Second) // let the servers' statistics reach the cumulative views
		if err := db.QueryRowContext(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
			WHERE relname = 'refresh_families'`).Scan(&m.updates, &m.hotUpdates); err != nil {
			db.Close()
			return err
		}
		db.Close()
	}
	rep.write(stdout)
	return nil
}

// openPostgres opens a tokend Postgres URL with lib/pq.
func openPostgres(dbURL string) (*sql.DB, error) {
	dsn, _, err := splitPoolParam(dbURL)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	return db, nil
}

// seedSessions writes n families into tokend's schema in one statement:
// created over the last `days` days, each alive for 90 days from its
// creation (so the oldest are near their end), spread over the seeded
// users and both clients; each rotated about once an hour of its life so
// far (generation), its last rotation at a random time since its creation;
// one in twenty revoked. Families only: nothing goes to refresh_tokens.
func seedSessions(ctx context.Context, db *sql.DB, n, days int) error {
	const hour = int64(3600e6)
	q := `WITH u AS (SELECT array_agg(id ORDER BY id) AS ids FROM users),
		now_us AS (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1e6)::bigint AS t),
		s AS (
			SELECT i, now_us.t AS now, now_us.t - (random() * $2 * 86400e6)::bigint AS created, random() AS r
			FROM generate_series(1, $1) AS i, now_us)
		INSERT INTO refresh_families (id, user_id, client_id, scope, user_agent, address, created_at, expires_at,
			revoked_at, revoke_reason, client_kind, generation, rotated_at, idle_expires_at, rate_window_start, rate_count)
		SELECT gen_random_uuid()::text, u.ids[1 + i % cardinality(u.ids)],
			CASE WHEN i % 2 = 0 THEN 'mobile' ELSE 'web' END, 'openid profile email',
			'Mozilla/5.0 (seeded session)', '192.0.2.' || (i % 250)::text,
			created, created + 90 * 24 * $3::bigint,
			CASE WHEN i % 20 = 0 THEN created + ((now - created) * r)::bigint END,
			CASE WHEN i % 20 = 0 THEN 'revoked by the user' ELSE '' END,
			CASE WHEN i % 2 = 0 THEN 'native' ELSE 'web' END,
			1 + (now - created) / $3::bigint,
			created + ((now - created) * r)::bigint,
			LEAST(created + ((now - created) * r)::bigint + 30 * 24 * $3::bigint, created + 90 * 24 * $3::bigint),
			created + ((now - created) * r)::bigint, 1
		FROM s, u`
	if _, err := db.ExecContext(ctx, q, n, days, hour); err != nil {
		return fmt.Errorf("seed sessions: %w", err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE refresh_families"); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	// Write the seed's dirty pages out now, so that the measured runs do
	// not pay for them (CHECKPOINT needs a superuser or pg_checkpoint; the
	// runs go on without it).
	_, _ = db.ExecContext(ctx, "CHECKPOINT")
	return nil
}

// scaleMeasure is one database's figures.
type scaleMeasure struct {
	rows, tokenRows        int64
	tableBytes, tokenBytes int64
	runs                   []*Result
	walPerOp               []float64
	// updates and hotUpdates count the family rows updated, and those
	// updated heap-only (HOT), since the database was created.
	updates, hotUpdates int64
}

// sizes reads the tables' rows and bytes (heap, indexes, TOAST).
func sizes(ctx context.Context, db *sql.DB, m *scaleMeasure) error {
	return db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM refresh_families), pg_total_relation_size('refresh_families'),
		(SELECT COUNT(*) FROM refresh_tokens), pg_total_relation_size('refresh_tokens')`).
		Scan(&m.rows, &m.tableBytes, &m.tokenRows, &m.tokenBytes)
}

// walBytes is the cluster's WAL written so far (pg_stat_wal, Postgres 14+):
// every database's, so other work on the cluster during a run counts too.
func walBytes(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT wal_bytes::bigint FROM pg_stat_wal`).Scan(&n)
	return n, err
}

// scaleRuns runs cfg o.runs times; with db, it also records the WAL bytes
// per successful request of each run.
func (s *suite) scaleRuns(ctx context.Context, name string, cfg Config, db *sql.DB, wal *[]float64, before func(*Config) error) []*Result {
	var out []*Result
	for i := range s.o.runs {
		if before != nil {
			if err := before(&cfg); err != nil {
				s.progress("[%s] run %d: cold start failed: %v", name, i+1, err)
				continue
			}
		}
		var w0 int64
		if db != nil {
			w0, _ = walBytes(ctx, db)
		}
		res, err := Run(ctx, cfg)
		if err != nil {
			s.progress("[%s] run %d failed: %v", name, i+1, err)
			continue
		}
		if db != nil && res.OK > 0 {
			if w1, err := walBytes(ctx, db); err == nil {
				*wal = append(*wal, float64(w1-w0)/float64(res.OK))
			}
		}
		out = append(out, res)
		s.progress("[%s] run %d/%d: %.0f req/s, p99 %s, %d errors%s", name, i+1, s.o.runs, res.RPS(), fmtDur(res.Lat.P99),
			total(res.Errors), kindList(res.Errors))
	}
	return out
}

// scaleReport is what the scale mode prints.
type scaleReport struct {
	sessions, days int
	seedTime       time.Duration
	baseline       []*Result
	empty, full    scaleMeasure
	cold           bool // each refresh run began with Postgres restarted and the OS cache dropped
}

func medianRPS(rs []*Result) float64 {
	xs := make([]float64, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, r.RPS())
	}
	m, _ := median(xs)
	return m
}

func medianP99(rs []*Result) time.Duration {
	xs := make([]float64, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, float64(r.Lat.P99))
	}
	m, _ := median(xs)
	return time.Duration(m)
}

func (r scaleReport) write(w io.Writer) {
	base := medianRPS(r.baseline)
	emptyRPS := medianRPS(r.empty.runs)
	fmt.Fprintf(w, "Seeded %d sessions (%d days of history, families only, 0 refresh_tokens rows) in %s.\n\n",
		r.sessions, r.days, r.seedTime.Round(time.Second))
	if r.cold {
		fmt.Fprintf(w, "Cold cache: every refresh run (empty and seeded) began with tokend stopped and --cold-cmd run.\n\n")
	}
	fmt.Fprintln(w, "| database | sessions | refresh req/s (EdDSA) | × bare UPDATE | × empty | p99 | WAL B/rotation | HOT updates | table+index B/session |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, row := range []struct {
		name string
		m    scaleMeasure
	}{{"empty", r.empty}, {"seeded", r.full}} {
		rps := medianRPS(row.m.runs)
		wal, _ := median(row.m.walPerOp)
		per := "—"
		if row.m.rows > 0 {
			per = fmt.Sprintf("%.0f", float64(row.m.tableBytes+row.m.tokenBytes)/float64(row.m.rows))
		}
		ratio := func(a, b float64) string {
			if b == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f×", a/b)
		}
		hot := "—"
		if row.m.updates > 0 {
			hot = fmt.Sprintf("%.1f%%", 100*float64(row.m.hotUpdates)/float64(row.m.updates))
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %s | %s | %.0f | %s | %s |\n", row.name, row.m.rows, rps, ratio(rps, base),
			ratio(rps, emptyRPS), fmtDur(medianP99(row.m.runs)), wal, hot, per)
	}
	fmt.Fprintf(w, "\nbare UPDATE … RETURNING (same run): %.0f/s. Table sizes before the runs: refresh_families %s, "+
		"refresh_tokens %s (seeded database). WAL bytes are pg_stat_wal's (the whole cluster) over each run divided by its rotations.\n",
		base, fmtBytes(r.full.tableBytes), fmtBytes(r.full.tokenBytes))
}

// coldStart runs the cold command, then waits (generously) until Postgres
// answers db again.
func coldStart(ctx context.Context, cmd string, db *sql.DB, log io.Writer) error {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stdout, c.Stderr = log, log
	if err := c.Run(); err != nil {
		return fmt.Errorf("cold command: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := walBytes(ctx, db)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not come back: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
