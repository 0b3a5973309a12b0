package main

import (
	"context"
	"crypto"
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
	errTyp        = errors.New("typ is not at+jwt")
	errAlgMatch   = errors.New("alg does not match the key")
)

// accessClaims are the claims of a tokend access token (RFC 9068).
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	SID      string `json:"sid"`
}

// verifier checks access tokens offline the way a resource server would:
// signature from the JWKS (pinned to RS256 and EdDSA), typ, iss, aud, exp.
// With several instances, the key that verified a token must also be in
// every other instance's JWKS, with the same material.
type verifier struct {
	sets     []*keySet
	parser   *jwt.Parser
	verified atomic.Int64
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
	v := &verifier{kidSeen: make([]time.Time, len(jwksURLs)),
		parser: jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "EdDSA"}), jwt.WithIssuer(issuer),
			jwt.WithAudience(audience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
			jwt.WithLeeway(2*time.Second), jwt.WithTimeFunc(now))}
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
	var used jose.JSONWebKey
	var c accessClaims
	_, err := v.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "at+jwt" {
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
		used = key
		return key.Key, nil
	})
	if err != nil {
		return "verify: " + verifyKind(err)
	}
	if c.Subject == "" || c.ID == "" || c.SID == "" || c.ClientID != client {
		return "verify: missing or wrong sub/jti/sid/client_id"
	}
	for i, s := range v.sets {
		if i == from {
			continue
		}
		key, err := s.get(ctx, used.KeyID)
		if err != nil {
			return fmt.Sprintf("verify: kid not in instance %d's JWKS", i+1)
		}
		if !sameKey(key.Key, used.Key) {
			return fmt.Sprintf("verify: instance %d publishes other material for the kid", i+1)
		}
	}
	if w := v.watch.Load(); w != nil && *w == used.KeyID {
		v.seenMu.Lock()
		if v.kidSeen[from].IsZero() {
			v.kidSeen[from] = time.Now()
		}
		v.seenMu.Unlock()
	}
	v.verified.Add(1)
	return ""
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
