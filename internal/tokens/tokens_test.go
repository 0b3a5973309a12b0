package tokens_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/tokens"
)

const issuer = "https://auth.example.com"

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func setup(t testing.TB) (*keys.Manager, *clock.Fake, *tokens.Issuer, *tokens.Verifier) {
	t.Helper()
	c := clock.NewFake(t0)
	m := keys.NewManager(keys.Config{Store: dbtest.SQLite(t), Sealer: masterkey.Generate().Sealer(masterkey.PurposeSigningKeys),
		Now: c.Now, JWKSMaxAge: 5 * time.Minute, AccessTokenTTL: 15 * time.Minute})
	if err := m.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	iss := tokens.NewIssuer(tokens.IssuerConfig{Keys: m, Issuer: issuer, Audience: "https://api.example.com", Alg: keys.RS256,
		TTL: 15 * time.Minute, Now: c.Now})
	return m, c, iss, tokens.NewVerifier(m, issuer, c.Now, 0)
}

func segments(t *testing.T, raw string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var h, c map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		t.Fatal("token segments are not JSON")
	}
	return h, c
}

func TestIssueVerify(t *testing.T) {
	m, _, iss, v := setup(t)
	for _, alg := range keys.Algs {
		t.Run(alg, func(t *testing.T) {
			tok, err := iss.Issue(tokens.Grant{Subject: "user-1", ClientID: "web", SessionID: "fam-1", Scope: "openid email", Alg: alg})
			if err != nil {
				t.Fatal(err)
			}
			h, c := segments(t, tok.Raw)
			signer, _ := m.Signer(alg)
			if h["alg"] != alg || h["typ"] != "at+jwt" || h["kid"] != signer.KID {
				t.Fatalf("header %v", h)
			}
			for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid", "scope"} {
				if _, ok := c[k]; !ok {
					t.Fatalf("claim %s missing: %v", k, c)
				}
			}
			if c["aud"] != "https://api.example.com" || c["exp"].(float64)-c["iat"].(float64) != 900 {
				t.Fatalf("claims %v", c)
			}
			got, err := v.Verify(tok.Raw, "https://api.example.com")
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != "user-1" || got.ClientID != "web" || got.SessionID != "fam-1" || got.Scope != "openid email" || got.ID != tok.ID {
				t.Fatalf("verified claims %+v", got)
			}
		})
	}
	multi, err := iss.Issue(tokens.Grant{Subject: "u", ClientID: "c", Audience: []string{"a1", "a2"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, c := segments(t, multi.Raw); len(c["aud"].([]any)) != 2 {
		t.Fatalf("aud with two values: %v", c["aud"])
	}
	if _, err := v.Verify(multi.Raw, "a2"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 500 {
		tok, _ := iss.Issue(tokens.Grant{Subject: "u", ClientID: "c"})
		if seen[tok.ID] {
			t.Fatal("duplicate jti")
		}
		seen[tok.ID] = true
	}
}

// forge signs arbitrary header and claims with the given method and key.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRejections(t *testing.T) {
	m, c, iss, v := setup(t)
	rs, _ := m.Signer(keys.RS256)
	ed, _ := m.Signer(keys.EdDSA)
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": issuer, "sub": "u", "aud": "https://api.example.com", "exp": t0.Add(time.Hour).Unix(),
			"iat": t0.Unix(), "jti": "j", "client_id": "web"}
	}
	rsHdr := map[string]any{"kid": rs.KID, "typ": "at+jwt"}
	pubDER, _ := x509.MarshalPKIXPublicKey(rs.Key.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	valid, _ := iss.Issue(tokens.Grant{Subject: "u", ClientID: "web"})
	parts := strings.Split(valid.Raw, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issuer+`","sub":"admin","aud":"https://api.example.com","exp":9999999999,"iat":1,"jti":"x","client_id":"web"}`)) + "." + parts[2]
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+rs.KID+`"}`)) + "." + parts[1] + "."
	withClaims := func(mut func(jwt.MapClaims)) jwt.MapClaims { cl := good(); mut(cl); return cl }

	tests := map[string]string{
		"tampered payload":           tampered,
		"alg none":                   noneTok,
		"alg none via library":       forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, rsHdr, good()),
		"HS256 with public key PEM":  forge(t, jwt.SigningMethodHS256, pubPEM, rsHdr, good()),
		"HS256 with public key DER":  forge(t, jwt.SigningMethodHS256, pubDER, rsHdr, good()),
		"unknown kid":                forge(t, jwt.SigningMethodRS256, rs.Key, map[string]any{"kid": "nope", "typ": "at+jwt"}, good()),
		"no kid":                     forge(t, jwt.SigningMethodRS256, rs.Key, map[string]any{"typ": "at+jwt"}, good()),
		"typ JWT":                    forge(t, jwt.SigningMethodRS256, rs.Key, map[string]any{"kid": rs.KID, "typ": "JWT"}, good()),
		"no typ":                     forge(t, jwt.SigningMethodRS256, rs.Key, map[string]any{"kid": rs.KID, "typ": nil}, good()),
		"crit header":                forge(t, jwt.SigningMethodRS256, rs.Key, map[string]any{"kid": rs.KID, "typ": "at+jwt", "crit": []string{"x"}}, good()),
		"EdDSA alg with the RSA kid": forge(t, jwt.SigningMethodEdDSA, ed.Key, rsHdr, good()),
		"wrong issuer":               forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })),
		"wrong audience":             forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { c["aud"] = "https://other.example" })),
		"expired":                    forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Second).Unix() })),
		"no exp":                     forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { delete(c, "exp") })),
		"issued in the future":       forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { c["iat"] = t0.Add(time.Hour).Unix() })),
		"not yet valid":              forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { c["nbf"] = t0.Add(time.Hour).Unix() })),
		"no client_id":               forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { delete(c, "client_id") })),
		"no sub":                     forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, withClaims(func(c jwt.MapClaims) { delete(c, "sub") })),
		"signed by a stranger's key": forge(t, jwt.SigningMethodEdDSA, ed25519.NewKeyFromSeed(make([]byte, 32)), map[string]any{"kid": ed.KID, "typ": "at+jwt"}, good()),
		"garbage":                    "not.a.token",
		"empty":                      "",
		"two segments":               parts[0] + "." + parts[1],
		"huge":                       strings.Repeat("a", 9000),
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(raw, "https://api.example.com"); !errors.Is(err, tokens.ErrInvalidToken) {
				t.Fatalf("accepted (err = %v)", err)
			}
		})
	}
	// The same claims signed properly pass, so each rejection above is
	// about the one thing changed.
	if _, err := v.Verify(forge(t, jwt.SigningMethodRS256, rs.Key, rsHdr, good()), "https://api.example.com"); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}
	// Expiry follows the injected clock.
	c.Advance(15*time.Minute + time.Second)
	if _, err := v.Verify(valid.Raw, ""); !errors.Is(err, tokens.ErrInvalidToken) {
		t.Fatal("an expired token verified")
	}
	_ = rsa.PublicKey{}
}

func TestNoSigningKey(t *testing.T) {
	iss := tokens.NewIssuer(tokens.IssuerConfig{Keys: keys.NewManager(keys.Config{}), Issuer: issuer, Alg: keys.EdDSA, TTL: time.Minute})
	if _, err := iss.Issue(tokens.Grant{Subject: "u", ClientID: "c"}); !errors.Is(err, tokens.ErrNoSigningKey) {
		t.Fatalf("issue without keys: %v", err)
	}
}
