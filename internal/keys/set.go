package keys

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/internal/store"
)

// Signer is an algorithm's current key, ready to sign.
type Signer struct {
	KID         string
	Alg         string
	Method      jwt.SigningMethod
	Key         crypto.Signer
	ActivatedAt time.Time
}

// PublicKey is a published verification key.
type PublicKey struct {
	KID   string
	Alg   string
	Key   crypto.PublicKey
	State store.KeyState
}

// Set is an immutable snapshot of the keys an instance signs with and
// publishes. A new Set replaces the old one atomically on reload.
type Set struct {
	signers map[string]*Signer
	public  map[string]PublicKey
	jwks    []byte
	etag    string
	doc     *JWKSDoc
	keys    []store.SigningKey // what was loaded, for metrics and listings
	builtAt time.Time
}

// Signer returns alg's current key.
func (s *Set) Signer(alg string) (*Signer, bool) {
	if s == nil {
		return nil, false
	}
	sg, ok := s.signers[alg]
	return sg, ok
}

// PublicKey returns the published key kid.
func (s *Set) PublicKey(kid string) (PublicKey, bool) {
	if s == nil {
		return PublicKey{}, false
	}
	k, ok := s.public[kid]
	return k, ok
}

// JWKS returns the precomputed JWKS body and its strong ETag (quoted).
func (s *Set) JWKS() (body []byte, etag string) { return s.jwks, s.etag }

// JWKSDoc is the JWKS response, computed once per key set so that serving
// it allocates nothing: the header values are ready-made slices (callers
// assign them, never append to them).
type JWKSDoc struct {
	Body          []byte
	ETag          string
	ETagHeader    []string
	ContentLength []string
}

// Doc returns the precomputed response.
func (s *Set) Doc() *JWKSDoc { return s.doc }

// Keys returns the loaded key records (without decrypting anything).
func (s *Set) Keys() []store.SigningKey { return s.keys }

// BuiltAt is when this set was loaded.
func (s *Set) BuiltAt() time.Time { return s.builtAt }

// stateRank orders the JWKS: current keys first, then next, then retired.
func stateRank(st store.KeyState) int {
	switch st {
	case store.KeyCurrent:
		return 0
	case store.KeyNext:
		return 1
	}
	return 2
}

// buildSet assembles a Set from stored keys at now. open decrypts a current
// key (cached by the caller).
func buildSet(keys []store.SigningKey, now time.Time, open func(store.SigningKey) (crypto.Signer, error)) (*Set, error) {
	s := &Set{signers: map[string]*Signer{}, public: map[string]PublicKey{}, keys: keys, builtAt: now}
	var published []store.SigningKey
	for _, k := range keys {
		switch k.State {
		case store.KeyCurrent, store.KeyNext:
		case store.KeyRetired:
			if !now.Before(k.PublishUntil) {
				continue // past its window; the scheduler will mark it expired
			}
		default:
			continue
		}
		published = append(published, k)
	}
	sort.SliceStable(published, func(i, j int) bool {
		a, b := published[i], published[j]
		if a.Alg != b.Alg {
			return a.Alg < b.Alg
		}
		if ra, rb := stateRank(a.State), stateRank(b.State); ra != rb {
			return ra < rb
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.KID < b.KID
	})
	jwks := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(published))}
	for _, k := range published {
		pub, err := publicKey(k)
		if err != nil {
			return nil, err
		}
		s.public[k.KID] = PublicKey{KID: k.KID, Alg: k.Alg, Key: pub, State: k.State}
		jwks.Keys = append(jwks.Keys, jose.JSONWebKey{Key: pub, KeyID: k.KID, Algorithm: k.Alg, Use: "sig"})
		if k.State != store.KeyCurrent {
			continue
		}
		priv, err := open(k)
		if err != nil {
			return nil, err
		}
		method := jwt.GetSigningMethod(k.Alg)
		if method == nil {
			return nil, fmt.Errorf("signing key %s: no signing method for %s", k.KID, k.Alg)
		}
		s.signers[k.Alg] = &Signer{KID: k.KID, Alg: k.Alg, Method: method, Key: priv, ActivatedAt: k.ActivatedAt}
	}
	body, err := json.Marshal(jwks)
	if err != nil {
		return nil, fmt.Errorf("encode JWKS: %w", err)
	}
	s.jwks = body
	sum := sha256.Sum256(body)
	s.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	s.doc = &JWKSDoc{Body: body, ETag: s.etag, ETagHeader: []string{s.etag}[:1:1],
		ContentLength: []string{strconv.Itoa(len(body))}[:1:1]}
	return s, nil
}
