package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// keySet is one tokend instance's JWKS, cached, refetched when a token names
// a kid it does not hold.
type keySet struct {
	url     string
	hc      *http.Client
	mu      sync.RWMutex
	keys    map[string]jose.JSONWebKey
	gen     uint64
	fetchMu sync.Mutex
	fetches atomic.Int64
}

func newKeySet(hc *http.Client, jwksURL string) *keySet {
	return &keySet{url: jwksURL, hc: hc, keys: map[string]jose.JSONWebKey{}}
}

func (k *keySet) lookup(kid string) (jose.JSONWebKey, uint64, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.keys[kid]
	return key, k.gen, ok
}

// fetch replaces the cached keys with the instance's current JWKS.
func (k *keySet) fetch(ctx context.Context) error {
	k.fetches.Add(1)
	body, err := fetch(ctx, k.hc, k.url)
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("parse JWKS from %s: %w", k.url, err)
	}
	m := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, key := range set.Keys {
		if key.KeyID == "" || !key.Valid() || !key.IsPublic() {
			return fmt.Errorf("JWKS from %s holds an invalid or private key %q", k.url, key.KeyID)
		}
		m[key.KeyID] = key
	}
	k.mu.Lock()
	k.keys = m
	k.gen++
	k.mu.Unlock()
	return nil
}

// get returns the key kid, refetching the JWKS once when it is unknown.
// Concurrent misses share one refetch.
func (k *keySet) get(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	key, gen, ok := k.lookup(kid)
	if ok {
		return key, nil
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	if key, g, ok := k.lookup(kid); ok || g != gen {
		if ok {
			return key, nil
		}
		return jose.JSONWebKey{}, errUnknownKid
	}
	if err := k.fetch(ctx); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("%w: %v", errJWKSFetch, err)
	}
	if key, _, ok := k.lookup(kid); ok {
		return key, nil
	}
	return jose.JSONWebKey{}, errUnknownKid
}

var (
	errUnknownKid = errors.New("unknown kid")
	errJWKSFetch  = errors.New("JWKS fetch failed")
	errTyp        = errors.New("wrong typ")
	errAlgMatch   = errors.New("alg does not match the key")
)

// accessClaims are the claims of a tokend access token (RFC 9068).
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	SID      string `json:"sid"`
}

// verifier checks access tokens offline the way a resource server would:
// signature from the JWKS (pinned to RS256 and EdDSA), typ, iss, aud, exp;
// and ID tokens the way a relying party would (checkID).
// With several instances, the key that verified a token must also be in
// every other instance's JWKS, with the same material.
type verifier struct {
	issuer string
	sets   []*keySet
	parser *jwt.Parser
	// idParser checks ID tokens: their audience is the client, which
	// checkID compares itself.
	idParser   *jwt.Parser
	verified   atomic.Int64
	idVerified atomic.Int64
	// kidSeen, when watch is set, records per instance the first time a
	// token signed with that kid came back.
	watch   atomic.Pointer[string]
	seenMu  sync.Mutex
	kidSeen []time.Time
}

func newVerifier(hc *http.Client, jwksURLs []string, issuer, audience string, now func() time.Time) *verifier {
	if now == nil {
		now = time.Now
	}
	common := []jwt.ParserOption{jwt.WithValidMethods([]string{"RS256", "EdDSA"}), jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(2 * time.Second), jwt.WithTimeFunc(now)}
	v := &verifier{issuer: issuer, kidSeen: make([]time.Time, len(jwksURLs)),
		parser:   jwt.NewParser(append(common, jwt.WithAudience(audience))...),
		idParser: jwt.NewParser(common...)}
	for _, u := range jwksURLs {
		v.sets = append(v.sets, newKeySet(hc, u))
	}
	return v
}

// load fetches every instance's JWKS.
func (v *verifier) load(ctx context.Context) error {
	for _, s := range v.sets {
		if err := s.fetch(ctx); err != nil {
			return err
		}
	}
	return nil
}

// check verifies raw, issued by instance `from` to client, and returns ""
// or the kind of failure ("verify: bad signature").
func (v *verifier) check(ctx context.Context, raw string, from int, client string) string {
	_, kind := v.checkAccess(ctx, raw, from, client)
	return kind
}

// checkAccess is check that also returns the token's claims.
func (v *verifier) checkAccess(ctx context.Context, raw string, from int, client string) (accessClaims, string) {
	var c accessClaims
	used, _, err := v.parse(ctx, v.parser, raw, &c, typAccess, from)
	if err != nil {
		return c, "verify: " + verifyKind(err)
	}
	if c.Subject == "" || c.ID == "" || c.SID == "" || c.ClientID != client {
		return c, "verify: missing or wrong sub/jti/sid/client_id"
	}
	if kind := v.sameEverywhere(ctx, used, from); kind != "" {
		return c, "verify: " + kind
	}
	v.verified.Add(1)
	return c, ""
}

// Token types (RFC 9068 §2.1; OpenID Connect Core §2 leaves an ID token's
// typ open, and tokend writes JWT so that neither can pass for the other).
const (
	typAccess = "at+jwt"
	typID     = "JWT"
)

// parse verifies raw's signature with instance from's key of the kid it
// names, its typ and what parser checks, fills claims and returns the key
// and the algorithm it was signed with.
func (v *verifier) parse(ctx context.Context, parser *jwt.Parser, raw string, claims jwt.Claims, typ string,
	from int) (jose.JSONWebKey, string, error) {
	var used jose.JSONWebKey
	var alg string
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if got, _ := t.Header["typ"].(string); got != typ {
			return nil, errTyp
		}
		kid, _ := t.Header["kid"].(string)
		key, err := v.sets[from].get(ctx, kid)
		if err != nil {
			return nil, err
		}
		if key.Algorithm != "" && key.Algorithm != t.Method.Alg() {
			return nil, errAlgMatch
		}
		used, alg = key, t.Method.Alg()
		return key.Key, nil
	})
	return used, alg, err
}

// sameEverywhere checks that every other instance publishes the key that
// verified a token of instance from, and records when a watched kid is
// first seen.
func (v *verifier) sameEverywhere(ctx context.Context, used jose.JSONWebKey, from int) string {
	for i, s := range v.sets {
		if i == from {
			continue
		}
		key, err := s.get(ctx, used.KeyID)
		if err != nil {
			return fmt.Sprintf("kid not in instance %d's JWKS", i+1)
		}
		if !sameKey(key.Key, used.Key) {
			return fmt.Sprintf("instance %d publishes other material for the kid", i+1)
		}
	}
	if w := v.watch.Load(); w != nil && *w == used.KeyID {
		v.seenMu.Lock()
		if v.kidSeen[from].IsZero() {
			v.kidSeen[from] = time.Now()
		}
		v.seenMu.Unlock()
	}
	return ""
}

// idClaims are the claims of an ID token the harness checks (OpenID
// Connect Core §2, §3.1.3.6).
type idClaims struct {
	jwt.RegisteredClaims
	Azp      string `json:"azp"`
	Nonce    string `json:"nonce"`
	AtHash   string `json:"at_hash"`
	SID      string `json:"sid"`
	AuthTime int64  `json:"auth_time"`
}

// checkID verifies an ID token issued by instance `from` to client with
// the access token access (already verified, with claims ac), the way a
// relying party would (OpenID Connect Core §3.1.3.7): signature from the
// JWKS, typ JWT, iss, aud and azp the client, exp, iat, the nonce of the
// request, at_hash of the access token, sub as the access token's, sid
// (the sign-in session's, not the access token's refresh-token family) and
// auth_time present. It returns the claims and "" or the kind of failure
// ("verify ID token: nonce").
func (v *verifier) checkID(ctx context.Context, raw string, from int, client, nonce, access string,
	ac accessClaims) (idClaims, string) {
	var c idClaims
	used, alg, err := v.parse(ctx, v.idParser, raw, &c, typID, from)
	if err != nil {
		return c, "verify ID token: " + verifyKind(err)
	}
	switch {
	case len(c.Audience) != 1 || c.Audience[0] != client || c.Azp != client:
		return c, "verify ID token: aud/azp"
	case c.Nonce != nonce:
		return c, "verify ID token: nonce"
	case c.AtHash != atHash(alg, access):
		return c, "verify ID token: at_hash"
	case c.Subject == "" || c.Subject != ac.Subject || c.SID == "" || c.AuthTime == 0:
		return c, "verify ID token: sub/sid/auth_time"
	}
	if kind := v.sameEverywhere(ctx, used, from); kind != "" {
		return c, "verify ID token: " + kind
	}
	v.idVerified.Add(1)
	return c, ""
}

// atHash is the left half of the access token's hash with the hash of the
// signature algorithm, base64url: SHA-256 for RS256, SHA-512 for EdDSA with
// Ed25519 (as go-oidc and openid-client compute it).
func atHash(alg, access string) string {
	var sum []byte
	if alg == "EdDSA" {
		s := sha512.Sum512([]byte(access))
		sum = s[:]
	} else {
		s := sha256.Sum256([]byte(access))
		sum = s[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// sameKey compares two public keys.
func sameKey(a, b any) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func verifyKind(err error) string {
	switch {
	case errors.Is(err, errUnknownKid):
		return "unknown kid"
	case errors.Is(err, errJWKSFetch):
		return "JWKS fetch failed"
	case errors.Is(err, errTyp):
		return "typ"
	case errors.Is(err, errAlgMatch):
		return "alg/key mismatch"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "iss"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "aud"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "iat in the future"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	}
	return "invalid"
}

// watchKid starts recording when each instance first issues a token signed
// with kid.
func (v *verifier) watchKid(kid string) {
	v.seenMu.Lock()
	clear(v.kidSeen)
	v.seenMu.Unlock()
	v.watch.Store(&kid)
}

func (v *verifier) seen() []time.Time {
	v.seenMu.Lock()
	defer v.seenMu.Unlock()
	return append([]time.Time(nil), v.kidSeen...)
}
