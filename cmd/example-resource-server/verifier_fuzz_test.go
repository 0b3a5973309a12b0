package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seeds in testdata/fuzz/FuzzVerify")

const corpusDir = "testdata/fuzz/FuzzVerify"

// fuzzEdKey is derived from a fixed seed, so tokens in the committed corpus
// stay genuinely signed across runs.
func fuzzEdKey() testKey {
	seed := sha256.Sum256([]byte("tokend example-resource-server FuzzVerify key"))
	return newTestKey(ed25519.NewKeyFromSeed(seed[:]), "EdDSA")
}

// newFuzzVerifier verifies against a JWKS holding keys, on a clock that
// never moves: after the first load no input can cause another fetch.
func newFuzzVerifier(tb testing.TB, keys ...testKey) *Verifier {
	tb.Helper()
	jwks := newJWKSServer(tb, keys...)
	v, err := NewVerifier(VerifierConfig{
		Issuer: testIssuer, Audience: testAudience, JWKSURL: jwks.URL, Leeway: testLeeway,
		Now: newFakeClock().Now, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// corpusSeeds are the committed seeds: each is deterministic.
func corpusSeeds(tb testing.TB) map[string]string {
	ed := fuzzEdKey()
	now := testStart()
	valid := ed.sign(tb, claimsAt(now), nil)
	parts := strings.Split(valid, ".")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return map[string]string{
		"valid-eddsa":         valid,
		"alg-none":            unsignedToken(tb, claimsAt(now), ed.kid),
		"alg-none-signed":     b64(`{"alg":"none","typ":"at+jwt","kid":"`+ed.kid+`"}`) + "." + parts[1] + "." + parts[2],
		"hs256-ed25519-key":   hmacToken(tb, claimsAt(now), ed.kid, []byte(ed.jwk.Key.(ed25519.PublicKey))),
		"typ-jwt":             ed.sign(tb, claimsAt(now), map[string]any{"typ": "JWT"}),
		"unknown-kid":         ed.sign(tb, claimsAt(now), map[string]any{"kid": "unknown"}),
		"tampered":            parts[0] + "." + b64(`{"sub":"admin"}`) + "." + parts[2],
		"garbage":             "\x00\xff not a token \u2603",
		"empty-segments":      "..",
		"empty-signature":     parts[0] + "." + parts[1] + ".",
		"header-only":         parts[0],
		"json-types":          b64(`{"alg":["EdDSA"],"kid":7,"typ":null}`) + "." + b64(`{"exp":"soon","aud":[1],"iat":1e400}`) + ".c2ln",
		"huge-base64":         "eyJ" + strings.Repeat("QUFB", 16<<10) + ".e30.c2ln",
		"huge-under-limit":    parts[0] + "." + b64(`{"pad":"`+strings.Repeat("x", 12000)+`"}`) + "." + parts[2],
		"many-dots":           strings.Repeat(".", 1000),
		"padded-base64":       parts[0] + "==." + parts[1] + "." + parts[2],
		"standard-base64":     strings.NewReplacer("-", "+", "_", "/").Replace(valid),
		"duplicate-alg-field": b64(`{"alg":"EdDSA","alg":"none","typ":"at+jwt","kid":"`+ed.kid+`"}`) + "." + parts[1] + ".",
	}
}

func FuzzVerify(f *testing.F) {
	ks := testKeys()
	ed := fuzzEdKey()
	keys := []testKey{ed, ks.rsa1}
	v := newFuzzVerifier(f, keys...)

	// Runtime seeds that depend on the generated RSA key.
	now := testStart()
	der, err := x509.MarshalPKIXPublicKey(ks.rsa1.priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ks.rsa1.sign(f, claimsAt(now), nil))
	f.Add(hmacToken(f, claimsAt(now), ks.rsa1.kid, der))
	f.Add(ks.rsa1.sign(f, claimsAt(now), map[string]any{"kid": ed.kid}))
	f.Add(ed.sign(f, claimsAt(now), map[string]any{"kid": ks.rsa1.kid}))

	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := v.Verify(context.Background(), raw)
		if err != nil {
			if claims != nil {
				t.Fatalf("Verify returned claims with error %v", err)
			}
			if !isSentinel(err) {
				t.Fatalf("Verify error %v wraps none of the sentinels", err)
			}
			if errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("keys unavailable: %v", err)
			}
			return
		}
		if !signedBy(raw, keys) {
			t.Fatalf("Verify accepted %q, which no test key signed", raw)
		}
		if claims.Subject == "" || claims.ClientID == "" || claims.ID == "" ||
			!slices.Contains(claims.Audience, testAudience) || claims.IssuedAt.IsZero() || claims.ExpiresAt.IsZero() {
			t.Fatalf("Verify accepted incomplete claims %+v", claims)
		}
	})
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrExpired, ErrUnknownKey, ErrInvalid, ErrKeysUnavailable} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// signedBy checks, with the standard library only, that raw carries a
// signature of one of keys over its first two segments.
func signedBy(raw string, keys []testKey) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &h) != nil {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	signed := []byte(parts[0] + "." + parts[1])
	for _, k := range keys {
		switch pub := k.priv.Public().(type) {
		case *rsa.PublicKey:
			sum := sha256.Sum256(signed)
			if h.Alg == "RS256" && rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil {
				return true
			}
		case ed25519.PublicKey:
			if h.Alg == "EdDSA" && ed25519.Verify(pub, signed, sig) {
				return true
			}
		}
	}
	return false
}

// TestFuzzCorpus keeps the committed seeds in step with corpusSeeds (run
// with -update-corpus to rewrite them) and checks that the valid one is
// still accepted, so the fuzzer starts from a token that gets all the way
// through verification.
func TestFuzzCorpus(t *testing.T) {
	seeds := corpusSeeds(t)
	if *updateCorpus {
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range seeds {
			if err := os.WriteFile(filepath.Join(corpusDir, name), corpusFile(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, s := range seeds {
		got, err := os.ReadFile(filepath.Join(corpusDir, name))
		if err != nil {
			t.Errorf("seed %s: %v (run go test -run TestFuzzCorpus -update-corpus)", name, err)
			continue
		}
		if string(got) != string(corpusFile(s)) {
			t.Errorf("seed %s is stale (run go test -run TestFuzzCorpus -update-corpus)", name)
		}
	}

	v := newFuzzVerifier(t, fuzzEdKey())
	if _, err := v.Verify(context.Background(), seeds["valid-eddsa"]); err != nil {
		t.Errorf("valid-eddsa seed: %v", err)
	}
}

// corpusFile is the "go test fuzz v1" encoding of one string argument.
func corpusFile(s string) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\nstring(%q)\n", s)
}
