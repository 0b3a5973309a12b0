package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
)

// Algorithms tokend signs with.
const (
	RS256 = "RS256"
	EdDSA = "EdDSA"
)

// Algs lists every supported algorithm; each always has a current and a
// next key.
var Algs = []string{RS256, EdDSA}

// RSA key sizes.
const (
	DefaultRSABits = 2048
	minRSABits     = 2048
	maxRSABits     = 4096
)

// material is a key pair ready to store.
type material struct {
	kid  string
	alg  string
	priv crypto.Signer
	jwk  []byte // public JWK JSON
}

// generate makes a new key pair for alg (bits applies to RS256).
func generate(alg string, bits int) (*material, error) {
	switch alg {
	case RS256:
		if bits == 0 {
			bits = DefaultRSABits
		}
		if bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, fmt.Errorf("RSA key size %d: use 2048, 3072 or 4096", bits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		return newMaterial(alg, k)
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate Ed25519 key: %w", err)
		}
		return newMaterial(alg, k)
	}
	return nil, fmt.Errorf("unsupported algorithm %q (use RS256 or EdDSA)", alg)
}

// newMaterial checks that priv suits alg and derives kid and public JWK.
func newMaterial(alg string, priv crypto.Signer) (*material, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if alg != RS256 {
			return nil, fmt.Errorf("an RSA key cannot sign %s (use --alg RS256)", alg)
		}
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: tokend accepts %d to %d bits", n, minRSABits, maxRSABits)
		}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("invalid RSA key: %v", err)
		}
		k.Precompute()
	case ed25519.PrivateKey:
		if alg != EdDSA {
			return nil, fmt.Errorf("an Ed25519 key cannot sign %s (use --alg EdDSA)", alg)
		}
	default:
		return nil, fmt.Errorf("unsupported key type %T (tokend signs with RSA for RS256 and Ed25519 for EdDSA)", priv)
	}
	pub := priv.Public()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	jwk, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
	if err != nil {
		return nil, fmt.Errorf("public JWK: %w", err)
	}
	return &material{kid: kid, alg: alg, priv: priv, jwk: jwk}, nil
}

// ParsePEM reads one PKCS#8 or PKCS#1 private key for alg. Encrypted PEM,
// RSA keys outside 2048-4096 bits, other key types and a key that does not
// match alg are refused with a message saying which.
func ParsePEM(alg string, data []byte) (crypto.Signer, error) {
	if alg != RS256 && alg != EdDSA {
		return nil, fmt.Errorf("unsupported algorithm %q (use RS256 or EdDSA)", alg)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found (want a PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("the file holds more than one PEM block; give one private key")
	}
	if strings.Contains(block.Type, "ENCRYPTED") || block.Headers["Proc-Type"] != "" || block.Headers["DEK-Info"] != "" {
		return nil, errors.New("encrypted PEM is not supported; decrypt it first (openssl pkey -in key.pem -out plain.pem)")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want \"PRIVATE KEY\" or \"RSA PRIVATE KEY\")", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse the %s: %v", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	if _, err := newMaterial(alg, signer); err != nil {
		return nil, err
	}
	return signer, nil
}

// privAD is the additional data binding a sealed private key to its kid.
func privAD(kid string) []byte { return []byte("tokend signing key " + kid) }

// record seals m into a store record.
func (m *material) record(seal *masterkey.Sealer, state store.KeyState, origin string, at time.Time) (store.SigningKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(m.priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("encode private key: %w", err)
	}
	k := store.SigningKey{KID: m.kid, Alg: m.alg, State: state, PublicJWK: m.jwk,
		PrivateSealed: seal.Seal(der, privAD(m.kid)), Origin: origin, CreatedAt: at}
	if state == store.KeyCurrent {
		k.ActivatedAt = at
	}
	return k, nil
}

// openPrivate decrypts a stored private key and checks that it is the key
// its kid names.
func openPrivate(seal *masterkey.Sealer, k store.SigningKey) (crypto.Signer, error) {
	der, err := seal.Open(k.PrivateSealed, privAD(k.KID))
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt signing key %s: %w", k.KID, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %v", k.KID, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: unsupported type %T", k.KID, key)
	}
	m, err := newMaterial(k.Alg, signer)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.KID, err)
	}
	if m.kid != k.KID {
		return nil, fmt.Errorf("signing key %s: the private key does not match its kid", k.KID)
	}
	return signer, nil
}

// publicKey parses a stored public JWK.
func publicKey(k store.SigningKey) (crypto.PublicKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(k.PublicJWK); err != nil {
		return nil, fmt.Errorf("signing key %s: public JWK: %w", k.KID, err)
	}
	if !jwk.IsPublic() {
		return nil, fmt.Errorf("signing key %s: stored JWK is not public", k.KID)
	}
	return jwk.Key, nil
}

// rsaBits returns the size of a stored RSA key, or 0.
func rsaBits(k store.SigningKey) int {
	pub, err := publicKey(k)
	if err != nil {
		return 0
	}
	if rk, ok := pub.(*rsa.PublicKey); ok {
		return rk.N.BitLen()
	}
	return 0
}
