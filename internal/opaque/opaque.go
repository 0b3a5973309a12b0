// Package opaque makes and reads tokend's opaque bearer secrets (refresh
// tokens and password-reset tokens): 256 bits from crypto/rand, sent as 43
// characters of unpadded base64url, stored only as their SHA-256.
package opaque

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"

	"github.com/tokend/tokend/internal/secret"
)

// Sizes of a token in bytes and as text.
const (
	RawLen     = 32
	EncodedLen = 43
)

var b64 = base64.RawURLEncoding

// Secret is a token in its wire form: a secret.String, so it never
// reaches a log line, an error or a printed struct.
type Secret = secret.String

// New returns 256 random bits.
func New() []byte {
	b := make([]byte, RawLen)
	if _, err := rand.Read(b); err != nil {
		panic("opaque: crypto/rand failed: " + err.Error())
	}
	return b
}

// Encode returns the wire form.
func Encode(raw []byte) Secret { return Secret(b64.EncodeToString(raw)) }

// Parse decodes a presented token, refusing anything that is not exactly a
// token of this format (so malformed input never reaches the database).
func Parse(s string) ([]byte, bool) {
	if len(s) != EncodedLen {
		return nil, false
	}
	b, err := b64.Strict().DecodeString(s)
	if err != nil || len(b) != RawLen {
		return nil, false
	}
	return b, true
}

// Decode decodes a presented token of exactly n bytes in canonical
// unpadded base64url (for formats other than the 256 random bits of New).
func Decode(s string, n int) ([]byte, bool) {
	if len(s) != b64.EncodedLen(n) {
		return nil, false
	}
	b, err := b64.Strict().DecodeString(s)
	if err != nil || len(b) != n {
		return nil, false
	}
	return b, true
}

// Hash is the stored form of a token.
func Hash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return b64.EncodeToString(sum[:])
}
