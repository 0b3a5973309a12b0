package sessions

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
)

// rawLen is a refresh token's size in bytes (256 bits); encodedLen its
// length as text.
const (
	rawLen     = 32
	encodedLen = 43
)

var b64 = base64.RawURLEncoding

// Secret is a refresh token in its wire form. It never reaches a log line.
type Secret string

// LogValue redacts the token.
func (Secret) LogValue() slog.Value { return slog.StringValue("<redacted>") }

// newRaw returns a new random token.
func newRaw() []byte {
	b := make([]byte, rawLen)
	if _, err := rand.Read(b); err != nil {
		panic("sessions: crypto/rand failed: " + err.Error())
	}
	return b
}

// parseToken decodes a presented token, refusing anything that is not
// exactly a tokend refresh token (before any database work).
func parseToken(s string) ([]byte, bool) {
	if len(s) != encodedLen {
		return nil, false
	}
	b, err := b64.Strict().DecodeString(s)
	if err != nil || len(b) != rawLen {
		return nil, false
	}
	return b, true
}

func encode(raw []byte) Secret { return Secret(b64.EncodeToString(raw)) }

// hashToken is the stored form of a token.
func hashToken(raw []byte) string {
	sum := sha256.Sum256(raw)
	return b64.EncodeToString(sum[:])
}

// deriver computes a token's child.
type deriver struct{ key []byte }

func (d deriver) child(parent []byte) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte("tokend refresh child v1\x00"))
	m.Write(parent)
	return m.Sum(nil)
}
