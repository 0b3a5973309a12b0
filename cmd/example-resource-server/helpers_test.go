package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "https://api.test"
	testLeeway   = 30 * time.Second
	testTTL      = 15 * time.Minute
	testMaxAge   = 300 * time.Second
)

// testStart is the fake clock's start; far from the real date on purpose.
func testStart() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }

// testKey is a signing key as tokend would hold it, with its public JWK.
type testKey struct {
	alg  string
	kid  string
	priv crypto.Signer
	jwk  jose.JSONWebKey // public, with kid, alg and use
}

// newTestKey names the key by its RFC 7638 thumbprint, as tokend does.
func newTestKey(priv crypto.Signer, alg string) testKey {
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		panic(err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return testKey{alg: alg, kid: jwk.KeyID, priv: priv, jwk: jwk}
}

// keySet is generated once per test binary: RSA key generation is slow.
type keySet struct {
	rsa1, rsa2, ed1, ed2 testKey
}

var testKeys = sync.OnceValue(func() keySet {
	rsaKey := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	edKey := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	return keySet{
		rsa1: newTestKey(rsaKey(), "RS256"),
		rsa2: newTestKey(rsaKey(), "RS256"),
		ed1:  newTestKey(edKey(), "EdDSA"),
		ed2:  newTestKey(edKey(), "EdDSA"),
	}
})

// claimsAt is a valid RFC 9068 payload issued at now.
func claimsAt(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       testIssuer,
		"sub":       "user-1",
		"aud":       testAudience,
		"exp":       now.Add(testTTL).Unix(),
		"iat":       now.Unix(),
		"jti":       "jti-1",
		"client_id": "mobile",
		"sid":       "session-1",
		"scope":     "openid profile",
	}
}

// sign signs claims with k, with header typ at+jwt and kid k.kid. header
// entries override those; a nil value deletes the entry.
func (k testKey) sign(tb testing.TB, claims jwt.MapClaims, header map[string]any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = k.kid
	for name, v := range header {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return s
}

// fakeClock is the injected clock; tests move it, nothing sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: testStart()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jwksServer is a JWKS endpoint whose behaviour the test controls. It
// answers like tokend: Cache-Control, a strong ETag, 304 on If-None-Match.
type jwksServer struct {
	*httptest.Server

	mu           sync.Mutex
	keys         []jose.JSONWebKey
	cacheControl string
	status       int           // when not 0, answer this status and no JWKS
	body         string        // when not "", answer 200 with this body
	gate         chan struct{} // when not nil, hold each request until closed

	requests    atomic.Int64 // all requests
	conditional atomic.Int64 // requests with If-None-Match
	notModified atomic.Int64 // 304 answers
}

func newJWKSServer(tb testing.TB, keys ...testKey) *jwksServer {
	tb.Helper()
	s := &jwksServer{cacheControl: "public, max-age=300"}
	s.setKeys(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...testKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = s.keys[:0]
	for _, k := range keys {
		s.keys = append(s.keys, k.jwk)
	}
}

// set changes the server's behaviour under its lock.
func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *jwksServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	keys := append([]jose.JSONWebKey(nil), s.keys...)
	cacheControl, status, body, gate := s.cacheControl, s.status, s.body, s.gate
	s.mu.Unlock()

	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		http.Error(w, "oops", status)
		return
	}
	if body != "" {
		w.Write([]byte(body))
		return
	}
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(doc)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if cacheControl != "" {
		w.Header().Set("Cache-Control", cacheControl)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		s.conditional.Add(1)
		if inm == etag {
			s.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Write(doc)
}

// newTestVerifier returns a Verifier for testIssuer and testAudience on the
// fake clock, with its logs going to the test.
func newTestVerifier(tb testing.TB, jwksURL string, clock *fakeClock) *Verifier {
	tb.Helper()
	v, err := NewVerifier(VerifierConfig{
		Issuer:   testIssuer,
		Audience: testAudience,
		JWKSURL:  jwksURL,
		Leeway:   testLeeway,
		Logger:   testLogger(tb),
		Now:      clock.Now,
	})
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
