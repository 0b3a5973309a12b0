package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestThreeInstances: three tokend instances on one Postgres database share
// the load. Refresh chains hop between instances; a key rotation happens in
// the middle; every issued token verifies against the JWKS of every
// instance; a token rotated on one instance and replayed on another after
// the grace window is always detected; nothing answers 5xx.
func TestThreeInstances(t *testing.T) {
	u := dbtest.PostgresURL(t)
	c := clock.NewFake(tokendtest.T0)
	mk := masterkey.Generate()
	const issuer = "https://auth.example.test"
	same := func(cfg *config.Config) { cfg.Issuer, cfg.Audience = issuer, issuer; cfg.SigningAlg = keys.EdDSA }
	var inst []*tokendtest.Server
	for range 3 {
		inst = append(inst, tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: mk, Configure: same}))
	}
	ctx := context.Background()
	const workers, steps = 12, 20
	for w := range workers {
		createUser(t, inst[0], fmt.Sprintf("w%d@example.com", w))
	}

	var issued sync.Map // access tokens to verify at the end
	var fivexx, failures atomic.Int64
	post := func(s *tokendtest.Server, form url.Values) (int, tokenResp) {
		resp, err := http.Post(s.URL+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			failures.Add(1)
			return 0, tokenResp{}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var tr tokenResp
		_ = json.Unmarshal(b, &tr)
		if resp.StatusCode >= 500 {
			fivexx.Add(1)
		}
		return resp.StatusCode, tr
	}
	run := func(from, to int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, tr := post(inst[w%3], url.Values{"grant_type": {"password"}, "username": {fmt.Sprintf("w%d@example.com", w)},
					"password": {testPassword}, "client_id": {"mobile"}})
				if status != 200 {
					failures.Add(1)
					return
				}
				issued.Store(tr.AccessToken, true)
				tok := tr.RefreshToken
				for i := from; i < to; i++ {
					status, tr := post(inst[(w+i)%3], url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "client_id": {"mobile"}})
					if status != 200 {
						failures.Add(1)
						return
					}
					issued.Store(tr.AccessToken, true)
					tok = tr.RefreshToken
				}
			}()
		}
		wg.Wait()
	}
	run(0, steps/2)
	// A key rotation in the middle, done by instance 0; the others pick it
	// up on their reload (the test runs the reload instead of waiting).
	c.Advance(c.Now().Sub(tokendtest.T0) + 6*time.Minute)
	if _, err := inst[0].Keys.Rotate(ctx, keys.EdDSA, keys.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	run(steps/2, steps)
	for _, s := range inst[1:] {
		if err := s.Keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	run(0, steps/2)
	if n := failures.Load(); n != 0 || fivexx.Load() != 0 {
		t.Fatalf("%d failed requests, %d 5xx", n, fivexx.Load())
	}

	// Every token verifies against every instance's JWKS.
	for i, s := range inst {
		v := oidc.NewVerifier(issuer, oidc.NewRemoteKeySet(ctx, s.URL+"/.well-known/jwks.json"),
			&oidc.Config{ClientID: issuer, SupportedSigningAlgs: []string{"EdDSA"}, Now: c.Now})
		n := 0
		issued.Range(func(k, _ any) bool {
			n++
			if _, err := v.Verify(ctx, k.(string)); err != nil {
				t.Errorf("instance %d's JWKS rejects an issued token: %v", i, err)
				return false
			}
			return true
		})
		if n < workers*steps {
			t.Fatalf("only %d tokens issued", n)
		}
	}

	// Replays across instances after the grace window: always detected.
	for w := range 6 {
		tr := nativeLogin(t, inst[w%3], fmt.Sprintf("w%d@example.com", w), "")
		refreshed(t, nativeRefresh(t, inst[(w+1)%3], tr.RefreshToken))
		c.Advance(11 * time.Second)
		wantError(t, nativeRefresh(t, inst[(w+2)%3], tr.RefreshToken), 400, "invalid_grant")
	}
}
