// Package csrf protects tokend's HTML forms (the login, sign-up, logout and
// password pages) against cross-site request forgery: a browser gets a
// random cookie (HttpOnly, SameSite=Strict), and each form carries an HMAC
// of that cookie and of the form's purpose under a key derived from the
// master key. A forged post from another site has neither the cookie nor a
// way to compute the field.
package csrf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Guard makes and checks form tokens.
type Guard struct{ key []byte }

// New returns a Guard with key (masterkey.PurposeCSRF).
func New(key []byte) *Guard { return &Guard{key: key} }

// NewCookie returns a fresh cookie value (256 random bits).
func NewCookie() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("csrf: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// WellFormed reports whether v has the form of a NewCookie value.
func WellFormed(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// Token is the form field for cookie and purpose ("login", "logout", ...).
func (g *Guard) Token(cookie, purpose string) string {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Valid reports whether token is the form field of cookie and purpose.
func (g *Guard) Valid(cookie, purpose, token string) bool {
	if len(cookie) < 32 || token == "" {
		return false
	}
	return hmac.Equal([]byte(g.Token(cookie, purpose)), []byte(token))
}
