// Package tokens mints and verifies tokend's JWTs, and owns their formats:
// access tokens per RFC 9068 (header typ "at+jwt"; claims iss, sub, aud,
// exp, iat, jti, client_id, sid, scope) and ID tokens per OpenID Connect
// Core §2 (header typ "JWT", so neither can pass for the other). The JOSE
// header is built here; the keys package only holds the keys and signs.
//
// The verifier pins the algorithms (RS256 and EdDSA only, so "none" and
// HMAC-with-a-public-key cannot be smuggled in), requires the token's type,
// looks the key up by kid among the published keys, and checks that the
// key's type matches the algorithm.
package tokens

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/keys"
)

// KeySource gives signing and verification keys (keys.Manager).
type KeySource interface {
	Signer(alg string) (*keys.Signer, bool)
	PublicKey(kid string) (keys.PublicKey, bool)
}

// ErrNoSigningKey means no current key is loaded for the algorithm (the
// server is not ready).
var ErrNoSigningKey = errors.New("no current signing key loaded")

// Issuer signs access tokens.
type Issuer struct {
	headers    headers
	keys       KeySource
	issuer     string
	defaultAud string
	defaultAlg string
	ttl        time.Duration
	now        func() time.Time
}

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	Keys     KeySource
	Issuer   string
	Audience string // default aud
	Alg      string // default algorithm
	TTL      time.Duration
	Now      func() time.Time
}

// NewIssuer returns an Issuer.
func NewIssuer(c IssuerConfig) *Issuer {
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Issuer{keys: c.Keys, issuer: c.Issuer, defaultAud: c.Audience, defaultAlg: c.Alg, ttl: c.TTL, now: c.Now}
}

// TTL is the access token lifetime.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Grant is what a token says.
type Grant struct {
	Subject   string   // the user's id
	ClientID  string   //
	SessionID string   // the refresh-token family
	Scope     string   // space-separated; empty: no scope claim
	Audience  []string // empty: the default audience
	Alg       string   // empty: the default algorithm
}

// Token is a signed access token.
type Token struct {
	Raw       string
	ID        string
	KID       string
	Alg       string
	ExpiresAt time.Time
}

// audience marshals as a string when there is one value (the common form)
// and as an array otherwise (RFC 7519 §4.1.3).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

type claims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      audience `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Sid      string   `json:"sid,omitempty"`
	Scope    string   `json:"scope,omitempty"`
}

// appendJSON appends the JSON object of c to b: the same bytes as
// json.Marshal(c) (a test holds it to that), without reflection, since
// every access token is encoded on the hot path of login and refresh.
func (c *claims) appendJSON(b []byte) []byte {
	b = append(b, `{"iss":`...)
	b = appendString(b, c.Iss)
	b = append(b, `,"sub":`...)
	b = appendString(b, c.Sub)
	b = append(b, `,"aud":`...)
	switch {
	case len(c.Aud) == 1:
		b = appendString(b, c.Aud[0])
	case c.Aud == nil:
		b = append(b, "null"...)
	default:
		b = append(b, '[')
		for i, a := range c.Aud {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, a)
		}
		b = append(b, ']')
	}
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Exp, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.Iat, 10)
	b = append(b, `,"jti":`...)
	b = appendString(b, c.Jti)
	b = append(b, `,"client_id":`...)
	b = appendString(b, c.ClientID)
	if c.Sid != "" {
		b = append(b, `,"sid":`...)
		b = appendString(b, c.Sid)
	}
	if c.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendString(b, c.Scope)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Printable ASCII that
// encoding/json leaves alone (the issuer, ids, scopes) is copied as is;
// anything else is escaped by encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

var b64 = base64.RawURLEncoding

// Issue signs a token for g with the current key of its algorithm.
func (i *Issuer) Issue(g Grant) (Token, error) {
	alg := g.Alg
	if alg == "" {
		alg = i.defaultAlg
	}
	s, ok := i.keys.Signer(alg)
	if !ok {
		return Token{}, fmt.Errorf("%w for %s", ErrNoSigningKey, alg)
	}
	aud := audience(g.Audience)
	if len(aud) == 0 {
		aud = audience{i.defaultAud}
	}
	now := i.now()
	exp := now.Add(i.ttl)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		panic("tokens: crypto/rand failed: " + err.Error())
	}
	c := claims{Iss: i.issuer, Sub: g.Subject, Aud: aud, Exp: exp.Unix(), Iat: now.Unix(),
		Jti: b64.EncodeToString(jti[:]), ClientID: g.ClientID, Sid: g.SessionID, Scope: g.Scope}
	var buf [512]byte
	raw, err := i.sign(s, typAccessToken, c.appendJSON(buf[:0]))
	if err != nil {
		return Token{}, err
	}
	return Token{Raw: raw, ID: c.Jti, KID: s.KID, Alg: s.Alg, ExpiresAt: time.Unix(c.Exp, 0)}, nil
}
