package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// tableHeader is the report's columns.
var tableHeader = []string{"backend", "alg", "scenario", "workers", "req/s (min–max)", "ratio", "p50", "p90", "p99",
	"max", "errors", "server peak RSS", "notes"}

// renderMarkdown writes a Markdown table. Cells are escaped (pipes,
// newlines); short rows are padded.
func renderMarkdown(w io.Writer, header []string, rows [][]string) {
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i := range header {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			c = strings.ReplaceAll(c, "|", `\|`)
			c = strings.ReplaceAll(c, "\n", " ")
			if c == "" {
				c = " "
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
		io.WriteString(w, b.String())
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// noisyOther is the CPU (% of one core) other processes may use during a
// run before its row is flagged: on a shared machine they take cores the
// scenario would have used.
const noisyOther = 25

// aggregate is a row's runs reduced to what the table shows.
type aggregate struct {
	rps, min, max float64
	med           *Result // the run whose rate is the median (the lower middle one for an even count)
	errors, notes map[string]int64
	peak          []int64
	probed        bool
	healthDuring  time.Duration
	healthAfter   time.Duration
	extras        []string
}

func aggregateRuns(runs []*Result) aggregate {
	a := aggregate{errors: map[string]int64{}, notes: map[string]int64{}}
	if len(runs) == 0 {
		return a
	}
	rates := make([]float64, len(runs))
	for i, r := range runs {
		rates[i] = r.RPS()
		merge(a.errors, r.Errors)
		merge(a.notes, r.Notes)
		for j, p := range r.PeakRSS {
			for len(a.peak) <= j {
				a.peak = append(a.peak, 0)
			}
			a.peak[j] = max(a.peak[j], p)
		}
		a.extras = append(a.extras, r.Extra...)
		a.probed = a.probed || r.Probed
		a.healthDuring = max(a.healthDuring, r.HealthDuring)
		a.healthAfter = max(a.healthAfter, r.HealthAfter)
	}
	var mi int
	a.rps, mi = median(rates)
	a.med = runs[mi]
	a.min, a.max = rates[0], rates[0]
	for _, v := range rates {
		a.min, a.max = min(a.min, v), max(a.max, v)
	}
	return a
}

// baselines are the rates ratios are taken against.
type baselines struct {
	http float64
	db   map[string]float64 // per store
	// dbCPU is the database server's CPU per baseline-db transaction in
	// its median run (Postgres only: SQLite runs in the load generator).
	dbCPU  map[string]time.Duration
	argon2 float64 // cores / one hash
	// edToken is one EdDSA access token's signing alone on one goroutine;
	// a "sign" row's base is the cores left over in its median run ÷ it.
	edToken time.Duration
}

func (s *suite) baselines() baselines {
	b := baselines{db: map[string]float64{}, dbCPU: map[string]time.Duration{}, edToken: s.edToken}
	if s.argon2 > 0 {
		b.argon2 = float64(numCPU()) / s.argon2.Seconds()
	}
	for _, r := range s.rows {
		a := aggregateRuns(r.Runs)
		switch {
		case strings.HasPrefix(r.Scenario, scBaselineHTTP):
			b.http = a.rps
		case r.Scenario == scBaselineDB:
			b.db[r.Backend] = a.rps
			b.dbCPU[r.Backend] = postgresPer(a.med.CPU, a.rps)
		}
	}
	return b
}

// cells renders one row of the table.
func (r *row) cells(b baselines) []string {
	a := aggregateRuns(r.Runs)
	c := []string{r.Backend, r.Alg, r.Scenario, fmt.Sprint(r.Workers)}
	if len(r.Runs) == 0 {
		c = append(c, "failed", "", "", "", "", "", "", "", strings.Join(r.Failures, "; "))
		return c
	}
	rate := fmtRate(a.rps)
	if len(r.Runs) > 1 {
		rate += fmt.Sprintf(" (%s–%s)", fmtRate(a.min), fmtRate(a.max))
	}
	if a.med.CPU.Other() >= noisyOther {
		rate += " ⚠"
	}
	c = append(c, rate, r.ratio(a.rps, a.med.CPU, b))
	c = append(c, fmtDur(a.med.Lat.P50), fmtDur(a.med.Lat.P90), fmtDur(a.med.Lat.P99), fmtDur(a.med.Lat.Max))
	errs := fmt.Sprint(total(a.errors))
	if len(a.errors) > 0 {
		errs += kindList(a.errors)
	}
	c = append(c, errs)
	var rss []string
	for _, p := range a.peak {
		rss = append(rss, fmtBytes(p))
	}
	if len(rss) == 0 {
		rss = []string{"—"}
	}
	c = append(c, strings.Join(rss, " / "))
	var notes []string
	for _, k := range sortedKeys(a.notes) {
		notes = append(notes, fmt.Sprintf("%s: %d", k, a.notes[k]))
	}
	if r.Multi > 1 {
		var fivexx int64
		for k, v := range a.errors {
			if strings.HasPrefix(k, "HTTP 5") {
				fivexx += v
			}
		}
		notes = append(notes, fmt.Sprintf("5xx: %d", fivexx))
	}
	for _, name := range slices.Sorted(maps.Keys(a.med.Hops)) {
		l := a.med.Hops[name]
		notes = append(notes, fmt.Sprintf("%s (not in req/s or latency): p50 %s, p90 %s, p99 %s, max %s", name,
			fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max)))
	}
	if a.probed {
		notes = append(notes, fmt.Sprintf("GET /healthz answered in ≤%s during the runs, ≤%s right after (1 s bound)",
			fmtDur(a.healthDuring), fmtDur(a.healthAfter)))
	}
	notes = append(notes, a.extras...)
	notes = append(notes, r.Notes...)
	notes = append(notes, "CPU "+a.med.CPU.String())
	notes = append(notes, r.Failures...)
	c = append(c, strings.Join(notes, "; "))
	return c
}

// postgresPer is the Postgres CPU per request of a run at rps: what
// bounds the rate once tokend and the load generator have cores of their
// own, as with several tokend instances on one database.
func postgresPer(c CPU, rps float64) time.Duration {
	if rps <= 0 || c.Postgres <= 0 {
		return 0
	}
	return time.Duration(c.Postgres / 100 / rps * float64(time.Second))
}

// coresLeft is what the server had of the machine in a run: the cores
// less what the load generator, Postgres and other processes used.
func coresLeft(c CPU) float64 {
	return float64(numCPU()) - (c.Load+c.Postgres+max(c.Other(), 0))/100
}

func (r *row) ratio(rps float64, cpu CPU, b baselines) string {
	var base float64
	switch r.Baseline {
	case "sign":
		if b.edToken > 0 {
			base = coresLeft(cpu) / b.edToken.Seconds()
		}
	case "http":
		base = b.http
	case "db":
		base = b.db[strings.Fields(r.Backend)[0]]
	case "argon2":
		base = b.argon2
	}
	if base <= 0 {
		return "—"
	}
	if rps/base < 0.1 {
		return fmt.Sprintf("%.3f× %s", rps/base, r.Baseline)
	}
	return fmt.Sprintf("%.2f× %s", rps/base, r.Baseline)
}

func fmtRate(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// report prints the Markdown report: the command, the machine, the table
// and the targets.
func (s *suite) report(w io.Writer, m machine, args []string) {
	fmt.Fprintf(w, "## tokend load suite\n\n")
	fmt.Fprintf(w, "- command: `%s`\n", commandLine(args))
	fmt.Fprintf(w, "- machine: %s, %d cores (nproc), %s RAM; %s; %s; %s\n", m.CPU, m.Cores, m.Memory, m.Go,
		m.Postgres, m.Tokend)
	fmt.Fprintf(w, "- every run: %s measured after %s warm-up, %s per-request timeout, closed loop (each worker waits for its answer); "+
		"%d runs per scenario unless noted: req/s is the median (min–max), latencies and CPU come from the median run, "+
		"errors are summed over the runs, peak RSS is the highest VmHWM/VmRSS over the runs; total time %s\n",
		s.o.duration, s.o.warmup, s.o.timeout, s.o.runs, time.Since(s.started).Round(time.Second))
	fmt.Fprintf(w, "- ratio: jwks to baseline-http, refresh, reuse, code-exchange, introspect and login-then-refresh to "+
		"baseline-db on the same store, logins to cores ÷ one argon2id hash, client-credentials and secret-rotation to "+
		"EdDSA signing alone (sign: the cores left over in the median run ÷ one calibrated EdDSA access token); CPU is %% of one core (load-gen = this harness); ⚠ marks a row whose median run "+
		"shared the machine with other processes using ≥%d%% of a core (see its notes)\n\n", noisyOther)
	b := s.baselines()
	rows := make([][]string, len(s.rows))
	for i, r := range s.rows {
		rows[i] = r.cells(b)
	}
	renderMarkdown(w, tableHeader, rows)
	fmt.Fprintln(w)
	cores := numCPU()
	fmt.Fprintf(w, "Calibrated before and after the scenarios on one goroutine; the targets use the faster figure of each.")
	for i, c := range s.calibrations {
		fmt.Fprintf(w, " Pass %d: argon2id %s, RSA-2048 signature %s, EdDSA access token %s", i+1, fmtDur(c.argon2),
			fmtDur(c.rsaSign), fmtDur(c.edToken))
		if other := c.cpu.Other(); other >= 10 {
			fmt.Fprintf(w, " (other processes used ≈%.0f%% of a core)", other)
		}
		fmt.Fprint(w, ".")
	}
	fmt.Fprint(w, "\n\n")
	fmt.Fprintf(w, "**Login target**: one argon2id hash (m=%d KiB, t=%d, p=%d) takes %s here (median of 5), so %d cores "+
		"give at most %.1f logins/s.", argonMemoryKiB, argonTime, argonThreads, fmtDur(s.argon2), cores, b.argon2)
	for _, r := range s.rows {
		if r.Baseline == "argon2" && len(r.Runs) > 0 && r.Workers == 2*cores {
			a := aggregateRuns(r.Runs)
			fmt.Fprintf(w, " %s %s %s: %.1f/s = %.2f×.", r.Backend, r.Alg, r.Scenario, a.rps, a.rps/b.argon2)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	target := float64(cores) / s.rsaSign.Seconds()
	fmt.Fprintf(w, "**RS256 target**: one RSA-2048 PKCS#1 v1.5 SHA-256 signature takes %s on one goroutine (median of 5 "+
		"batches of 200), so %d cores give at most %.0f signatures/s; the cores left over are the %d less what the "+
		"load generator, Postgres and other processes used in the median run.", fmtDur(s.rsaSign), cores, target, cores)
	for _, r := range s.rows {
		if r.Alg == "RS256" && len(r.Runs) > 0 && (strings.HasPrefix(r.Scenario, "refresh") || r.Multi > 1) {
			a := aggregateRuns(r.Runs)
			left := float64(cores) - (a.med.CPU.Load+a.med.CPU.Postgres+max(a.med.CPU.Other(), 0))/100
			fmt.Fprintf(w, " %s %s ×%d: %.0f/s = %.2f× of all cores, %.2f× of the %.2f cores left over.",
				r.Backend, r.Scenario, r.Workers, a.rps, a.rps/target, a.rps*s.rsaSign.Seconds()/left, left)
		}
	}
	fmt.Fprintln(w)
	s.signTarget(w)
	s.codeExchangeTarget(w, b)
}

// signTarget prints the client-credentials rows against EdDSA signing
// alone.
func (s *suite) signTarget(w io.Writer) {
	if s.edToken <= 0 {
		return
	}
	var floor float64 // the serve-and-sign floor's rate
	for _, r := range s.rows {
		if r.Scenario == scBaselineSign && len(r.Runs) > 0 {
			floor = aggregateRuns(r.Runs).rps
		}
	}
	var parts []string
	for _, r := range s.rows {
		if r.Baseline != "sign" || len(r.Runs) == 0 {
			continue
		}
		a := aggregateRuns(r.Runs)
		left := coresLeft(a.med.CPU)
		part := fmt.Sprintf(" %s %s %s ×%d: %s/s against %.0f/s on the %.2f cores left over = %.3f×",
			r.Backend, r.Alg, r.Scenario, r.Workers, fmtRate(a.rps), left/s.edToken.Seconds(), left,
			a.rps*s.edToken.Seconds()/left)
		if floor > 0 && r.Scenario != scBaselineSign {
			part += fmt.Sprintf("; against the serve-and-sign floor (baseline-sign, %s/s) = %.2f×", fmtRate(floor), a.rps/floor)
		}
		parts = append(parts, part+".")
	}
	if len(parts) == 0 {
		return
	}
	fmt.Fprintf(w, "\n**Client credentials, signing alone**: building and signing one access token's claims with "+
		"Ed25519 takes %s on one goroutine (in this process, median of 5 batches of 2000), the floor of a "+
		"client-credentials answer; the ratio is the rate against that floor on the cores the server had. "+
		"baseline-sign is the same signing behind a bare net/http handler (serve-baseline --sign), the floor of "+
		"any HTTP token endpoint on this machine.%s\n",
		fmtDur(s.edToken), strings.Join(parts, ""))
}

// Targets of the code exchange on Postgres with EdDSA and 64 workers.
const (
	codeTargetRatio = 0.6
	codeTargetP99   = 150 * time.Millisecond
)

// codeExchangeTarget prints the code-exchange rows against their target.
func (s *suite) codeExchangeTarget(w io.Writer, b baselines) {
	var parts []string
	for _, r := range s.rows {
		if r.Scenario != scCodeExchange || len(r.Runs) == 0 {
			continue
		}
		a := aggregateRuns(r.Runs)
		base := b.db[r.Backend]
		part := fmt.Sprintf(" %s %s ×%d: %s/s", r.Backend, r.Alg, r.Workers, fmtRate(a.rps))
		if base > 0 {
			part += fmt.Sprintf(" = %.2f× db", a.rps/base)
		}
		errs := total(a.errors)
		part += fmt.Sprintf(", p99 %s, %d errors", fmtDur(a.med.Lat.P99), errs)
		if pg, basePG := postgresPer(a.med.CPU, a.rps), b.dbCPU[r.Backend]; pg > 0 && basePG > 0 {
			part += fmt.Sprintf(" (Postgres CPU %s per exchange against %s per baseline-db transaction: %.2f× where "+
				"Postgres alone bounds the rate)", fmtDur(pg), fmtDur(basePG), basePG.Seconds()/pg.Seconds())
		}
		if r.Backend == "postgres" && r.Alg == "EdDSA" && r.Workers == 64 && base > 0 {
			met := a.rps/base >= codeTargetRatio && a.med.Lat.P99 < codeTargetP99 && errs == 0
			part += map[bool]string{true: ": met", false: ": missed"}[met]
		}
		parts = append(parts, part+".")
	}
	if len(parts) == 0 {
		return
	}
	fmt.Fprintf(w, "\n**Code exchange target** (Postgres, EdDSA, 64 workers): at least %.1f× the same-run baseline-db "+
		"rate, p99 under %s, no errors.%s\n", codeTargetRatio, fmtDur(codeTargetP99), strings.Join(parts, ""))
}

// commandLine is the command as typed (program name shortened).
func commandLine(args []string) string {
	parts := []string{"tokend-load"}
	for _, a := range args[1:] {
		if strings.ContainsAny(a, " '\"&?;$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
