package clients

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// AssertionAlgs are the algorithms of private_key_jwt assertions tokend
// accepts (token_endpoint_auth_signing_alg_values_supported).
var AssertionAlgs = []string{"RS256", "ES256", "EdDSA"}

// maxJWKS bounds a registered key set.
const maxJWKS = 64 << 10

// ParseJWKS validates a client's key set for private_key_jwt — public keys
// only, each usable with one of AssertionAlgs (RSA of at least 2048 bits,
// EC P-256, Ed25519) and with a kid — and returns it as compact JSON.
func ParseJWKS(raw []byte) (string, error) {
	if len(raw) > maxJWKS {
		return "", errors.New("the key set is larger than 64 KiB")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return "", fmt.Errorf("not a JWK Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return "", errors.New("the key set has no keys")
	}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return "", fmt.Errorf("key %d is a private key: register only public keys", i)
		}
		if k.KeyID == "" || seen[k.KeyID] {
			return "", fmt.Errorf("key %d needs a kid of its own", i)
		}
		seen[k.KeyID] = true
		if _, err := algOf(k); err != nil {
			return "", fmt.Errorf("key %q: %v", k.KeyID, err)
		}
		if k.Use != "" && k.Use != "sig" {
			return "", fmt.Errorf("key %q: use is %q, not sig", k.KeyID, k.Use)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// algOf is the one assertion algorithm a key signs with.
func algOf(k jose.JSONWebKey) (string, error) {
	var alg string
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return "", errors.New("an RSA key must have at least 2048 bits")
		}
		alg = "RS256"
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return "", errors.New("an EC key must be on P-256 (ES256)")
		}
		alg = "ES256"
	case ed25519.PublicKey:
		alg = "EdDSA"
	default:
		return "", errors.New("the key type is not RSA, EC P-256 or Ed25519")
	}
	if k.Algorithm != "" && k.Algorithm != alg && !(alg == "EdDSA" && k.Algorithm == "Ed25519") {
		return "", fmt.Errorf("alg %q does not fit the key (%s)", k.Algorithm, alg)
	}
	return alg, nil
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// fullySpecifiedEd25519 is RFC 9864's name for EdDSA over Ed25519, which
// current JOSE libraries (jose, openid-client) put in the alg of assertions
// signed with an Ed25519 key. It verifies as EdDSA does.
type fullySpecifiedEd25519 struct{ jwt.SigningMethodEd25519 }

func (fullySpecifiedEd25519) Alg() string { return "Ed25519" }

var registerEd25519 sync.Once

// acceptEd25519 teaches golang-jwt the "Ed25519" alg, once per process.
func acceptEd25519() {
	registerEd25519.Do(func() {
		jwt.RegisterSigningMethod("Ed25519", func() jwt.SigningMethod { return &fullySpecifiedEd25519{} })
	})
}
