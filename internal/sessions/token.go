package sessions

import (
	"crypto/hmac"
	"crypto/sha256"

	"github.com/tokend/tokend/internal/opaque"
)

// Secret is a refresh token in its wire form; it never reaches a log line.
type Secret = opaque.Secret

// deriver computes a token's child.
type deriver struct{ key []byte }

func (d deriver) child(parent []byte) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte("tokend refresh child v1\x00"))
	m.Write(parent)
	return m.Sum(nil)
}
