package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// with returns claims at now with the given changes; a nil value deletes.
func with(now time.Time, changes map[string]any) jwt.MapClaims {
	c := claimsAt(now)
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// unsignedToken builds a token with alg none, typ at+jwt and the given kid.
func unsignedToken(t testing.TB, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = kid
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hmacToken signs with HS256 and secret: the classic confusion attack uses
// the issuer's public key as the secret.
func hmacToken(t testing.TB, claims jwt.MapClaims, kid string, secret []byte) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = kid
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replacePayload swaps a signed token's payload, keeping header and signature.
func replacePayload(t *testing.T, token string, claims jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// replaceHeader swaps a signed token's header, keeping payload and signature.
func replaceHeader(t *testing.T, token string, header map[string]any, sig string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b) + "." + parts[1] + "." + sig
}

func TestVerify(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1, ks.ed1)

	rsaPub := ks.rsa1.priv.Public()
	pkix, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	pkixPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rsaPub.(*rsa.PublicKey))})
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token func(t *testing.T, now time.Time) string
		want  error // nil: accepted
	}{
		// Accepted.
		{"RS256", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), nil)
		}, nil},
		{"EdDSA", func(t *testing.T, now time.Time) string {
			return ks.ed1.sign(t, claimsAt(now), nil)
		}, nil},
		{"typ application/at+jwt", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), map[string]any{"typ": "application/at+jwt"})
		}, nil},
		{"typ in upper case", func(t *testing.T, now time.Time) string {
			return ks.ed1.sign(t, claimsAt(now), map[string]any{"typ": "AT+JWT"})
		}, nil},
		{"aud list containing ours", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"aud": []string{"https://other.test", testAudience}}), nil)
		}, nil},
		{"expired within leeway", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iat": now.Add(-testTTL).Unix(), "exp": now.Add(-testLeeway + time.Second).Unix()}), nil)
		}, nil},
		{"iat in the future within leeway", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iat": now.Add(testLeeway).Unix()}), nil)
		}, nil},
		{"no sid and no scope", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"sid": nil, "scope": nil}), nil)
		}, nil},

		// Time.
		{"expired beyond leeway", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iat": now.Add(-testTTL).Unix(), "exp": now.Add(-testLeeway).Unix()}), nil)
		}, ErrExpired},
		{"iat in the future beyond leeway", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iat": now.Add(testLeeway + time.Second).Unix()}), nil)
		}, ErrInvalid},
		{"nbf in the future beyond leeway", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"nbf": now.Add(time.Minute).Unix()}), nil)
		}, ErrInvalid},
		{"expired and wrong issuer is invalid, not expired", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iss": "https://evil.test", "exp": now.Add(-time.Hour).Unix()}), nil)
		}, ErrInvalid},

		// Issuer and audience.
		{"wrong issuer", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iss": "https://evil.test"}), nil)
		}, ErrInvalid},
		{"issuer with a trailing slash", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iss": testIssuer + "/"}), nil)
		}, ErrInvalid},
		{"token for another audience", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"aud": "https://other.test"}), nil)
		}, ErrInvalid},
		{"no aud", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"aud": nil}), nil)
		}, ErrInvalid},

		// Required claims.
		{"no sub", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"sub": nil}), nil)
		}, ErrInvalid},
		{"no jti", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"jti": nil}), nil)
		}, ErrInvalid},
		{"no client_id", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"client_id": nil}), nil)
		}, ErrInvalid},
		{"no iat", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"iat": nil}), nil)
		}, ErrInvalid},
		{"no exp", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"exp": nil}), nil)
		}, ErrInvalid},
		{"scope as a list", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, with(now, map[string]any{"scope": []string{"openid"}}), nil)
		}, ErrMalformed},

		// Header.
		{"no typ", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), map[string]any{"typ": nil})
		}, ErrInvalid},
		{"typ JWT", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), map[string]any{"typ": "JWT"})
		}, ErrInvalid},
		{"typ not a string", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), map[string]any{"typ": 1})
		}, ErrInvalid},
		{"no kid", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), map[string]any{"kid": nil})
		}, ErrInvalid},
		{"crit header", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), map[string]any{"crit": []string{"exp"}})
		}, ErrInvalid},
		{"unknown kid", func(t *testing.T, now time.Time) string {
			return ks.rsa2.sign(t, claimsAt(now), nil)
		}, ErrUnknownKey},

		// Algorithms.
		{"alg none", func(t *testing.T, now time.Time) string {
			return unsignedToken(t, claimsAt(now), ks.rsa1.kid)
		}, ErrInvalid},
		{"alg none on a stripped RS256 token", func(t *testing.T, now time.Time) string {
			tok := ks.rsa1.sign(t, claimsAt(now), nil)
			return replaceHeader(t, tok, map[string]any{"alg": "none", "typ": "at+jwt", "kid": ks.rsa1.kid}, "")
		}, ErrInvalid},
		{"HS256 with the RSA public key as PEM", func(t *testing.T, now time.Time) string {
			return hmacToken(t, claimsAt(now), ks.rsa1.kid, pkixPEM)
		}, ErrInvalid},
		{"HS256 with the RSA public key as PKCS#1 PEM", func(t *testing.T, now time.Time) string {
			return hmacToken(t, claimsAt(now), ks.rsa1.kid, pkcs1PEM)
		}, ErrInvalid},
		{"HS256 with the RSA public key as DER", func(t *testing.T, now time.Time) string {
			return hmacToken(t, claimsAt(now), ks.rsa1.kid, pkix)
		}, ErrInvalid},
		{"HS256 with the Ed25519 public key", func(t *testing.T, now time.Time) string {
			return hmacToken(t, claimsAt(now), ks.ed1.kid, []byte(ks.ed1.jwk.Key.(ed25519.PublicKey)))
		}, ErrInvalid},
		{"PS256 with the RSA key", func(t *testing.T, now time.Time) string {
			k := ks.rsa1
			k.alg = "PS256"
			return k.sign(t, claimsAt(now), nil)
		}, ErrInvalid},
		{"ES256", func(t *testing.T, now time.Time) string {
			k := newTestKey(ecKey, "ES256")
			k.kid = ks.rsa1.kid
			return k.sign(t, claimsAt(now), nil)
		}, ErrInvalid},
		{"EdDSA header naming the RSA key", func(t *testing.T, now time.Time) string {
			return ks.ed1.sign(t, claimsAt(now), map[string]any{"kid": ks.rsa1.kid})
		}, ErrInvalid},
		{"RS256 header naming the Ed25519 key", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), map[string]any{"kid": ks.ed1.kid})
		}, ErrInvalid},
		{"signed by another key under a known kid", func(t *testing.T, now time.Time) string {
			return ks.rsa2.sign(t, claimsAt(now), map[string]any{"kid": ks.rsa1.kid})
		}, ErrInvalid},
		{"tampered payload", func(t *testing.T, now time.Time) string {
			return replacePayload(t, ks.rsa1.sign(t, claimsAt(now), nil), with(now, map[string]any{"sub": "admin"}))
		}, ErrInvalid},
		{"tampered EdDSA payload", func(t *testing.T, now time.Time) string {
			return replacePayload(t, ks.ed1.sign(t, claimsAt(now), nil), with(now, map[string]any{"scope": "admin"}))
		}, ErrInvalid},

		// Shape.
		{"empty", func(*testing.T, time.Time) string { return "" }, ErrMalformed},
		{"garbage", func(*testing.T, time.Time) string { return "not a token" }, ErrMalformed},
		{"two segments", func(*testing.T, time.Time) string { return "eyJhbGciOiJSUzI1NiJ9.e30" }, ErrMalformed},
		{"four segments", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), nil) + ".x"
		}, ErrMalformed},
		{"bad base64 in signature", func(t *testing.T, now time.Time) string {
			return ks.rsa1.sign(t, claimsAt(now), nil) + "!"
		}, ErrMalformed},
		{"non-canonical base64 in signature", func(t *testing.T, now time.Time) string {
			// A 2048-bit RS256 signature takes 342 characters; the low 4
			// bits of the last one are padding and must be zero.
			tok := ks.rsa1.sign(t, claimsAt(now), nil)
			last := strings.IndexByte(base64URLAlphabet, tok[len(tok)-1])
			return tok[:len(tok)-1] + string(base64URLAlphabet[last|1])
		}, ErrMalformed},
		{"header not JSON", func(*testing.T, time.Time) string {
			return base64.RawURLEncoding.EncodeToString([]byte("{")) + ".e30.c2ln"
		}, ErrMalformed},
		{"too long", func(*testing.T, time.Time) string {
			return "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", maxTokenBytes) + ".c2ln"
		}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			v := newTestVerifier(t, jwks.URL, clock)
			token := tt.token(t, clock.Now())

			got, err := v.Verify(context.Background(), token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.Subject == "" || got.ClientID != "mobile" || !slices.Contains(got.Audience, testAudience) ||
					got.ID != "jti-1" || got.ExpiresAt.IsZero() || got.IssuedAt.IsZero() {
					t.Errorf("claims = %+v", got)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error = %v, want %v", err, tt.want)
			}
			t.Logf("rejected: %v", err)
			if got != nil {
				t.Errorf("claims = %+v, want nil", got)
			}
			for _, part := range strings.Split(token, ".") {
				if len(part) >= 16 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q contains part of the token", err)
				}
			}
		})
	}
}
