package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// mustVerify fails the test unless token verifies.
func mustVerify(t *testing.T, v *Verifier, token string) {
	t.Helper()
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// mustReject fails the test unless Verify fails with want.
func mustReject(t *testing.T, v *Verifier, token string, want error) {
	t.Helper()
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, want) {
		t.Fatalf("Verify error = %v, want %v", err, want)
	}
}

func wantRequests(t *testing.T, s *jwksServer, want int64) {
	t.Helper()
	if got := s.requests.Load(); got != want {
		t.Fatalf("JWKS requests = %d, want %d", got, want)
	}
}

func TestUnknownKidRefetchesOnceAndIsRateLimited(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1)
	clock := newFakeClock()
	v := newTestVerifier(t, jwks.URL, clock)

	mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
	wantRequests(t, jwks, 1)

	// Right after a fetch, an unknown kid does not refetch.
	mustReject(t, v, ks.rsa2.sign(t, claimsAt(clock.Now()), nil), ErrUnknownKey)
	wantRequests(t, jwks, 1)

	// Later, the first unknown kid refetches once, then fails.
	clock.Advance(DefaultRefetchInterval)
	mustReject(t, v, ks.rsa2.sign(t, claimsAt(clock.Now()), nil), ErrUnknownKey)
	wantRequests(t, jwks, 2)

	// Other unknown kids within the interval do not refetch.
	clock.Advance(DefaultRefetchInterval - time.Second)
	mustReject(t, v, ks.ed2.sign(t, claimsAt(clock.Now()), nil), ErrUnknownKey)
	mustReject(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), map[string]any{"kid": "made-up"}), ErrUnknownKey)
	wantRequests(t, jwks, 2)

	// Known kids never refetch.
	mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
	wantRequests(t, jwks, 2)

	// Once the interval has passed, one more refetch is allowed.
	clock.Advance(time.Second)
	mustReject(t, v, ks.ed2.sign(t, claimsAt(clock.Now()), nil), ErrUnknownKey)
	wantRequests(t, jwks, 3)
}

func TestRefetchIntervalIsConfigurable(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1)
	clock := newFakeClock()
	v, err := NewVerifier(VerifierConfig{
		Issuer: testIssuer, Audience: testAudience, JWKSURL: jwks.URL,
		Now: clock.Now, RefetchInterval: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	unknown := ks.rsa2.sign(t, claimsAt(clock.Now()), nil)
	mustReject(t, v, unknown, ErrUnknownKey) // cold load, no extra refetch
	wantRequests(t, jwks, 1)
	clock.Advance(5*time.Second - time.Millisecond)
	mustReject(t, v, unknown, ErrUnknownKey)
	wantRequests(t, jwks, 1)
	clock.Advance(time.Millisecond)
	mustReject(t, v, unknown, ErrUnknownKey)
	wantRequests(t, jwks, 2)
}

func TestRotatedInKeyIsPickedUpByRefetch(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1)
	clock := newFakeClock()
	v := newTestVerifier(t, jwks.URL, clock)
	mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))

	// tokend publishes new keys; the first token signed by one arrives
	// before our cache would have expired.
	jwks.setKeys(ks.rsa1, ks.rsa2, ks.ed1)
	clock.Advance(time.Minute)
	mustVerify(t, v, ks.rsa2.sign(t, claimsAt(clock.Now()), nil))
	wantRequests(t, jwks, 2)
	// The refetch brought the Ed25519 key too.
	mustVerify(t, v, ks.ed1.sign(t, claimsAt(clock.Now()), nil))
	mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
	wantRequests(t, jwks, 2)
}

func TestRevokedKeyIsRejectedAfterCacheRefresh(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1, ks.ed1)
	clock := newFakeClock()
	v := newTestVerifier(t, jwks.URL, clock)
	revoked := ks.rsa1.sign(t, claimsAt(clock.Now()), nil)
	kept := ks.ed1.sign(t, claimsAt(clock.Now()), nil)
	mustVerify(t, v, revoked)

	jwks.setKeys(ks.ed1) // tokend keys revoke
	// Until max-age has passed, we cannot know.
	clock.Advance(testMaxAge - time.Second)
	mustVerify(t, v, revoked)
	wantRequests(t, jwks, 1)

	clock.Advance(time.Second)
	mustReject(t, v, revoked, ErrUnknownKey)
	// The revalidation was the fetch; no second one for the unknown kid.
	wantRequests(t, jwks, 2)
	mustVerify(t, v, kept)
	mustReject(t, v, revoked, ErrUnknownKey)
	wantRequests(t, jwks, 2)
}

func TestStaleCacheRevalidatesWithETag(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1)
	clock := newFakeClock()
	v := newTestVerifier(t, jwks.URL, clock)
	token := func() string { return ks.rsa1.sign(t, claimsAt(clock.Now()), nil) }
	mustVerify(t, v, token())
	if got := jwks.conditional.Load(); got != 0 {
		t.Fatalf("first request was conditional")
	}

	clock.Advance(testMaxAge)
	mustVerify(t, v, token())
	wantRequests(t, jwks, 2)
	if got := jwks.notModified.Load(); got != 1 {
		t.Fatalf("304 answers = %d, want 1", got)
	}

	// The 304's max-age starts a new lifetime.
	clock.Advance(testMaxAge - time.Second)
	mustVerify(t, v, token())
	wantRequests(t, jwks, 2)
	clock.Advance(time.Second)
	mustVerify(t, v, token())
	wantRequests(t, jwks, 3)
	if got := jwks.notModified.Load(); got != 2 {
		t.Fatalf("304 answers = %d, want 2", got)
	}
}

func TestCacheLifetimeFollowsMaxAge(t *testing.T) {
	tests := []struct {
		cacheControl string
		lifetime     time.Duration
	}{
		{"public, max-age=60", time.Minute},
		{"max-age=1", 30 * time.Second},            // lower bound
		{"max-age=604800", 24 * time.Hour},         // upper bound
		{"", 5 * time.Minute},                      // default
		{"public", 5 * time.Minute},                // default
		{"no-cache", 30 * time.Second},             // lower bound
		{`max-age="120", public`, 2 * time.Minute}, // quoted
	}
	ks := testKeys()
	for _, tt := range tests {
		t.Run(tt.cacheControl, func(t *testing.T) {
			jwks := newJWKSServer(t, ks.rsa1)
			jwks.set(func(s *jwksServer) { s.cacheControl = tt.cacheControl })
			clock := newFakeClock()
			v := newTestVerifier(t, jwks.URL, clock)
			mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))

			clock.Advance(tt.lifetime - time.Second)
			mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
			wantRequests(t, jwks, 1)
			clock.Advance(time.Second)
			mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
			wantRequests(t, jwks, 2)
		})
	}
}

func TestJWKSFailureKeepsCachedKeys(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(s *jwksServer)
		// countable is false when the failure means no request reaches the
		// handler (closed server).
		countable bool
	}{
		{"500", func(s *jwksServer) { s.set(func(s *jwksServer) { s.status = http.StatusInternalServerError }) }, true},
		{"404", func(s *jwksServer) { s.set(func(s *jwksServer) { s.status = http.StatusNotFound }) }, true},
		{"HTML", func(s *jwksServer) { s.set(func(s *jwksServer) { s.body = "<html>bad gateway</html>" }) }, true},
		{"JSON without keys", func(s *jwksServer) { s.set(func(s *jwksServer) { s.body = `{"error":"oops"}` }) }, true},
		{"truncated JSON", func(s *jwksServer) { s.set(func(s *jwksServer) { s.body = `{"keys":[{"kty":"RSA",` }) }, true},
		{"body over 1 MiB", func(s *jwksServer) {
			s.set(func(s *jwksServer) { s.body = `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}` })
		}, true},
		{"server closed", func(s *jwksServer) { s.Close() }, false},
	}
	ks := testKeys()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwks := newJWKSServer(t, ks.rsa1, ks.ed1)
			clock := newFakeClock()
			v := newTestVerifier(t, jwks.URL, clock)
			mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))

			tt.break_(jwks)
			clock.Advance(testMaxAge)
			mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
			mustVerify(t, v, ks.ed1.sign(t, claimsAt(clock.Now()), nil))
			mustReject(t, v, ks.rsa2.sign(t, claimsAt(clock.Now()), nil), ErrUnknownKey)
			if !tt.countable {
				return
			}
			// One failed attempt, then a pause before the next one.
			wantRequests(t, jwks, 2)
			clock.Advance(DefaultRefetchInterval - time.Second)
			mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
			wantRequests(t, jwks, 2)
			clock.Advance(time.Second)
			mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
			wantRequests(t, jwks, 3)
		})
	}
}

func TestColdCacheWithJWKSDown(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1)
	jwks.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	clock := newFakeClock()
	v := newTestVerifier(t, jwks.URL, clock)
	token := ks.rsa1.sign(t, claimsAt(clock.Now()), nil)

	if err := v.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh succeeded against a failing JWKS")
	}
	mustReject(t, v, token, ErrKeysUnavailable)
	wantRequests(t, jwks, 2)

	// Without keys there is no pause: the first request after the issuer
	// comes back succeeds.
	jwks.set(func(s *jwksServer) { s.status = 0 })
	mustVerify(t, v, token)
	wantRequests(t, jwks, 3)
}

func TestFetchTimeout(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1)
	gate := make(chan struct{}) // never closed: the server hangs
	jwks.set(func(s *jwksServer) { s.gate = gate })
	clock := newFakeClock()
	v, err := NewVerifier(VerifierConfig{
		Issuer: testIssuer, Audience: testAudience, JWKSURL: jwks.URL,
		Now: clock.Now, FetchTimeout: 50 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify error = %v, want ErrKeysUnavailable after a timeout", err)
	}
}

func TestConcurrentMissesShareOneFetch(t *testing.T) {
	const callers = 20
	ks := testKeys()
	tests := []struct {
		name      string
		warm      bool  // load rsa1 first, so rsa2 is an unknown kid
		wantTotal int64 // JWKS requests at the end
	}{
		{"cold cache", false, 1},
		{"unknown kid", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwks := newJWKSServer(t, ks.rsa1)
			clock := newFakeClock()
			v := newTestVerifier(t, jwks.URL, clock)
			if tt.warm {
				mustVerify(t, v, ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
				clock.Advance(DefaultRefetchInterval)
			}
			jwks.setKeys(ks.rsa1, ks.rsa2)
			token := ks.rsa2.sign(t, claimsAt(clock.Now()), nil)

			// Hold the JWKS response until every caller waits on the fetch.
			gate := make(chan struct{})
			jwks.set(func(s *jwksServer) { s.gate = gate })
			waiting := make(chan struct{}, callers)
			v.keys.mu.Lock()
			v.keys.onWait = func() { waiting <- struct{}{} }
			v.keys.mu.Unlock()

			errs := make(chan error, callers)
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					_, err := v.Verify(context.Background(), token)
					errs <- err
				})
			}
			watchdog := time.After(10 * time.Second)
			for range callers {
				select {
				case <-waiting:
				case <-watchdog:
					t.Fatal("callers did not all wait for the fetch")
				}
			}
			close(gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("Verify: %v", err)
				}
			}
			wantRequests(t, jwks, tt.wantTotal)
		})
	}
}

func TestParseJWKS(t *testing.T) {
	ks := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// jwk marshals k after change, as a JSON object.
	jwk := func(k jose.JSONWebKey, change func(*jose.JSONWebKey)) string {
		if change != nil {
			change(&k)
		}
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	set := func(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }
	rsa1, ed1 := jwk(ks.rsa1.jwk, nil), jwk(ks.ed1.jwk, nil)

	tests := []struct {
		name    string
		body    string
		want    []string // kids kept, in order
		wantErr bool
	}{
		{"RSA and Ed25519", set(rsa1, ed1), []string{ks.rsa1.kid, ks.ed1.kid}, false},
		{"empty set", `{"keys":[]}`, []string{}, false},
		{"no alg: inferred from the key type", set(jwk(ks.rsa1.jwk, func(k *jose.JSONWebKey) { k.Algorithm = "" })), []string{ks.rsa1.kid}, false},
		{"no use", set(jwk(ks.ed1.jwk, func(k *jose.JSONWebKey) { k.Use = "" })), []string{ks.ed1.kid}, false},
		{"use enc skipped", set(rsa1, jwk(ks.rsa2.jwk, func(k *jose.JSONWebKey) { k.Use = "enc" })), []string{ks.rsa1.kid}, false},
		{"RSA key for PS256 skipped", set(jwk(ks.rsa1.jwk, func(k *jose.JSONWebKey) { k.Algorithm = "PS256" }), ed1), []string{ks.ed1.kid}, false},
		{"Ed25519 key for RS256 skipped", set(jwk(ks.ed1.jwk, func(k *jose.JSONWebKey) { k.Algorithm = "RS256" }), rsa1), []string{ks.rsa1.kid}, false},
		{"RSA 1024 skipped", set(jwk(jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small", Algorithm: "RS256", Use: "sig"}, nil), rsa1), []string{ks.rsa1.kid}, false},
		{"private key skipped", set(jwk(jose.JSONWebKey{Key: ks.rsa2.priv, KeyID: "private", Algorithm: "RS256", Use: "sig"}, nil), rsa1), []string{ks.rsa1.kid}, false},
		{"symmetric key skipped", set(`{"kty":"oct","kid":"hmac","k":"c2VjcmV0","alg":"HS256"}`, rsa1), []string{ks.rsa1.kid}, false},
		{"EC key skipped", set(jwk(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "ec", Algorithm: "ES256", Use: "sig"}, nil), rsa1), []string{ks.rsa1.kid}, false},
		{"no kid skipped", set(jwk(ks.rsa2.jwk, func(k *jose.JSONWebKey) { k.KeyID = "" }), ed1), []string{ks.ed1.kid}, false},
		{"unknown kty skipped", set(`{"kty":"XYZ","kid":"x"}`, rsa1), []string{ks.rsa1.kid}, false},
		{"broken RSA key skipped", set(`{"kty":"RSA","kid":"broken","e":"AQAB"}`, rsa1), []string{ks.rsa1.kid}, false},
		{"bad Ed25519 key skipped", set(`{"kty":"OKP","crv":"Ed25519","kid":"short","x":"AAAA"}`, ed1), []string{ks.ed1.kid}, false},
		{"key not an object skipped", set(`"nope"`, `42`, rsa1), []string{ks.rsa1.kid}, false},
		{"not JSON", "<html>", nil, true},
		{"no keys member", `{}`, nil, true},
		{"keys null", `{"keys":null}`, nil, true},
		{"keys not a list", `{"keys":"x"}`, nil, true},
		{"trailing garbage", set(rsa1) + "x", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseJWKS([]byte(tt.body), testLogger(t))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseJWKS succeeded with %d keys, want an error", len(got.Keys))
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			kids := []string{}
			for _, k := range got.Keys {
				kids = append(kids, k.KeyID)
				if k.Algorithm != "RS256" && k.Algorithm != "EdDSA" {
					t.Errorf("key %s has alg %q", k.KeyID, k.Algorithm)
				}
			}
			if !slices.Equal(kids, tt.want) {
				t.Errorf("kids = %v, want %v", kids, tt.want)
			}
		})
	}
}

func TestCacheMaxAge(t *testing.T) {
	tests := []struct {
		header []string
		want   time.Duration
	}{
		{nil, 5 * time.Minute},
		{[]string{"public, max-age=300"}, 5 * time.Minute},
		{[]string{"max-age=3600"}, time.Hour},
		{[]string{"MAX-AGE=90"}, 90 * time.Second},
		{[]string{"max-age=0"}, 30 * time.Second},
		{[]string{"max-age=-5"}, 5 * time.Minute},
		{[]string{"max-age=abc"}, 5 * time.Minute},
		{[]string{"max-age=99999999999999999999"}, 5 * time.Minute},
		{[]string{"max-age=9999999999"}, 24 * time.Hour},
		{[]string{"no-store"}, 30 * time.Second},
		{[]string{"public", "max-age=60"}, time.Minute},
		{[]string{" max-age = 45 "}, 45 * time.Second},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.header, "|"), func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.header {
				h.Add("Cache-Control", v)
			}
			if got := cacheMaxAge(h); got != tt.want {
				t.Errorf("cacheMaxAge(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestNewVerifierValidatesConfig(t *testing.T) {
	ok := VerifierConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: "https://issuer.test/.well-known/jwks.json"}
	tests := []struct {
		name   string
		change func(*VerifierConfig)
		ok     bool
	}{
		{"complete", func(*VerifierConfig) {}, true},
		{"no issuer", func(c *VerifierConfig) { c.Issuer = "" }, false},
		{"no audience", func(c *VerifierConfig) { c.Audience = "" }, false},
		{"no JWKS URL", func(c *VerifierConfig) { c.JWKSURL = "" }, false},
		{"relative JWKS URL", func(c *VerifierConfig) { c.JWKSURL = "/jwks.json" }, false},
		{"file JWKS URL", func(c *VerifierConfig) { c.JWKSURL = "file:///etc/jwks.json" }, false},
		{"negative leeway", func(c *VerifierConfig) { c.Leeway = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			cfg.Logger = slog.New(slog.DiscardHandler)
			tt.change(&cfg)
			_, err := NewVerifier(cfg)
			if (err == nil) != tt.ok {
				t.Errorf("NewVerifier error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
