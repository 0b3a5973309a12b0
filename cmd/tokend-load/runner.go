package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one scenario run.
type Config struct {
	// Targets are base URLs of tokend instances (or of the baseline
	// server); workers are pinned to them round-robin.
	Targets  []string
	Scenario string
	Workers  int
	Duration time.Duration // measured time
	Warmup   time.Duration // unmeasured time before it
	Timeout  time.Duration // bound of each request
	// PIDs are the server processes whose peak RSS and CPU are reported.
	PIDs []int
	// Users are the emails of accounts with Password; login workers cycle
	// over them.
	Users                   []string
	Password                string
	WebClient, NativeClient string
	// Issuer and Audience are what access tokens must carry; empty means
	// the issuer from the discovery document and the audience equal to it.
	Issuer, Audience string
	// Verify checks every issued access token offline (mixed always does;
	// code-exchange checks a sample of its access and ID tokens without it,
	// every one with it).
	// With several targets, each token's key must be in every target's JWKS.
	Verify bool
	// ReuseShare is the share of reuse workers that replay old tokens;
	// ReuseAge is how old (since their rotation) replayed tokens are.
	ReuseShare float64
	ReuseAge   time.Duration
	// DB and DBPool are baseline-db's database (sqlite:PATH or
	// postgres://…) and pool size (0: 20 on Postgres, 1 writer on SQLite).
	DB     string
	DBPool int
	// SetupConcurrency bounds the logins that prepare refresh chains and
	// sign-in sessions.
	SetupConcurrency int
	// Healthz probes GET /healthz (1 s bound) every 500 ms during the run
	// and once after it.
	Healthz bool
	// Midway, when set, runs halfway through the measured time; the
	// string it returns is added to the result's notes.
	Midway func(ctx context.Context, v *verifier) string
	// ClientID and ClientSecret are the server client of client-credentials;
	// the secret may change during a run (secret-rotation).
	ClientID     string
	ClientSecret *secretRef
	// ResourceID and ResourceSecret are the resource server's client that
	// introspect authenticates as; NativeClient's access tokens must name
	// its audience.
	ResourceID, ResourceSecret string
	// Burst is how many logins login-then-refresh makes on the measured
	// process before the refresh load (default 100), BurstConcurrency how
	// many at once (default 16).
	Burst, BurstConcurrency int
	// Pace, when set, makes each worker wait that long after each step: an
	// open-ended light load instead of as fast as the server answers.
	Pace time.Duration
	// Sessions carries refresh chains between runs on the same servers.
	Sessions *sessionPool
	// Now is the clock access tokens are checked against (time.Now).
	Now func() time.Time
	// Client overrides the HTTP client (tests).
	Client *http.Client
}

func (c *Config) defaults() error {
	if c.Workers < 1 {
		return errors.New("workers must be at least 1")
	}
	if c.Duration <= 0 {
		return errors.New("duration must be positive")
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.WebClient == "" {
		c.WebClient = "web"
	}
	if c.NativeClient == "" {
		c.NativeClient = "mobile"
	}
	if c.ReuseAge <= 0 {
		c.ReuseAge = 2 * time.Second
	}
	if c.SetupConcurrency < 1 {
		c.SetupConcurrency = 4
	}
	if c.Sessions == nil {
		c.Sessions = newSessionPool()
	}
	if !slices.Contains(scenarios, c.Scenario) {
		return fmt.Errorf("unknown scenario %q (one of %s)", c.Scenario, strings.Join(scenarios, ", "))
	}
	if c.Scenario == scBaselineDB {
		if c.DB == "" {
			return errors.New("baseline-db needs --db")
		}
		return nil
	}
	if len(c.Targets) == 0 {
		return errors.New("no target")
	}
	switch c.Scenario {
	case scLoginWeb, scLoginNative, scRefreshCookie, scRefreshToken, scMixed, scReuse, scCodeExchange, scLoginThenRefresh:
		if len(c.Users) == 0 || c.Password == "" {
			return fmt.Errorf("%s needs users and their password", c.Scenario)
		}
	case scClientCredentials:
		if c.ClientID == "" || c.ClientSecret.get() == "" {
			return errors.New("client-credentials needs a server client and its secret")
		}
	case scIntrospect:
		if len(c.Users) == 0 || c.Password == "" || c.ResourceID == "" || c.ResourceSecret == "" {
			return errors.New("introspect needs users, their password, and the resource server's client and secret")
		}
	}
	if c.Burst <= 0 {
		c.Burst = 100
	}
	if c.BurstConcurrency <= 0 {
		c.BurstConcurrency = 16
	}
	return nil
}

// Result is the outcome of one run.
type Result struct {
	Scenario string
	Workers  int
	Elapsed  time.Duration // the measured time, as it really was
	OK       int64
	Lat      Latency
	Errors   map[string]int64
	Notes    map[string]int64
	// Hops are the latencies of the requests steps make besides the
	// measured one (not in OK, Lat or the rate), by name.
	Hops    map[string]Latency
	PeakRSS []int64 // bytes, per PID
	CPU     CPU
	Extra   []string
	// Probed says /healthz was watched; HealthDuring and HealthAfter are
	// its slowest answers during and right after the measured time.
	Probed                    bool
	HealthDuring, HealthAfter time.Duration
}

// RPS is the successful requests per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Phases of a run; workers read the phase before each step.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// Run performs one scenario run: setup, warm-up, measurement.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	hc := cfg.Client
	if hc == nil {
		hc = newHTTPClient(cfg.Workers, cfg.Timeout)
		defer hc.CloseIdleConnections()
	}
	r := &run{cfg: cfg, pool: cfg.Sessions}
	for _, t := range cfg.Targets {
		r.eps = append(r.eps, newEndpoints(t))
	}
	if cfg.Verify || cfg.Scenario == scMixed || cfg.Scenario == scCodeExchange {
		v, err := newRunVerifier(ctx, hc, cfg)
		if err != nil {
			return nil, err
		}
		r.verifier = v
	}
	if cfg.Scenario == scBaselineDB {
		db, err := openBaselineDB(ctx, cfg.DB, cfg.DBPool, cfg.Workers)
		if err != nil {
			return nil, err
		}
		defer db.close()
		r.baseDB = db
	}
	var extra []string
	var trace *burstTrace
	if cfg.Scenario == scLoginThenRefresh {
		// The burst's refresh tokens are the workers' chains: a pool of
		// this run's own.
		r.pool = newSessionPool()
		var err error
		if trace, err = r.burst(ctx, hc); err != nil {
			return nil, err
		}
	}
	workers, recs := r.newWorkers(hc)
	if err := setupAll(ctx, workers, cfg.SetupConcurrency); err != nil {
		for _, w := range workers {
			w.done()
		}
		return nil, err
	}

	var phase atomic.Int32
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := recs[i]
			for {
				ph := phase.Load()
				if ph == phaseStop || ctx.Err() != nil {
					return
				}
				rec.measuring = ph == phaseMeasure
				w.step(ctx)
				if cfg.Pace > 0 {
					pause(ctx, cfg.Pace)
				}
			}
		}()
	}
	pause(ctx, cfg.Warmup)

	sampler := startRSSSampler(cfg.PIDs)
	cpu0 := takeCPU(cfg.PIDs)
	t0 := time.Now()
	phase.Store(phaseMeasure)

	var extraMu sync.Mutex
	var side sync.WaitGroup
	sideCtx, stopSide := context.WithCancel(ctx)
	if cfg.Midway != nil {
		side.Add(1)
		go func() {
			defer side.Done()
			pause(sideCtx, cfg.Duration/2)
			if sideCtx.Err() != nil {
				return
			}
			// The hook gets the run's context, not the measurement's: it
			// may finish after the measured time (the run waits for it).
			if note := cfg.Midway(ctx, r.verifier); note != "" {
				extraMu.Lock()
				extra = append(extra, note)
				extraMu.Unlock()
			}
		}()
	}
	probe := &healthProbe{ok: true}
	if cfg.Healthz {
		side.Add(1)
		go func() {
			defer side.Done()
			probe.loop(sideCtx, r.eps)
		}()
	}

	pause(ctx, cfg.Duration)
	phase.Store(phaseStop)
	elapsed := time.Since(t0)
	cpu1 := takeCPU(cfg.PIDs)
	stopSide()
	wg.Wait()
	side.Wait()
	peaks := sampler.finish()
	if trace != nil {
		extra = append(extra, trace.describe(sampler, t0))
	}
	for _, w := range workers {
		w.done()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := &Result{Scenario: cfg.Scenario, Workers: cfg.Workers, Elapsed: elapsed, Errors: map[string]int64{},
		Notes: map[string]int64{}, PeakRSS: peaks, CPU: cpuBetween(cpu0, cpu1), Extra: extra}
	n := 0
	for _, rec := range recs {
		n += len(rec.lat)
	}
	all := make([]time.Duration, 0, n)
	for _, rec := range recs {
		res.OK += rec.ok
		all = append(all, rec.lat...)
		merge(res.Errors, rec.errs)
		merge(res.Notes, rec.notes)
	}
	res.Lat = summarize(all)
	hops := map[string][]time.Duration{}
	for _, rec := range recs {
		for name, lat := range rec.hops {
			hops[name] = append(hops[name], lat...)
		}
	}
	if len(hops) > 0 {
		res.Hops = map[string]Latency{}
		for name, lat := range hops {
			res.Hops[name] = summarize(lat)
		}
	}
	if cfg.Healthz {
		probe.once(ctx, r.eps, true)
		res.Probed, res.HealthDuring, res.HealthAfter = true, probe.maxDuring, probe.after
		if !probe.ok {
			res.Errors["healthz not answered within 1s"] += probe.failures
		}
	}
	if r.verifier != nil {
		res.Notes["tokens verified"] += r.verifier.verified.Load()
		if n := r.verifier.idVerified.Load(); n > 0 {
			res.Notes["ID tokens verified"] += n
		}
	}
	return res, nil
}

// newWorkers builds the run's workers and their tallies.
func (r *run) newWorkers(hc *http.Client) ([]worker, []*recorder) {
	cfg := r.cfg
	workers := make([]worker, cfg.Workers)
	recs := make([]*recorder, cfg.Workers)
	replayers := int(math.Round(cfg.ReuseShare * float64(cfg.Workers)))
	if cfg.Scenario == scReuse && cfg.ReuseShare > 0 && replayers == 0 {
		replayers = 1
	}
	for i := range workers {
		b := r.newBase(i, hc)
		recs[i] = b.rec
		switch cfg.Scenario {
		case scJWKS, scBaselineHTTP:
			workers[i] = &jwksWorker{base: b}
		case scLoginWeb, scLoginNative:
			workers[i] = &loginWorker{base: b, web: cfg.Scenario == scLoginWeb}
		case scRefreshCookie, scRefreshToken:
			workers[i] = &chainWorker{base: b, web: cfg.Scenario == scRefreshCookie}
		case scLoginThenRefresh:
			workers[i] = &chainWorker{base: b}
		case scClientCredentials:
			workers[i] = &ccWorker{base: b}
		case scIntrospect:
			workers[i] = &introspectWorker{chainWorker: chainWorker{base: b}}
		case scReuse:
			// The first workers replay; being consecutive, they are pinned
			// to every instance in turn.
			workers[i] = &chainWorker{base: b, web: false, replayer: i < replayers}
		case scMixed:
			workers[i] = &mixedWorker{chainWorker: chainWorker{base: b, web: i%2 == 0}}
		case scCodeExchange:
			workers[i] = &codeWorker{base: b}
		case scBaselineDB:
			workers[i] = &dbWorker{base: b, db: r.baseDB}
		}
	}
	return workers, recs
}

// needsSessions reports whether a scenario's workers start from a session
// of their own: a refresh chain, or a sign-in session at tokend.
func needsSessions(scenario string) bool {
	switch scenario {
	case scRefreshCookie, scRefreshToken, scMixed, scReuse, scCodeExchange, scIntrospect:
		return true
	}
	return false
}

// Prepare logs in the sessions a run of cfg will start from and leaves
// them in cfg.Sessions, without running anything. The suite does this on a
// tokend it then replaces with a fresh process, so that the measured
// process never hashed a password it was not asked to in the run.
func Prepare(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if !needsSessions(cfg.Scenario) {
		return nil
	}
	hc := newHTTPClient(cfg.SetupConcurrency, cfg.Timeout)
	defer hc.CloseIdleConnections()
	r := &run{cfg: cfg, pool: cfg.Sessions}
	for _, t := range cfg.Targets {
		r.eps = append(r.eps, newEndpoints(t))
	}
	workers, _ := r.newWorkers(hc)
	err := setupAll(ctx, workers, cfg.SetupConcurrency)
	for _, w := range workers {
		w.done()
	}
	return err
}

// setupAll runs every worker's setup, at most n at once.
func setupAll(ctx context.Context, workers []worker, n int) error {
	sem := make(chan struct{}, n)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := w.setup(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// newRunVerifier learns the issuer from the discovery document (unless
// configured) and loads every target's JWKS.
func newRunVerifier(ctx context.Context, hc *http.Client, cfg Config) (*verifier, error) {
	issuer := cfg.Issuer
	if issuer == "" {
		var err error
		if issuer, err = discoverIssuer(ctx, hc, cfg.Targets[0]); err != nil {
			return nil, err
		}
	}
	aud := cfg.Audience
	if aud == "" {
		aud = issuer
	}
	urls := make([]string, len(cfg.Targets))
	for i, t := range cfg.Targets {
		urls[i] = newEndpoints(t).jwks
	}
	v := newVerifier(hc, urls, issuer, aud, cfg.Now)
	if err := v.load(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// healthProbe watches GET /healthz on every target.
type healthProbe struct {
	mu        sync.Mutex
	ok        bool
	failures  int64
	maxDuring time.Duration
	after     time.Duration
}

func (p *healthProbe) loop(ctx context.Context, eps []endpoints) {
	for {
		pause(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		p.once(ctx, eps, false)
	}
}

func (p *healthProbe) once(ctx context.Context, eps []endpoints, after bool) {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, ep := range eps {
		t0 := time.Now()
		_, err := fetch(ctx, hc, ep.base+"/healthz")
		d := time.Since(t0)
		if ctx.Err() != nil && !after {
			return
		}
		p.mu.Lock()
		if err != nil {
			p.ok = false
			p.failures++
		}
		if after {
			p.after = max(p.after, d)
		} else {
			p.maxDuring = max(p.maxDuring, d)
		}
		p.mu.Unlock()
	}
}
