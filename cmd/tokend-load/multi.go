package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// multi runs n tokend instances on one Postgres database (same master
// key, same issuer) and spreads the reuse scenario over them: refresh
// chains pinned round-robin, replays presented to the next instance, every
// token verified against every instance's JWKS, and a forced key rotation
// halfway through each run.
func (s *suite) multi(ctx context.Context, n int, alg string) error {
	name := fmt.Sprintf("multi%d", n)
	dbURL, err := s.dbs.create(ctx, "postgres", name, "tpl")
	if err != nil {
		return err
	}
	d := deployment{name: "tokend-" + name, dbURL: dbURL, alg: alg, issuer: "https://tokend.load",
		extra: []string{"TOKEND_REFRESH_REUSE_GRACE=1s"}, n: n}
	cfg := s.baseConfig(nil)
	cfg.Scenario, cfg.Workers, cfg.Verify, cfg.Sessions = scReuse, 64, true, newSessionPool()
	r := &row{Backend: fmt.Sprintf("postgres ×%d", n), Alg: alg, Workers: 64, Baseline: "db", Multi: n,
		Scenario: "refresh-token + cross-instance reuse + key rotation"}
	var rotations []*rotation
	cfg.Midway = func(ctx context.Context, v *verifier) string {
		rot := &rotation{at: time.Now(), v: v}
		rotations = append(rotations, rot)
		out, err := s.cli(ctx, dbURL, "", "keys", "rotate", "--force")
		if err != nil {
			rot.err = err
			return "key rotation failed: " + err.Error()
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), alg+" current key: "); ok {
				rot.kid = strings.TrimSpace(k)
				v.watchKid(rot.kid)
			}
		}
		return ""
	}
	// Instances reload keys every 10 s: a run must not start while they
	// still disagree after the previous run's rotation.
	before := func(ctx context.Context, cfg Config) error { return waitJWKSAgree(ctx, cfg.Targets, 40*time.Second) }
	if err := s.runDeployed(ctx, r, cfg, s.o.runs, d, before); err != nil {
		return err
	}
	// Describe the rotations: when each instance first issued a token
	// signed with the new key.
	var parts []string
	for _, rot := range rotations {
		parts = append(parts, rot.describe())
	}
	if len(parts) > 0 {
		r.Notes = append(r.Notes, "keys rotated halfway through each run; first token signed with the new key, "+
			"per instance, after: "+strings.Join(parts, ", ")+" (instances reload keys every 10 s)")
	}
	return ctx.Err()
}

// rotation is one mid-run key rotation.
type rotation struct {
	at  time.Time
	kid string
	err error
	v   *verifier
}

func (r *rotation) describe() string {
	if r.err != nil {
		return "rotation failed"
	}
	if r.kid == "" {
		return "new kid not printed"
	}
	var parts []string
	for _, t := range r.v.seen() {
		if t.IsZero() {
			parts = append(parts, "not within the run")
		} else {
			parts = append(parts, fmt.Sprintf("%.1fs", t.Sub(r.at).Seconds()))
		}
	}
	return strings.Join(parts, "/")
}

// waitJWKSAgree waits until every instance serves the same key set (they
// reload keys every 10 s), so a run never starts in the middle of the
// previous run's rotation.
func waitJWKSAgree(ctx context.Context, targets []string, bound time.Duration) error {
	hc := newHTTPClient(1, 5*time.Second)
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(bound)
	for {
		var first []byte
		same := true
		for i, t := range targets {
			b, err := fetch(ctx, hc, newEndpoints(t).jwks)
			if err != nil {
				return err
			}
			if i == 0 {
				first = b
			} else if !bytes.Equal(b, first) {
				same = false
			}
		}
		if same {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("instances still serve different key sets after " + bound.String())
		}
		pause(ctx, 250*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
