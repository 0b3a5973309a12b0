package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// userEmail is the email of the i-th load user the suite seeds (and run
// mode's default --users pattern).
const defaultUserPattern = "load-%d@tokend.test"

func userList(pattern string, n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf(pattern, i)
	}
	return users
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	targets := fs.String("target", "", "base URL of tokend (comma-separated for several instances: workers are pinned round-robin)")
	scenario := fs.String("scenario", "", "scenario: "+strings.Join(scenarios, ", "))
	workers := fs.Int("workers", 64, "concurrent workers (closed loop: each waits for its answer)")
	duration := fs.Duration("duration", 10*time.Second, "measured time")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up before it")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of each request")
	pids := fs.String("pid", "", "server PIDs (comma-separated) whose peak RSS and CPU are reported")
	pattern := fs.String("users", defaultUserPattern, "email pattern of the load users (%d is 0 … --user-count-1)")
	count := fs.Int("user-count", 32, "number of load users")
	password := fs.String("password", "load-password", "their password")
	web := fs.String("web-client", "web", "client_id of the web client")
	native := fs.String("native-client", "mobile", "client_id of the native client")
	issuer := fs.String("issuer", "", "expected iss of access tokens (default: from the discovery document)")
	audience := fs.String("audience", "", "expected aud (default: the issuer)")
	verify := fs.Bool("verify", false, "verify every issued access token offline (mixed always does; code-exchange verifies a sample of access and ID tokens without it)")
	share := fs.Float64("reuse-share", 0.1, "reuse: share of workers that replay old refresh tokens")
	age := fs.Duration("reuse-age", 2*time.Second, "reuse: age of replayed tokens (run tokend with TOKEND_REFRESH_REUSE_GRACE below it)")
	db := fs.String("db", "", "baseline-db: database URL (sqlite:PATH or postgres://…)")
	pool := fs.Int("db-pool", 0, "baseline-db: pool size (default: pool_max_conns or 20 on Postgres, 1 writer on SQLite)")
	healthz := fs.Bool("healthz", false, "probe GET /healthz during and after the run (1 s bound)")
	setup := fs.Int("setup-concurrency", 4, "logins at once while preparing refresh chains")
	clientID := fs.String("client", loadServerClient, "client-credentials: the server client (its secret in $TOKEND_LOAD_CLIENT_SECRET)")
	resourceID := fs.String("resource-client", loadResourceClient, "introspect: the resource server's client (its secret in $TOKEND_LOAD_RESOURCE_SECRET); "+
		"--native-client must issue tokens with its audience")
	burst := fs.Int("burst", 100, "login-then-refresh: logins before the refresh load")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *scenario == "" {
		return &usageError{"run: --scenario is required"}
	}
	cfg := Config{Scenario: *scenario, Workers: *workers, Duration: *duration, Warmup: *warmup, Timeout: *timeout,
		Users: userList(*pattern, *count), Password: *password, WebClient: *web, NativeClient: *native,
		Issuer: *issuer, Audience: *audience, Verify: *verify, ReuseShare: *share, ReuseAge: *age,
		DB: *db, DBPool: *pool, Healthz: *healthz, SetupConcurrency: *setup, Burst: *burst,
		// Secrets come from the environment, not the command line (which
		// other users of the machine can read).
		ClientID: *clientID, ClientSecret: newSecretRef(os.Getenv("TOKEND_LOAD_CLIENT_SECRET")),
		ResourceID: *resourceID, ResourceSecret: os.Getenv("TOKEND_LOAD_RESOURCE_SECRET")}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Targets = append(cfg.Targets, t)
		}
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return &usageError{fmt.Sprintf("run: --pid %q is not a number", p)}
			}
			cfg.PIDs = append(cfg.PIDs, n)
		}
	}
	if err := cfg.defaults(); err != nil {
		return &usageError{"run: " + err.Error()}
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	printResult(stdout, res, cfg.PIDs)
	return nil
}

// printResult prints one run as plain text.
func printResult(w io.Writer, r *Result, pids []int) {
	fmt.Fprintf(w, "scenario %s, %d workers, measured %s\n", r.Scenario, r.Workers, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  requests/s  %.1f (%d successful)\n", r.RPS(), r.OK)
	fmt.Fprintf(w, "  latency     p50 %s  p90 %s  p99 %s  max %s  (%d requests)\n",
		fmtDur(r.Lat.P50), fmtDur(r.Lat.P90), fmtDur(r.Lat.P99), fmtDur(r.Lat.Max), r.Lat.N)
	for _, name := range slices.Sorted(maps.Keys(r.Hops)) {
		l := r.Hops[name]
		fmt.Fprintf(w, "  %s (not counted above)  p50 %s  p90 %s  p99 %s  max %s  (%d)\n", name,
			fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max), l.N)
	}
	fmt.Fprintf(w, "  errors      %d%s\n", total(r.Errors), kindList(r.Errors))
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "  counted    %s\n", kindList(r.Notes))
	}
	for i, pid := range pids {
		fmt.Fprintf(w, "  server RSS  peak %s (pid %d)\n", fmtBytes(r.PeakRSS[i]), pid)
	}
	fmt.Fprintf(w, "  CPU         %s\n", r.CPU)
	if r.Probed {
		fmt.Fprintf(w, "  healthz     slowest answer %s during the run, %s right after\n", fmtDur(r.HealthDuring),
			fmtDur(r.HealthAfter))
	}
	for _, e := range r.Extra {
		fmt.Fprintf(w, "  note        %s\n", e)
	}
}

// kindList renders counts as " (a: 3, b: 1)", largest first.
func kindList(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k+":", m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func (c CPU) String() string {
	s := fmt.Sprintf("load-gen %.0f%%, server %.0f%%", c.Load, c.Server)
	if c.Postgres >= 0.5 {
		s += fmt.Sprintf(", postgres %.0f%%", c.Postgres)
	}
	s += fmt.Sprintf(", machine %.0f%% of %d%%", c.Machine, numCPU()*100)
	// What the machine spent beyond the processes measured: other work on
	// a shared machine, which makes the figures noisier.
	if other := c.Other(); other >= 10 {
		s += fmt.Sprintf(" (other processes ≈%.0f%%)", other)
	}
	return s
}

// Other is the CPU the machine spent beyond the processes measured.
func (c CPU) Other() float64 { return c.Machine - c.Load - c.Server - c.Postgres }

// fmtDur prints a latency with 3 significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtBytes(n int64) string {
	if n <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
