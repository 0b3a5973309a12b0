package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/tokens"
)

func TestJWKSEndpoint(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		r := s.Get(t, "/.well-known/jwks.json")
		if r.Status != 200 || r.Header.Get("Cache-Control") != "public, max-age=300" || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("JWKS: %d %v", r.Status, r.Header)
		}
		etag := r.Header.Get("ETag")
		if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || strings.HasPrefix(etag, "W/") {
			t.Fatalf("ETag %q is not a strong entity tag", etag)
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		r.JSON(t, &set)
		algs := map[string]int{}
		for _, k := range set.Keys {
			for _, m := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := k[m]; ok {
					t.Fatalf("private member %s in the JWKS", m)
				}
			}
			algs[k["alg"].(string)]++
			if k["alg"] == "EdDSA" && (k["kty"] != "OKP" || k["crv"] != "Ed25519") {
				t.Fatalf("Ed25519 key shape: %v", k)
			}
		}
		if algs["RS256"] != 2 || algs["EdDSA"] != 2 {
			t.Fatalf("JWKS algorithms %v, want current and next of each", algs)
		}
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			nm := s.Get(t, "/.well-known/jwks.json", "If-None-Match", inm)
			if nm.Status != 304 || len(nm.Body) != 0 || nm.Header.Get("ETag") != etag {
				t.Fatalf("If-None-Match %s: %d %q, ETag %q", inm, nm.Status, nm.Body, nm.Header.Get("ETag"))
			}
		}
		if r := s.Get(t, "/.well-known/jwks.json", "If-None-Match", `"stale"`); r.Status != 200 {
			t.Fatalf("stale If-None-Match: %d", r.Status)
		}
		head := s.Do(t, s.NewRequest(t, "HEAD", "/.well-known/jwks.json", nil))
		if head.Status != 200 || len(head.Body) != 0 {
			t.Fatalf("HEAD: %d", head.Status)
		}
	})
}

// TestDiscovery: both well-known documents are the same and advertise
// exactly what tokend does (API.md "Discovery and keys").
func TestDiscovery(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	r := s.Get(t, "/.well-known/openid-configuration")
	if r2 := s.Get(t, "/.well-known/oauth-authorization-server"); string(r2.Body) != string(r.Body) {
		t.Fatalf("the RFC 8414 document differs:\n%s\n%s", r.Body, r2.Body)
	}
	var d map[string]any
	r.JSON(t, &d)
	want := map[string]any{
		"issuer": s.URL, "jwks_uri": s.URL + "/.well-known/jwks.json", "token_endpoint": s.URL + "/oauth/token",
		"revocation_endpoint": s.URL + "/oauth/revoke", "userinfo_endpoint": s.URL + "/userinfo",
		"authorization_endpoint": s.URL + "/oauth/authorize", "end_session_endpoint": s.URL + "/oauth/logout",
		"authorization_response_iss_parameter_supported": true, "introspection_endpoint": s.URL + "/oauth/introspect",
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	lists := map[string]string{
		"grant_types_supported":                            "authorization_code refresh_token password client_credentials",
		"token_endpoint_auth_methods_supported":            "none client_secret_basic client_secret_post private_key_jwt",
		"revocation_endpoint_auth_methods_supported":       "none client_secret_basic client_secret_post private_key_jwt",
		"introspection_endpoint_auth_methods_supported":    "client_secret_basic client_secret_post private_key_jwt",
		"token_endpoint_auth_signing_alg_values_supported": "RS256 ES256 EdDSA",
		"id_token_signing_alg_values_supported":            "RS256 EdDSA", "response_types_supported": "code", "response_modes_supported": "query",
		"code_challenge_methods_supported": "S256", "subject_types_supported": "public", "scopes_supported": "openid profile email",
		"acr_values_supported": "aal1 aal2",
	}
	for k, v := range lists {
		var got []string
		l, _ := d[k].([]any)
		for _, x := range l {
			got = append(got, x.(string))
		}
		if strings.Join(got, " ") != v {
			t.Errorf("%s = %v, want %s", k, got, v)
		}
	}
	// Nothing that tokend does not do (yet).
	for _, k := range []string{"request_parameter_supported", "registration_endpoint"} {
		if _, ok := d[k]; ok {
			t.Errorf("%s is advertised", k)
		}
	}
	if r.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Errorf("discovery Cache-Control %q", r.Header.Get("Cache-Control"))
	}
}

func TestReadyz(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	if r := s.Get(t, "/readyz"); r.Status != 200 {
		t.Fatalf("/readyz = %d %s", r.Status, r.Body)
	}
	s.Store.Close()
	r := s.Get(t, "/readyz")
	if r.Status != 503 || r.ErrorCode(t) != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("/readyz with the database closed = %d %s", r.Status, r.Body)
	}
	if r := s.Get(t, "/healthz"); r.Status != 200 {
		t.Fatalf("/healthz = %d while the database is down", r.Status)
	}
}

// TestInteropGoOIDC verifies tokend's tokens with an independent verifier
// (coreos/go-oidc) that only knows the JWKS URL, before and after a
// rotation.
func TestInteropGoOIDC(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	ctx := oidc.ClientContext(context.Background(), s.Client())
	ks := oidc.NewRemoteKeySet(ctx, s.URL+"/.well-known/jwks.json")
	v := oidc.NewVerifier(s.URL, ks, &oidc.Config{ClientID: s.URL, SupportedSigningAlgs: []string{"RS256", "EdDSA"},
		Now: s.Clock.Now})
	issue := func(alg string) string {
		tok, err := s.Issuer.Issue(tokens.Grant{Subject: "user-1", ClientID: "web", SessionID: "s", Alg: alg})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Raw
	}
	before := map[string]string{}
	for _, alg := range keys.Algs {
		before[alg] = issue(alg)
		tok, err := v.Verify(ctx, before[alg])
		if err != nil {
			t.Fatalf("go-oidc rejected a %s token: %v", alg, err)
		}
		if tok.Subject != "user-1" {
			t.Fatalf("subject %q", tok.Subject)
		}
	}
	s.Clock.Advance(s.Config.JWKSMaxAge + keys.PublishMargin)
	for _, alg := range keys.Algs {
		if _, err := s.Keys.Rotate(context.Background(), alg, keys.RotateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, issue(alg)); err != nil {
			t.Fatalf("go-oidc rejected a %s token after rotation: %v", alg, err)
		}
		if _, err := v.Verify(ctx, before[alg]); err != nil {
			t.Fatalf("a %s token signed before the rotation no longer verifies: %v", alg, err)
		}
	}
}

// TestTwoInstancesOnePostgres: two tokend servers on one fresh Postgres
// database run the schedule at once; one rotation happens, and after a
// reload both sign with the same kid and serve the same JWKS.
func TestTwoInstancesOnePostgres(t *testing.T) {
	url := dbtest.PostgresURL(t)
	c := clock.NewFake(tokendtest.T0)
	mk := masterkey.Generate()
	period := func(cfg *config.Config) {
		cfg.KeyRotationPeriod = time.Hour
		cfg.Issuer, cfg.Audience = "https://auth.example.test", "https://auth.example.test" // one issuer, two instances
	}
	a := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, url), Clock: c, MasterKey: mk, Configure: period})
	b := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, url), Clock: c, MasterKey: mk, Configure: period})
	for _, alg := range keys.Algs {
		sa, _ := a.Keys.Signer(alg)
		sb, _ := b.Keys.Signer(alg)
		if sa.KID != sb.KID {
			t.Fatalf("%s: the instances bootstrapped different keys", alg)
		}
	}
	c.Advance(time.Hour)
	var wg sync.WaitGroup
	var rotated [2][]string
	for i, s := range []*tokendtest.Server{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Keys.RotateDue(context.Background())
			if err != nil {
				t.Error(err)
			}
			rotated[i] = got
		}()
	}
	wg.Wait()
	if n := len(rotated[0]) + len(rotated[1]); n != 2 {
		t.Fatalf("rotations: %v, want exactly one per algorithm", rotated)
	}
	for _, s := range []*tokendtest.Server{a, b} {
		if err := s.Keys.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, alg := range keys.Algs {
		sa, _ := a.Keys.Signer(alg)
		sb, _ := b.Keys.Signer(alg)
		if sa.KID != sb.KID {
			t.Fatalf("%s: after reload a signs with %s, b with %s", alg, sa.KID, sb.KID)
		}
	}
	ja, jb := a.Get(t, "/.well-known/jwks.json"), b.Get(t, "/.well-known/jwks.json")
	if string(ja.Body) != string(jb.Body) || ja.Header.Get("ETag") != jb.Header.Get("ETag") {
		t.Fatal("the instances serve different JWKS")
	}
	// A token from either instance verifies against the other's JWKS.
	tok, err := a.Issuer.Issue(tokens.Grant{Subject: "u", ClientID: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verifier.Verify(tok.Raw, ""); err != nil {
		t.Fatalf("b rejects a's token: %v", err)
	}
	var set struct{ Keys []json.RawMessage }
	jb.JSON(t, &set)
	if len(set.Keys) != 6 {
		t.Fatalf("JWKS after one rotation has %d keys, want 6 (current, next, retired per algorithm)", len(set.Keys))
	}
}
