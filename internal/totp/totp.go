// Package totp computes and checks time-based one-time passwords (RFC 6238:
// HMAC-SHA-1, 6 digits, 30-second steps), the codes authenticator apps
// show, and writes the otpauth:// URI that enrols them.
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6238's default, what every authenticator app computes
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"net/url"
	"strings"
	"time"
)

// Parameters of the codes (the defaults of RFC 6238 and of every
// authenticator app).
const (
	Digits = 6
	Period = 30 * time.Second
	// Skew is how many steps before and after the current one a code may
	// come from, for clocks that drift and users who type slowly.
	Skew = 1
	// SecretSize is the secret's length in bytes (160 bits, RFC 4226 §4).
	SecretSize = 20
)

// NewSecret returns a random secret.
func NewSecret() []byte {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		panic("totp: crypto/rand failed: " + err.Error())
	}
	return b
}

// Step is the RFC 6238 time step of t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Code is the code of secret at step (RFC 4226 §5.3 truncation).
func Code(secret []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	code := make([]byte, Digits)
	for i := Digits - 1; i >= 0; i-- {
		code[i] = byte('0' + v%10)
		v /= 10
	}
	return string(code)
}

// Normalize strips the spaces and dashes people type into a code.
func Normalize(code string) string {
	return strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.TrimSpace(code))
}

// Match returns the step, within Skew of now's, whose code is code. Every
// candidate is compared (in constant time), so the time taken does not say
// which matched. Whether that step was used before is the caller's check.
func Match(secret []byte, code string, now time.Time) (int64, bool) {
	code = Normalize(code)
	if len(code) != Digits {
		return 0, false
	}
	cur := Step(now)
	var found int64
	ok := 0
	for s := cur - Skew; s <= cur+Skew; s++ {
		if subtle.ConstantTimeCompare([]byte(Code(secret, s)), []byte(code)) == 1 {
			found, ok = s, 1
		}
	}
	return found, ok == 1
}

// Encode is the secret as authenticator apps take it typed in: base32
// without padding.
func Encode(secret []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
}

// URI is the otpauth:// URI of secret for account at issuer (the Key URI
// Format of Google Authenticator, which every app reads from a QR code).
func URI(issuer, account string, secret []byte) string {
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	q := url.Values{"secret": {Encode(secret)}, "issuer": {issuer}, "algorithm": {"SHA1"},
		"digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + label + "?" + q.Encode()
}
