package tokens

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/internal/keys"
)

// Claims are a verified token's claims.
type Claims struct {
	jwt.RegisteredClaims
	ClientID  string `json:"client_id"`
	SessionID string `json:"sid"`
	Scope     string `json:"scope,omitempty"`
}

// ErrInvalidToken wraps every verification failure.
var ErrInvalidToken = errors.New("invalid access token")

// Verifier checks tokend access tokens against the published keys.
type Verifier struct {
	keys   KeySource
	issuer string
	now    func() time.Time
	leeway time.Duration
}

// NewVerifier returns a Verifier for tokens of issuer.
func NewVerifier(k KeySource, issuer string, now func() time.Time, leeway time.Duration) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: k, issuer: issuer, now: now, leeway: leeway}
}

// maxTokenLen bounds what the verifier will parse.
const maxTokenLen = 8 << 10

// Verify parses and checks raw. When audience is not empty the token must
// be for it.
func (v *Verifier) Verify(raw, audience string) (*Claims, error) {
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{keys.RS256, keys.EdDSA}),
		jwt.WithIssuer(v.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(v.leeway),
		jwt.WithStrictDecoding(),
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	var c Claims
	_, err := jwt.NewParser(opts...).ParseWithClaims(raw, &c, v.keyFunc(typAccessToken, "application/at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.ID == "" || c.ClientID == "" {
		return nil, fmt.Errorf("%w: missing sub, jti or client_id", ErrInvalidToken)
	}
	return &c, nil
}

// keyFunc finds the key of a token whose typ is one of typs.
func (v *Verifier) keyFunc(typs ...string) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		typ, _ := t.Header["typ"].(string)
		ok := false
		for _, want := range typs {
			ok = ok || strings.EqualFold(typ, want)
		}
		if !ok {
			return nil, fmt.Errorf("typ is not %s", typs[0])
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("unsupported crit header")
		}
		kid, _ := t.Header["kid"].(string)
		pk, ok := v.keys.PublicKey(kid)
		if !ok {
			return nil, errors.New("unknown kid")
		}
		if pk.Alg != t.Method.Alg() {
			return nil, errors.New("the key's algorithm does not match the token's")
		}
		return pk.Key, nil
	}
}

// HintClaims are what an id_token_hint says about the session to end.
type HintClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// VerifyIDTokenHint checks an ID token tokend issued, presented back as
// the id_token_hint of RP-initiated logout: the signature under a published
// key, typ JWT, the issuer. Its expiry is not checked (OpenID Connect
// RP-Initiated Logout 1.0 §2: a hint may have expired by the time the user
// logs out); its key must still be published.
func (v *Verifier) VerifyIDTokenHint(raw string) (*HintClaims, error) {
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	var c HintClaims
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{keys.RS256, keys.EdDSA}), jwt.WithIssuer(v.issuer),
		jwt.WithTimeFunc(v.now), jwt.WithLeeway(24*365*time.Hour), jwt.WithStrictDecoding()).ParseWithClaims(raw, &c, v.keyFunc(typIDToken))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" || len(c.Audience) == 0 {
		return nil, fmt.Errorf("%w: missing sub or aud", ErrInvalidToken)
	}
	return &c, nil
}
