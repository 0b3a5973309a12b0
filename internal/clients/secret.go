package clients

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/tokend/tokend/internal/secret"
)

// SecretLen is the length of a client secret in bytes (256 bits).
const SecretLen = 32

// NewSecret returns a fresh client secret: 256 bits from crypto/rand, as
// 43 characters of base64url.
func NewSecret() secret.String {
	var b [SecretLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("clients: crypto/rand failed: " + err.Error())
	}
	return secret.String(base64.RawURLEncoding.EncodeToString(b[:]))
}

// Hasher hashes client secrets with HMAC-SHA256 under a key derived from
// the master key. The secrets are 256 random bits, so a fast hash is right
// (there is no dictionary to slow down); the key means that whoever can
// write the database but not read the master key still cannot plant a hash
// of a secret of their choosing. Hashes carry their key's version.
type Hasher struct {
	key     []byte
	version string
}

// NewHasher returns a Hasher for key (masterkey.PurposeClientSecrets).
func NewHasher(key []byte) Hasher { return Hasher{key: key, version: "v1"} }

// Hash is the stored form of a secret.
func (h Hasher) Hash(s secret.String) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(s.Reveal()))
	return h.version + ":" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether presented is c's secret, or its previous secret
// before the rotation's grace ends. The comparison is constant-time.
func (h Hasher) Verify(c Client, presented secret.String, now time.Time) bool {
	if c.SecretHash == "" || presented == "" {
		return false
	}
	got := []byte(h.Hash(presented))
	ok := hmac.Equal(got, []byte(c.SecretHash))
	if c.PreviousSecretHash != "" && now.Before(c.PreviousSecretExpiresAt) {
		ok = hmac.Equal(got, []byte(c.PreviousSecretHash)) || ok
	}
	return ok
}
