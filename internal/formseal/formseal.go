// Package formseal carries server state across one of tokend's HTML forms
// — an authorization request across the login page, a sign-in waiting for
// its second factor, a TOTP secret waiting for its first code — without a
// row in the database: the state is encrypted and authenticated under a key
// derived from the master key, bound to a purpose and to the browser (the
// hash of its CSRF cookie), and expires. Any instance opens what another
// sealed; no other browser, purpose or edit does.
package formseal

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AEAD encrypts with bound data (masterkey.Sealer).
type AEAD interface {
	Seal(plaintext, ad []byte) []byte
	Open(ciphertext, ad []byte) ([]byte, error)
}

// ErrInvalid is a sealed value that expired, was edited, or was sealed for
// another browser or purpose.
var ErrInvalid = errors.New("the form expired or is not valid")

// MaxLen bounds a sealed value's length.
const MaxLen = 16 << 10

// Sealer seals and opens values.
type Sealer struct {
	AEAD AEAD
	Now  func() time.Time
}

type envelope struct {
	Value   json.RawMessage `json:"v"`
	Expires int64           `json:"e"`
	Browser []byte          `json:"b"`
}

// Seal returns v (JSON-encoded) sealed for purpose and the browser whose
// binding value is browser, valid for ttl.
func (s Sealer) Seal(purpose string, v any, browser string, ttl time.Duration) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", purpose, err)
	}
	sum := sha256.Sum256([]byte(browser))
	env, err := json.Marshal(envelope{Value: b, Expires: s.Now().Add(ttl).Unix(), Browser: sum[:]})
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", purpose, err)
	}
	out := base64.RawURLEncoding.EncodeToString(s.AEAD.Seal(env, []byte(purpose)))
	if len(out) > MaxLen {
		return "", fmt.Errorf("seal %s: %d bytes is too long for a form", purpose, len(out))
	}
	return out, nil
}

// Open decodes the value sealed for purpose and browser into v.
func (s Sealer) Open(purpose, sealed, browser string, v any) error {
	if len(sealed) > MaxLen {
		return ErrInvalid
	}
	ct, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return ErrInvalid
	}
	pt, err := s.AEAD.Open(ct, []byte(purpose))
	if err != nil {
		return ErrInvalid
	}
	var env envelope
	if err := json.Unmarshal(pt, &env); err != nil {
		return ErrInvalid
	}
	sum := sha256.Sum256([]byte(browser))
	if subtle.ConstantTimeCompare(sum[:], env.Browser) != 1 || s.Now().Unix() > env.Expires {
		return ErrInvalid
	}
	if err := json.Unmarshal(env.Value, v); err != nil {
		return ErrInvalid
	}
	return nil
}
