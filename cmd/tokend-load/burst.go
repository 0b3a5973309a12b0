package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// login-then-refresh: a burst of password logins on the measured process,
// then refresh-token load alone. The burst fills the password hasher's
// slots (each argon2id hash holds 19 MiB while it runs); the refresh phase
// shows whether that memory is returned or stays resident while the server
// only rotates tokens. The burst's refresh tokens are the workers' chains.

// burstTrace is what the burst did, for the row's notes.
type burstTrace struct {
	logins      int
	concurrency int
	took        time.Duration
	pid         int
	peak, after int64 // the process's peak RSS during the burst and its RSS right after, bytes (0: unknown)
}

// burst logs cfg.Burst users in (native password grant), at most
// cfg.BurstConcurrency at once, retrying 429s, and leaves their refresh
// tokens in r.pool for the workers.
func (r *run) burst(ctx context.Context, hc *http.Client) (*burstTrace, error) {
	cfg := r.cfg
	tr := &burstTrace{logins: cfg.Burst, concurrency: cfg.BurstConcurrency}
	if len(cfg.PIDs) > 0 {
		tr.pid = cfg.PIDs[0]
		resetPeakRSS(tr.pid)
	}
	t0 := time.Now()
	sem := make(chan struct{}, cfg.BurstConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range cfg.Burst {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b := r.newBase(i, hc)
			tok, err := retrySetup(ctx, "login of the burst", func() (string, string) {
				_, refresh, kind, _ := b.login(b.target, false)
				return refresh, kind
			})
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
			r.pool.put(poolKey{target: b.target, client: cfg.NativeClient}, tok)
		}()
	}
	wg.Wait()
	tr.took = time.Since(t0)
	if first != nil {
		return nil, first
	}
	if tr.pid != 0 {
		tr.peak, _ = statusKB(tr.pid, "VmHWM")
		tr.after, _ = statusKB(tr.pid, "VmRSS")
	}
	return tr, nil
}

// phaseSettle is how long into the refresh phase the "settled" figures
// start: past tokend's idle period before it returns the hashes' memory.
const phaseSettle = 5 * time.Second

// describe summarises the burst and the server's RSS during the measured
// refresh phase (samples every 100 ms from t0).
func (tr *burstTrace) describe(s *rssSampler, t0 time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d logins (%d at once) in %s before the refresh load", tr.logins, tr.concurrency,
		tr.took.Round(10*time.Millisecond))
	if tr.pid == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, ", server RSS peak %s during them, %s right after", fmtBytes(tr.peak), fmtBytes(tr.after))
	pts := s.points()
	if len(pts) == 0 {
		return b.String()
	}
	var peak, settledPeak int64
	var settled []int64
	for _, p := range pts {
		peak = max(peak, p.rss)
		if p.at.Sub(t0) >= phaseSettle {
			settledPeak = max(settledPeak, p.rss)
			settled = append(settled, p.rss)
		}
	}
	fmt.Fprintf(&b, "; server RSS in the refresh phase (VmRSS every 100 ms): %s at its start, peak %s, %s at its end",
		fmtBytes(pts[0].rss), fmtBytes(peak), fmtBytes(pts[len(pts)-1].rss))
	if len(settled) > 0 {
		slices.Sort(settled)
		fmt.Fprintf(&b, "; after its first %s: peak %s, median %s", phaseSettle, fmtBytes(settledPeak),
			fmtBytes(settled[len(settled)/2]))
	}
	return b.String()
}
