package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestMachineScenariosAgainstTokend runs client-credentials, introspect
// and login-then-refresh against an in-process tokend with the clients the
// suite seeds, and checks that their checks can fail: a wrong secret, a
// resource server that may not read the token.
func TestMachineScenariosAgainstTokend(t *testing.T) {
	srv := tokendtest.Start(t, tokendtest.Options{Log: io.Discard, Configure: func(c *config.Config) { c.RefreshRateLimit = 0 }})
	ctx := context.Background()
	const email, password = "load-0@tokend.test", "load-password"
	if _, err := srv.Users.CreateVerified(ctx, email, password, audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, spec := range []clients.Spec{
		{ID: loadServerClient, Kind: store.ClientServer, Grants: []string{"client_credentials"}},
		{ID: loadResourceClient, Kind: store.ClientServer, Audience: []string{loadAPIAudience}},
		{ID: loadAPIUserClient, Kind: store.ClientNative, Grants: []string{"password", "refresh_token"},
			Audience: []string{loadAPIAudience}},
	} {
		_, sec, err := srv.Clients.Create(ctx, spec, srv.Clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		secrets[spec.ID] = sec.Reveal()
	}
	base := func(sc string) Config {
		return Config{Targets: []string{srv.URL}, Scenario: sc, Workers: 4, Duration: time.Second,
			Timeout: 5 * time.Second, Users: []string{email}, Password: password, Now: srv.Clock.Now,
			ClientID: loadServerClient, ClientSecret: newSecretRef(secrets[loadServerClient]),
			ResourceID: loadResourceClient, ResourceSecret: secrets[loadResourceClient]}
	}
	rotations := 0
	tests := []struct {
		name      string
		cfg       func(*Config)
		wantError string // "": no errors; else every request fails so (or is locked out: HTTP 429)
		check     func(t *testing.T, res *Result)
	}{
		{name: "client-credentials, verified", cfg: func(c *Config) { c.Scenario, c.Verify = scClientCredentials, true },
			check: func(t *testing.T, res *Result) {
				if res.Notes["tokens verified"] == 0 {
					t.Error("no token verified")
				}
			}},
		{name: "client-credentials, secret rotated mid-run", cfg: func(c *Config) {
			c.Scenario = scClientCredentials
			sec := c.ClientSecret
			c.Midway = func(ctx context.Context, _ *verifier) string {
				rotations++
				s, err := srv.Clients.RotateSecret(ctx, loadServerClient, time.Hour, srv.Clock.Now(), nil)
				if err != nil {
					return "rotation failed: " + err.Error()
				}
				sec.set(s.Reveal())
				return "rotated"
			}
		}, check: func(t *testing.T, res *Result) {
			if rotations != 1 || len(res.Extra) != 1 || res.Extra[0] != "rotated" {
				t.Errorf("rotations %d, notes %q", rotations, res.Extra)
			}
		}},
		{name: "introspect", cfg: func(c *Config) { c.Scenario, c.NativeClient = scIntrospect, loadAPIUserClient }},
		{name: "introspect by a client that may not read the token", cfg: func(c *Config) {
			c.Scenario, c.NativeClient = scIntrospect, loadAPIUserClient
			c.ResourceID, c.ResourceSecret = loadServerClient, c.ClientSecret.get()
		}, wantError: "token inactive (or no details for the resource server)"},
		{name: "login-then-refresh", cfg: func(c *Config) {
			c.Scenario, c.Burst, c.BurstConcurrency, c.PIDs = scLoginThenRefresh, 10, 3, []int{os.Getpid()}
		}, check: func(t *testing.T, res *Result) {
			if len(res.Extra) != 1 || !strings.HasPrefix(res.Extra[0], "10 logins (3 at once) in ") ||
				!strings.Contains(res.Extra[0], "server RSS in the refresh phase") {
				t.Errorf("notes %q", res.Extra)
			}
		}},
		// Last: failed client authentications lock the address out
		// (429) for the rest of the test, as brute force would.
		{name: "client-credentials, wrong secret", cfg: func(c *Config) {
			c.Scenario, c.ClientSecret = scClientCredentials, newSecretRef(secrets[loadResourceClient])
		}, wantError: "HTTP 401 invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base("")
			tc.cfg(&cfg)
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			printResult(&out, res, nil)
			t.Log("\n" + out.String())
			if tc.wantError == "" {
				if n := total(res.Errors); n != 0 {
					t.Errorf("%d errors: %v", n, res.Errors)
				}
				if res.OK == 0 {
					t.Error("no successful requests")
				}
			} else {
				n := res.Errors[tc.wantError] + res.Errors["HTTP 429 rate_limited"]
				if n == 0 || n != total(res.Errors) || res.OK != 0 {
					t.Errorf("errors %v, %d successes; want only %q", res.Errors, res.OK, tc.wantError)
				}
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}
