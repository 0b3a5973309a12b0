package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/tokendtest"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample p50", ms(7), 50, 7 * time.Millisecond},
		{"one sample p99", ms(7), 99, 7 * time.Millisecond},
		{"two samples p50 is the lower", ms(1, 2), 50, 1 * time.Millisecond},
		{"two samples p51 is the upper", ms(1, 2), 51, 2 * time.Millisecond},
		{"odd count median", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"1..100 p50", ms(hundred...), 50, 50 * time.Millisecond},
		{"1..100 p90", ms(hundred...), 90, 90 * time.Millisecond},
		{"1..100 p99", ms(hundred...), 99, 99 * time.Millisecond},
		{"1..100 p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"1..100 p0 is the min", ms(hundred...), 0, 1 * time.Millisecond},
		{"ten samples p99 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"ten samples p90", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	samples := []time.Duration{5, 1, 4, 2, 3}
	l := summarize(samples)
	if l.N != 5 || l.P50 != 3 || l.P90 != 5 || l.P99 != 5 || l.Max != 5 {
		t.Errorf("summarize = %+v", l)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs      []float64
		want    float64
		wantIdx int
	}{
		{[]float64{3}, 3, 0},
		{[]float64{30, 10, 20}, 20, 2},
		{[]float64{4, 1, 3, 2}, 2.5, 3},
	}
	for _, tt := range tests {
		got, idx := median(tt.xs)
		if got != tt.want || idx != tt.wantIdx {
			t.Errorf("median(%v) = %v, %d; want %v, %d", tt.xs, got, idx, tt.want, tt.wantIdx)
		}
	}
}

func TestRenderMarkdown(t *testing.T) {
	var b bytes.Buffer
	renderMarkdown(&b, []string{"backend", "scenario", "errors"}, [][]string{
		{"sqlite", "jwks", "0"},
		{"postgres", "refresh|token", "2 (timeout: 2)"},
		{"short"},
	})
	want := "| backend | scenario | errors |\n" +
		"| --- | --- | --- |\n" +
		"| sqlite | jwks | 0 |\n" +
		"| postgres | refresh\\|token | 2 (timeout: 2) |\n" +
		"| short |   |   |\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRowCells(t *testing.T) {
	run := func(ok int64, lat ...time.Duration) *Result {
		return &Result{Scenario: scRefreshToken, Workers: 64, Elapsed: 10 * time.Second, OK: ok,
			Lat: summarize(lat), Errors: map[string]int64{}, Notes: map[string]int64{}, PeakRSS: []int64{50 << 20}}
	}
	r := &row{Backend: "postgres", Alg: "RS256", Scenario: scRefreshToken, Workers: 64, Baseline: "db",
		Runs: []*Result{run(10000, time.Millisecond), run(12000, 2*time.Millisecond), run(11000, 3*time.Millisecond)}}
	r.Runs[1].Errors["timeout"] = 2
	got := r.cells(baselines{db: map[string]float64{"postgres": 2200}})
	want := []string{"postgres", "RS256", scRefreshToken, "64", "1100 (1000–1200)", "0.50× db", "3.00ms", "3.00ms",
		"3.00ms", "3.00ms", "2 (timeout: 2)", "50.0 MiB"}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("column %s = %q, want %q", tableHeader[i], got[i], w)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("1234 (tokend serve) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0")
	ticks, comm, ok := parseStat(line)
	if !ok || ticks != 300 || comm != "tokend serve" {
		t.Errorf("parseStat = %d, %q, %v", ticks, comm, ok)
	}
	v, ok := parseStatusKB([]byte("Name:\ttokend\nVmHWM:\t  51200 kB\nVmRSS:\t  40960 kB\n"), "VmHWM")
	if !ok || v != 50<<20 {
		t.Errorf("parseStatusKB = %d, %v", v, ok)
	}
}

// TestScenariosAgainstTokend runs scenario mode for real against an
// in-process tokend (behind httptest, with a fake clock that tokens are
// verified against).
func TestScenariosAgainstTokend(t *testing.T) {
	srv := tokendtest.Start(t, tokendtest.Options{Log: io.Discard, Configure: func(c *config.Config) { c.RefreshRateLimit = 0 }})
	ctx := context.Background()
	const email, password = "load-0@tokend.test", "load-password"
	if _, err := srv.Users.CreateVerified(ctx, email, password, audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{scJWKS, scRefreshToken, scMixed, scCodeExchange} {
		t.Run(sc, func(t *testing.T) {
			res, err := Run(ctx, Config{Targets: []string{srv.URL}, Scenario: sc, Workers: 4, Duration: time.Second,
				Timeout: 5 * time.Second, Users: []string{email}, Password: password, Now: srv.Clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			printResult(&out, res, nil)
			t.Log("\n" + out.String())
			if n := total(res.Errors); n != 0 {
				t.Errorf("%d errors: %v", n, res.Errors)
			}
			if res.RPS() <= 0 || res.Lat.N == 0 {
				t.Errorf("no successful requests: %.1f req/s, %d samples", res.RPS(), res.Lat.N)
			}
			if sc == scMixed && res.Notes["tokens verified"] == 0 {
				t.Error("mixed verified no token")
			}
			if sc == scCodeExchange {
				if res.Notes["tokens verified"] == 0 || res.Notes["ID tokens verified"] == 0 {
					t.Errorf("code-exchange verified no access or ID token: %v", res.Notes)
				}
				// Codes come from the stock obtained in setup; an authorize
				// hop is measured only when a worker's stock runs out.
				if s := res.Hops[hopStep]; s.N != res.Lat.N {
					t.Errorf("hops %+v for %d exchanges", res.Hops, res.Lat.N)
				}
			}
		})
	}
}

// TestCodeExchangeVerifier checks that the code-exchange scenario's checks
// can fail: one flow against an in-process tokend, then its tokens with
// the wrong nonce, swapped, or for another client.
func TestCodeExchangeVerifier(t *testing.T) {
	srv := tokendtest.Start(t, tokendtest.Options{Log: io.Discard})
	ctx := context.Background()
	const email, password = "load-0@tokend.test", "load-password"
	if _, err := srv.Users.CreateVerified(ctx, email, password, audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Targets: []string{srv.URL}, Scenario: scCodeExchange, Workers: 1, Duration: time.Second,
		Users: []string{email}, Password: password, Now: srv.Clock.Now}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(1, 5*time.Second)
	v, err := newRunVerifier(ctx, hc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{cfg: cfg, eps: []endpoints{newEndpoints(srv.URL)}, verifier: v, pool: newSessionPool()}
	w := &codeWorker{base: r.newBase(0, hc)}
	if err := w.setup(ctx); err != nil {
		t.Fatal(err)
	}
	p := newPKCE()
	resp, kind, _ := w.exchange(w.authorizeRequest(p, "s1", "n1"))
	if kind != "" {
		t.Fatal(kind)
	}
	code, kind := w.codeOf(resp, "s1")
	if kind != "" {
		t.Fatalf("authorize: %s (%d)", kind, resp.status)
	}
	resp, kind, _ = w.exchange(w.tokenRequest(code, p.verifier))
	var tr tokenResponse
	if kind != "" || resp.status != 200 || json.Unmarshal(resp.body, &tr) != nil {
		t.Fatalf("exchange: %s %d %s", kind, resp.status, resp.body)
	}
	ac, kind := v.checkAccess(ctx, tr.AccessToken, 0, "mobile")
	if kind != "" {
		t.Fatal(kind)
	}
	if _, kind := v.checkID(ctx, tr.IDToken, 0, "mobile", "n1", tr.AccessToken, ac); kind != "" {
		t.Fatal(kind)
	}
	for _, tt := range []struct {
		name, want string
		kind       func() string
	}{
		{"wrong nonce", "verify ID token: nonce", func() string {
			_, k := v.checkID(ctx, tr.IDToken, 0, "mobile", "n2", tr.AccessToken, ac)
			return k
		}},
		{"another access token", "verify ID token: at_hash", func() string {
			_, k := v.checkID(ctx, tr.IDToken, 0, "mobile", "n1", tr.AccessToken+"x", ac)
			return k
		}},
		{"another client", "verify ID token: aud/azp", func() string {
			_, k := v.checkID(ctx, tr.IDToken, 0, "web", "n1", tr.AccessToken, ac)
			return k
		}},
		{"ID token as access token", "verify: typ", func() string { return v.check(ctx, tr.IDToken, 0, "mobile") }},
		{"access token as ID token", "verify ID token: typ", func() string {
			_, k := v.checkID(ctx, tr.AccessToken, 0, "mobile", "n1", tr.AccessToken, ac)
			return k
		}},
	} {
		if got := tt.kind(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	// The code is single use.
	resp, _, _ = w.exchange(w.tokenRequest(code, p.verifier))
	if got := statusKind(resp); got != "HTTP 400 invalid_grant" {
		t.Errorf("second exchange: %s", got)
	}
}
