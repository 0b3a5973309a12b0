package httpapi

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"net/http"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/tokens"
)

// benchKeys bootstraps a key manager on a throwaway SQLite store.
func benchKeys(b *testing.B) *keys.Manager {
	b.Helper()
	m := keys.NewManager(keys.Config{Store: dbtest.SQLite(b), Sealer: masterkey.Generate().Sealer(masterkey.PurposeSigningKeys),
		JWKSMaxAge: 5 * time.Minute, AccessTokenTTL: 15 * time.Minute})
	if err := m.Bootstrap(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m
}

// benchSign compares the full access-token signing (claims encoding,
// base64, signature) with the raw signature of a digest of the same size:
// the overhead of token assembly is the difference.
func benchSign(b *testing.B, alg string, raw func(signer crypto.Signer, msg []byte)) {
	m := benchKeys(b)
	iss := tokens.NewIssuer(tokens.IssuerConfig{Keys: m, Issuer: "https://auth.example.com", Audience: "https://api.example.com",
		Alg: alg, TTL: 15 * time.Minute})
	g := tokens.Grant{Subject: "3f1c2d4e-8a7b-4c6d-9e0f-1a2b3c4d5e6f", ClientID: "web", SessionID: "6b8f0c2e-1d3a-4f5b-8c7d-9e0a1b2c3d4e"}
	tok, err := iss.Issue(g)
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := m.Signer(alg)
	msg := []byte(tok.Raw[:len(tok.Raw)-1]) // a signing input of realistic length
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw(signer.Key, msg)
		}
	})
	b.Run("token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := iss.Issue(g); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSignRS256: baseline rsa.SignPKCS1v15 over a SHA-256 digest.
func BenchmarkSignRS256(b *testing.B) {
	benchSign(b, keys.RS256, func(s crypto.Signer, msg []byte) {
		d := sha256.Sum256(msg)
		if _, err := rsa.SignPKCS1v15(rand.Reader, s.(*rsa.PrivateKey), crypto.SHA256, d[:]); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkSignEdDSA: baseline ed25519.Sign.
func BenchmarkSignEdDSA(b *testing.B) {
	benchSign(b, keys.EdDSA, func(s crypto.Signer, msg []byte) {
		_ = ed25519.Sign(s.(ed25519.PrivateKey), msg)
	})
}

// nopWriter is a reusable ResponseWriter: the benchmark measures what the
// handler allocates, not the writer.
type nopWriter struct {
	h      http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkJWKS serves the JWKS from its precomputed body (200) and
// answers a matching If-None-Match (304). Both must allocate nothing.
func BenchmarkJWKS(b *testing.B) {
	m := benchKeys(b)
	s := New(Config{Issuer: "https://auth.example.com", JWKSMaxAge: 5 * time.Minute, Keys: m})
	req, _ := http.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
	w := &nopWriter{h: http.Header{}}
	b.Run("200", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(m.JWKS().Body)))
		for b.Loop() {
			clear(w.h)
			s.jwks(w, req)
		}
	})
	cond, _ := http.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
	cond.Header.Set("If-None-Match", m.JWKS().ETag)
	b.Run("304", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			s.jwks(w, cond)
		}
		if w.status != http.StatusNotModified {
			b.Fatalf("status %d", w.status)
		}
	})
}

// TestJWKSAllocatesNothing turns the benchmark's promise into a test.
func TestJWKSAllocatesNothing(t *testing.T) {
	m := keys.NewManager(keys.Config{Store: dbtest.SQLite(t), Sealer: masterkey.Generate().Sealer(masterkey.PurposeSigningKeys),
		JWKSMaxAge: 5 * time.Minute, AccessTokenTTL: 15 * time.Minute})
	if err := m.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Issuer: "https://auth.example.com", JWKSMaxAge: 5 * time.Minute, Keys: m})
	req, _ := http.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
	w := &nopWriter{h: http.Header{}}
	s.jwks(w, req) // let the header map grow its buckets once
	if n := testing.AllocsPerRun(100, func() { clear(w.h); s.jwks(w, req) }); n != 0 {
		t.Fatalf("serving the JWKS allocates %v times per request", n)
	}
}
