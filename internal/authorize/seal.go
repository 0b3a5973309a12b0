package authorize

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// AEAD encrypts with bound data (masterkey.Sealer).
type AEAD interface {
	Seal(plaintext, ad []byte) []byte
	Open(ciphertext, ad []byte) ([]byte, error)
}

// RequestTTL is how long the login form keeps an authorization request: a
// user who takes longer starts again from the application.
const RequestTTL = 30 * time.Minute

// ErrRequestExpired is a sealed request that is too old, tampered with, or
// bound to another browser.
var ErrRequestExpired = errors.New("the sign-in request expired or is not valid")

// Sealer carries an authorization request across the login form, encrypted
// and authenticated under a key derived from the master key and bound to
// the browser (the hash of its CSRF cookie), so that the form needs no row
// in the database and cannot be edited or replayed in another browser.
type Sealer struct {
	AEAD AEAD
	Now  func() time.Time
}

type sealed struct {
	Request Request `json:"r"`
	Expires int64   `json:"e"`
	Browser []byte  `json:"b"`
}

var sealAD = []byte("tokend authorization request v1")

// Seal returns r sealed for the browser whose binding value is browser.
func (s Sealer) Seal(r Request, browser string) string {
	sum := sha256.Sum256([]byte(browser))
	b, err := json.Marshal(sealed{Request: r, Expires: s.Now().Add(RequestTTL).Unix(), Browser: sum[:]})
	if err != nil {
		panic("authorize: seal: " + err.Error()) // strings and numbers always marshal
	}
	return base64.RawURLEncoding.EncodeToString(s.AEAD.Seal(b, sealAD))
}

// Open returns the request sealed for browser.
func (s Sealer) Open(v, browser string) (Request, error) {
	ct, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(v) > 16<<10 {
		return Request{}, ErrRequestExpired
	}
	pt, err := s.AEAD.Open(ct, sealAD)
	if err != nil {
		return Request{}, ErrRequestExpired
	}
	var x sealed
	if err := json.Unmarshal(pt, &x); err != nil {
		return Request{}, ErrRequestExpired
	}
	sum := sha256.Sum256([]byte(browser))
	if subtle.ConstantTimeCompare(sum[:], x.Browser) != 1 || s.Now().Unix() > x.Expires {
		return Request{}, ErrRequestExpired
	}
	return x.Request, nil
}
