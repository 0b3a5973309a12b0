package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// suiteOpts are the suite's flags.
type suiteOpts struct {
	quick      bool
	postgres   string
	tokend     string
	runs       int
	duration   time.Duration
	warmup     time.Duration
	timeout    time.Duration
	users      int
	backends   []string
	algs       []string
	only       []string
	instances  []int
	multiAlg   string
	reuseShare float64
	keep       bool
}

// suite is one run of the whole load suite.
type suite struct {
	o        suiteOpts
	log      io.Writer
	dir      string
	dbs      *databases
	master   string
	password string
	users    []string
	mu       sync.Mutex
	children []*child
	rows     []*row
	jwksSize int
	argon2   time.Duration
	rsaSign  time.Duration
	edToken  time.Duration // one EdDSA access token, signing alone
	// secrets are the seeded server clients' secrets, per store.
	secrets map[string]map[string]string
	started time.Time
	seq     int
	// calibrations are the passes of calibrate; argon2, rsaSign and
	// edToken keep the fastest of them.
	calibrations []calibration
}

// row is one line of the report: a scenario on one configuration, run
// o.runs times.
type row struct {
	Backend  string
	Alg      string
	Scenario string
	Workers  int
	// Baseline names what the ratio column compares with: "http", "db",
	// "argon2", "sign" (EdDSA signing alone on the cores left over) or ""
	// (none).
	Baseline string
	Runs     []*Result
	Failures []string
	Notes    []string // about the row as a whole
	// Multi is the number of tokend instances (0 or 1: one).
	Multi int
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("suite", stderr)
	var o suiteOpts
	fs.BoolVar(&o.quick, "quick", false, "smoke test: one 3 s run of each scenario, SQLite and EdDSA only")
	fs.StringVar(&o.postgres, "postgres", "", "Postgres URL of a database to connect to for creating (and dropping) the suite's databases; empty skips Postgres")
	fs.StringVar(&o.tokend, "tokend", "bin/tokend", "tokend binary (make build)")
	fs.IntVar(&o.runs, "runs", 3, "runs of each scenario (the median is reported)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound of each request")
	fs.IntVar(&o.users, "users", 32, "load users to seed")
	backends := fs.String("backends", "sqlite,postgres", "stores to run on")
	algs := fs.String("algs", "RS256,EdDSA", "signing algorithms to run with")
	only := fs.String("only", "", "run only these scenarios (comma-separated; also baseline-http, baseline-db, baseline-sign, multi, secret-rotation)")
	instances := fs.String("instances", "2,3", "many-instance runs on Postgres: instance counts")
	fs.StringVar(&o.multiAlg, "multi-alg", "RS256", "signing algorithm of the many-instance runs")
	fs.Float64Var(&o.reuseShare, "reuse-share", 0.1, "share of reuse workers that replay old tokens")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (SQLite files, server logs) and the Postgres databases")
	if err := parse(fs, args); err != nil {
		return err
	}
	o.backends, o.algs, o.only = splitList(*backends), splitList(*algs), splitList(*only)
	for _, n := range splitList(*instances) {
		v, err := strconv.Atoi(n)
		if err != nil || v < 2 {
			return &usageError{fmt.Sprintf("suite: --instances %q: counts of at least 2", n)}
		}
		o.instances = append(o.instances, v)
	}
	if o.quick {
		o.runs, o.duration, o.warmup = 1, 3*time.Second, 500*time.Millisecond
		o.backends, o.algs, o.instances = []string{"sqlite"}, []string{"EdDSA"}, nil
	}
	if o.postgres == "" {
		o.backends = slices.DeleteFunc(o.backends, func(b string) bool { return b == "postgres" })
		o.instances = nil
	}
	for _, b := range o.backends {
		if b != "sqlite" && b != "postgres" {
			return &usageError{fmt.Sprintf("suite: unknown backend %q", b)}
		}
	}
	for _, a := range append(slices.Clone(o.algs), o.multiAlg) {
		if a != "RS256" && a != "EdDSA" {
			return &usageError{fmt.Sprintf("suite: unknown algorithm %q", a)}
		}
	}
	if o.runs < 1 || o.duration <= 0 || o.users < 1 {
		return &usageError{"suite: --runs, --duration and --users must be positive"}
	}
	if _, err := os.Stat(o.tokend); err != nil {
		return fmt.Errorf("tokend binary %s: %v (run make build)", o.tokend, err)
	}
	dir, err := os.MkdirTemp("", "tokend-load-")
	if err != nil {
		return err
	}
	s := &suite{o: o, log: stderr, dir: dir, master: newMasterKey(), password: "load-password-" + randomHex(4),
		users: userList(defaultUserPattern, o.users), started: time.Now(), secrets: map[string]map[string]string{}}
	dbs, err := newDatabases(ctx, dir, o.postgres)
	if err != nil {
		return err
	}
	s.dbs = dbs
	defer s.cleanup()
	m := describeMachine(ctx, dbs.admin, o.tokend)
	if err := s.runAll(ctx); err != nil {
		return err
	}
	s.report(stdout, m, os.Args)
	return nil
}

// cleanup stops every child and removes the databases and files (unless
// --keep).
func (s *suite) cleanup() {
	s.mu.Lock()
	children := slices.Clone(s.children)
	s.mu.Unlock()
	for _, c := range children {
		c.stop()
	}
	if s.o.keep {
		s.progress("kept %s and the Postgres databases %s_*", s.dir, s.dbs.prefix)
		if s.dbs.admin != nil {
			s.dbs.admin.Close()
		}
		return
	}
	s.dbs.dropAll()
	os.RemoveAll(s.dir)
}

func (s *suite) progress(format string, args ...any) {
	fmt.Fprintf(s.log, "%s  %s\n", time.Since(s.started).Round(time.Second), fmt.Sprintf(format, args...))
}

func (s *suite) wants(scenario string) bool {
	return len(s.o.only) == 0 || slices.Contains(s.o.only, scenario)
}

// runAll runs everything in order: calibrations, then per store the
// baseline round trip and every algorithm's scenarios, the many-instance
// runs, and the HTTP baseline last (when the JWKS size is known).
func (s *suite) runAll(ctx context.Context) error {
	if err := s.calibrate(); err != nil {
		return err
	}
	for _, backend := range s.o.backends {
		if err := s.seed(ctx, backend); err != nil {
			return err
		}
		if s.wants(scBaselineDB) {
			if err := s.baselineDB(ctx, backend); err != nil {
				return err
			}
		}
		for _, alg := range s.o.algs {
			if err := s.group(ctx, backend, alg); err != nil {
				return err
			}
		}
	}
	if slices.Contains(s.o.backends, "postgres") && s.wants("multi") {
		for _, n := range s.o.instances {
			if err := s.multi(ctx, n, s.o.multiAlg); err != nil {
				return err
			}
		}
	}
	if slices.Contains(s.o.backends, "postgres") && s.wants(scSecretRotation) {
		if err := s.secretRotation(ctx, s.o.algs[0]); err != nil {
			return err
		}
	}
	if s.wants(scBaselineHTTP) {
		if err := s.baselineHTTP(ctx); err != nil {
			return err
		}
	}
	if s.wants(scBaselineSign) || s.wants(scClientCredentials) {
		if err := s.baselineSign(ctx); err != nil {
			return err
		}
	}
	return s.calibrate()
}

// calibrate times one argon2id hash and one RSA-2048 signature on one
// goroutine. The suite calibrates before and after the scenarios and keeps
// the faster figure of each: the one least slowed by other work on the
// machine, which makes the targets derived from it the strictest.
func (s *suite) calibrate() error {
	s.progress("calibrating: argon2id, RSA-2048 signing and EdDSA access tokens on one goroutine")
	c0 := takeCPU(nil)
	argon := measureArgon2(5)
	sign, err := measureRSASign(5, 200)
	if err != nil {
		return err
	}
	ed := measureEdDSAToken(5, 2000)
	cpu := cpuBetween(c0, takeCPU(nil))
	s.progress("argon2id %s per hash, RSA-2048 signature %s, EdDSA access token %s", argon.Round(time.Microsecond*100),
		sign.Round(time.Microsecond), ed.Round(100*time.Nanosecond))
	s.calibrations = append(s.calibrations, calibration{argon, sign, ed, cpu})
	if s.edToken == 0 || ed < s.edToken {
		s.edToken = ed
	}
	if s.argon2 == 0 || argon < s.argon2 {
		s.argon2 = argon
	}
	if s.rsaSign == 0 || sign < s.rsaSign {
		s.rsaSign = sign
	}
	return nil
}

// calibration is one pass of calibrate.
type calibration struct {
	argon2, rsaSign, edToken time.Duration
	cpu                      CPU
}

// plan is one scenario of a group.
type plan struct {
	scenario string
	label    string
	workers  int
	runs     int // 0: --runs
	healthz  bool
	baseline string
	notes    []string      // about the row as a whole
	duration time.Duration // 0: --duration
	set      func(*Config) // more configuration
}

// codeExchangeNote says what a code-exchange row counts.
const codeExchangeNote = "each step exchanges (POST /oauth/token, PKCE S256) a code the worker obtained before the run " +
	"(GET /oauth/authorize with its sign-in cookie, 302); a worker whose stock ran out obtains the next code inline, " +
	"recorded as the authorize hop and counted in the whole step; p50–max are the exchange's alone; the sign-ins and " +
	"the stock are made before the run, on another process"

func (s *suite) mainPlans(backend string) []plan {
	login := 2 * numCPU()
	stall := "refresh-token, stall test"
	if backend == "postgres" {
		stall += " (pool 20)"
	}
	return []plan{
		{scenario: scJWKS, workers: 64, baseline: "http"},
		{scenario: scLoginWeb, workers: login, baseline: "argon2"},
		{scenario: scLoginNative, workers: login, baseline: "argon2"},
		{scenario: scRefreshCookie, workers: 64, baseline: "db"},
		{scenario: scRefreshToken, workers: 64, baseline: "db"},
		{scenario: scCodeExchange, workers: 64, baseline: "db", notes: []string{codeExchangeNote}},
		{scenario: scRefreshToken, label: stall, workers: 256, healthz: true, baseline: "db"},
		{scenario: scMixed, workers: 64},
		// Overload: hundreds of logins at once against the bounded hasher.
		// One run: it is there for the peak RSS and the 429s.
		{scenario: scLoginWeb, label: "login-web, overload", workers: 500, runs: 1, baseline: "argon2"},
		{scenario: scClientCredentials, workers: 64, baseline: "sign", notes: []string{clientCredentialsNote}},
		{scenario: scClientCredentials, label: "client-credentials, stall test", workers: 256, healthz: true,
			baseline: "sign"},
		{scenario: scIntrospect, workers: 64, baseline: "db", notes: []string{introspectNote},
			set: func(c *Config) { c.NativeClient = loadAPIUserClient }},
		// 100 logins on the measured process, then refresh load alone: the
		// server's RSS once the hashing is over.
		{scenario: scLoginThenRefresh, workers: 64, baseline: "db", duration: 30 * time.Second},
		// The same under a light load (about 80 refreshes/s): the garbage
		// collector then runs seldom, so the hashes' memory stays resident
		// unless tokend returns it itself.
		{scenario: scLoginThenRefresh, label: "login-then-refresh, light (each worker pauses 100 ms)", workers: 8,
			duration: 30 * time.Second, set: func(c *Config) { c.Pace = 100 * time.Millisecond }},
	}
}

const (
	clientCredentialsNote = "POST /oauth/token grant_type=client_credentials with client_secret_basic (server client, " +
		"secret made by tokend clients create); ratio: to EdDSA signing alone (the calibrated cost of building and " +
		"signing the same access-token claims with Ed25519 on one goroutine) on the cores left over in the median run"
	introspectNote = "POST /oauth/introspect with client_secret_basic as a resource server's client (no grant, " +
		"--audience of the API) for a user's access token with that audience: signature, then the session's state " +
		"read from the store; every answer must be active"
)

// scSecretRotation is the secret-rotation run's name for --only.
const scSecretRotation = "secret-rotation"

// clientSetup gives a run the seeded server clients of its store.
func (s *suite) clientSetup(cfg *Config, backend string) {
	cfg.ClientID, cfg.ClientSecret = loadServerClient, newSecretRef(s.secrets[backend][loadServerClient])
	cfg.ResourceID, cfg.ResourceSecret = loadResourceClient, s.secrets[backend][loadResourceClient]
}

// baseConfig is a run's configuration against targets.
func (s *suite) baseConfig(targets []*child) Config {
	cfg := Config{Duration: s.o.duration, Warmup: s.o.warmup, Timeout: s.o.timeout, Users: s.users,
		Password: s.password, ReuseShare: s.o.reuseShare, ReuseAge: 2 * time.Second}
	for _, t := range targets {
		cfg.Targets = append(cfg.Targets, t.url)
		cfg.PIDs = append(cfg.PIDs, t.pid())
	}
	return cfg
}

// runRow runs one row's runs; a failed run is recorded, not fatal.
func (s *suite) runRow(ctx context.Context, r *row, cfg Config, runs int, servers []*child, before func(context.Context, Config) error) {
	s.rows = append(s.rows, r)
	for i := range runs {
		if ctx.Err() != nil {
			return
		}
		for _, c := range servers {
			if !c.alive() {
				r.Failures = append(r.Failures, fmt.Sprintf("%s exited: %s", c.name, tail(c.log)))
				return
			}
		}
		if before != nil {
			if err := before(ctx, cfg); err != nil {
				r.Failures = append(r.Failures, err.Error())
				continue
			}
		}
		res, err := Run(ctx, cfg)
		if err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("run %d: %v", i+1, err))
			s.progress("[%s %s] %s ×%d run %d/%d failed: %v", r.Backend, r.Alg, r.Scenario, r.Workers, i+1, runs, err)
			continue
		}
		r.Runs = append(r.Runs, res)
		s.progress("[%s %s] %s ×%d run %d/%d: %.0f req/s, p99 %s, %d errors%s; %s", r.Backend, r.Alg, r.Scenario,
			r.Workers, i+1, runs, res.RPS(), fmtDur(res.Lat.P99), total(res.Errors), kindList(res.Errors), res.CPU)
	}
}

// group runs the main scenarios on one store with one algorithm, over a
// fresh copy of the template database; the reuse scenario runs on tokend
// processes with a 1 s grace window (replays are 2 s old).
func (s *suite) group(ctx context.Context, backend, alg string) error {
	name := fmt.Sprintf("%s_%s", backend, strings.ToLower(alg))
	dbURL, err := s.dbs.create(ctx, backend, name, "tpl")
	if err != nil {
		return err
	}
	d := deployment{name: "tokend-" + name, dbURL: dbURL, alg: alg}
	sessions := newSessionPool()
	for _, p := range s.mainPlans(backend) {
		if !s.wants(p.scenario) {
			continue
		}
		cfg := s.baseConfig(nil)
		cfg.Scenario, cfg.Workers, cfg.Healthz, cfg.Sessions = p.scenario, p.workers, p.healthz, sessions
		s.clientSetup(&cfg, backend)
		if p.duration > 0 && !s.o.quick {
			cfg.Duration = p.duration
		}
		if p.set != nil {
			p.set(&cfg)
		}
		label := p.label
		if label == "" {
			label = p.scenario
		}
		runs := p.runs
		if runs == 0 || s.o.quick {
			runs = s.o.runs
		}
		r := &row{Backend: backend, Alg: alg, Scenario: label, Workers: p.workers, Baseline: p.baseline, Notes: p.notes}
		if err := s.runDeployed(ctx, r, cfg, runs, d, nil); err != nil {
			return err
		}
	}
	if !s.wants(scReuse) {
		return nil
	}
	d.name += "-reuse"
	d.extra = []string{"TOKEND_REFRESH_REUSE_GRACE=1s"}
	cfg := s.baseConfig(nil)
	cfg.Scenario, cfg.Workers, cfg.Sessions = scReuse, 64, newSessionPool()
	r := &row{Backend: backend, Alg: alg, Scenario: fmt.Sprintf("reuse (%.0f%% replay, grace 1s)", s.o.reuseShare*100),
		Workers: 64, Baseline: "db"}
	return s.runDeployed(ctx, r, cfg, s.o.runs, d, nil)
}

// baselineDB runs the bare database round trip on a fresh database of
// the store.
func (s *suite) baselineDB(ctx context.Context, backend string) error {
	dbURL, err := s.dbs.create(ctx, backend, "baseline", "")
	if err != nil {
		return err
	}
	cfg := s.baseConfig(nil)
	cfg.Scenario, cfg.Workers, cfg.DB = scBaselineDB, 64, dbURL
	s.runRow(ctx, &row{Backend: backend, Alg: "—", Scenario: scBaselineDB, Workers: 64, Baseline: "db"}, cfg, s.o.runs, nil, nil)
	return ctx.Err()
}

// startBaseline starts this program's serve-baseline mode with args as a
// tracked child process named name, on a free loopback port.
func (s *suite) startBaseline(ctx context.Context, name string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args = append([]string{"serve-baseline", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	c, err := startChild(ctx, name, self, args, baseEnv(), port, s.dir+"/"+name+".log", "/")
	if err != nil {
		return nil, err
	}
	s.track(c)
	return c, nil
}

// scBaselineSign is the serve-and-sign floor's row (and its name for
// --only): the client-credentials loop against serve-baseline --sign.
const scBaselineSign = "baseline-sign"

// baselineSign runs the client-credentials loop against the bare net/http
// server that only signs (serve-baseline --sign, a child process): what any
// HTTP token endpoint that signs an EdDSA token per request can reach here.
func (s *suite) baselineSign(ctx context.Context) error {
	c, err := s.startBaseline(ctx, "serve-baseline-sign", "--sign")
	if err != nil {
		return err
	}
	defer c.stop()
	cfg := s.baseConfig([]*child{c})
	cfg.Scenario, cfg.Workers = scClientCredentials, 64
	cfg.ClientID, cfg.ClientSecret = loadServerClient, newSecretRef("not-checked")
	s.runRow(ctx, &row{Backend: "—", Alg: "EdDSA", Scenario: scBaselineSign, Workers: 64, Baseline: "sign",
		Notes: []string{baselineSignNote}}, cfg, s.o.runs, []*child{c}, nil)
	return ctx.Err()
}

const baselineSignNote = "client-credentials requests against serve-baseline --sign: net/http parsing the form and " +
	"Basic credentials (not checked) and answering a freshly signed EdDSA access token with the same claims, nothing " +
	"else; the floor of any HTTP token endpoint here"

// baselineHTTP runs the JWKS loop against the bare net/http server
// (this program's serve-baseline mode, as a child process).
func (s *suite) baselineHTTP(ctx context.Context) error {
	size := s.jwksSize
	if size == 0 {
		size = 1230
	}
	c, err := s.startBaseline(ctx, "serve-baseline", "--size", strconv.Itoa(size))
	if err != nil {
		return err
	}
	defer c.stop()
	cfg := s.baseConfig([]*child{c})
	cfg.Scenario, cfg.Workers = scBaselineHTTP, 64
	s.runRow(ctx, &row{Backend: "—", Alg: "—", Scenario: fmt.Sprintf("baseline-http (%d B body)", size), Workers: 64,
		Baseline: "http"}, cfg, s.o.runs, []*child{c}, nil)
	return ctx.Err()
}
