package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// secretRotation runs client-credentials load on two tokend instances on
// one Postgres database and, halfway through each run, rotates the server
// client's secret with `tokend clients secret rotate` (the previous secret
// keeps its default grace); as soon as the command has printed the new
// secret, every worker switches to it. Every failed request counts: the
// target is none, on either instance, before or after the switch.
func (s *suite) secretRotation(ctx context.Context, alg string) error {
	const n = 2
	dbURL, err := s.dbs.create(ctx, "postgres", "secretrot", "tpl")
	if err != nil {
		return err
	}
	d := deployment{name: "tokend-secretrot", dbURL: dbURL, alg: alg, n: n}
	cfg := s.baseConfig(nil)
	cfg.Scenario, cfg.Workers = scClientCredentials, 64
	s.clientSetup(&cfg, "postgres")
	secret := cfg.ClientSecret
	r := &row{Backend: fmt.Sprintf("postgres ×%d", n), Alg: alg, Workers: 64, Baseline: "sign", Multi: n,
		Scenario: "secret-rotation (client-credentials, secret rotated mid-run)"}
	cfg.Midway = func(ctx context.Context, _ *verifier) string {
		t0 := time.Now()
		out, err := s.cli(ctx, dbURL, "", "clients", "secret", "rotate", "--id", cfg.ClientID, "--json")
		if err != nil {
			return "secret rotation failed: " + err.Error()
		}
		var rot struct {
			Secret string `json:"client_secret"`
		}
		if err := json.Unmarshal([]byte(out), &rot); err != nil || rot.Secret == "" {
			return "secret rotation printed no new secret"
		}
		secret.set(rot.Secret)
		return fmt.Sprintf("secret rotated and the load switched to it %.1fs after the rotation began",
			time.Since(t0).Seconds())
	}
	if err := s.runDeployed(ctx, r, cfg, s.o.runs, d, nil); err != nil {
		return err
	}
	var failed int64
	for _, res := range r.Runs {
		failed += total(res.Errors)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("failed requests over the runs: %d (target 0)", failed),
		"workers pinned to the instances round-robin; the previous secret keeps its grace (24 h), "+
			"so only the switch to the new secret can fail")
	return ctx.Err()
}
