package tokens

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"hash"
	"time"

	"github.com/tokend/tokend/internal/keys"
)

// IDToken is what an ID token says (OpenID Connect Core §2).
type IDToken struct {
	Subject  string // the user's id, as in access tokens
	ClientID string // aud and azp
	Nonce    string // echoed when the authorization request had one
	AuthTime time.Time
	// AccessToken is the access token issued with it, for at_hash (§3.1.3.6);
	// empty: no at_hash.
	AccessToken string
	// SessionID is the sign-in session at tokend (sid).
	SessionID string
	AMR       []string
	ACR       string
	// Email is set (with EmailVerified) when the email scope was granted.
	Email         string
	EmailVerified bool
	WithEmail     bool
	Alg           string // the client's algorithm; empty: the default
}

type idClaims struct {
	Iss           string   `json:"iss"`
	Sub           string   `json:"sub"`
	Aud           string   `json:"aud"`
	Azp           string   `json:"azp"`
	Exp           int64    `json:"exp"`
	Iat           int64    `json:"iat"`
	AuthTime      int64    `json:"auth_time,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	AtHash        string   `json:"at_hash,omitempty"`
	Sid           string   `json:"sid,omitempty"`
	AMR           []string `json:"amr,omitempty"`
	ACR           string   `json:"acr,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"`
}

// IssueID signs an ID token with the current key of the client's
// algorithm. It lives as long as access tokens.
func (i *Issuer) IssueID(t IDToken) (string, error) {
	alg := t.Alg
	if alg == "" {
		alg = i.defaultAlg
	}
	s, ok := i.keys.Signer(alg)
	if !ok {
		return "", fmt.Errorf("%w for %s", ErrNoSigningKey, alg)
	}
	now := i.now()
	c := idClaims{Iss: i.issuer, Sub: t.Subject, Aud: t.ClientID, Azp: t.ClientID, Exp: now.Add(i.ttl).Unix(), Iat: now.Unix(),
		Nonce: t.Nonce, Sid: t.SessionID, AMR: t.AMR, ACR: t.ACR}
	if !t.AuthTime.IsZero() {
		c.AuthTime = t.AuthTime.Unix()
	}
	if t.AccessToken != "" {
		c.AtHash = halfHash(s, t.AccessToken)
	}
	if t.WithEmail {
		c.Email = t.Email
		c.EmailVerified = &t.EmailVerified
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode ID token: %w", err)
	}
	return i.sign(s, typIDToken, payload)
}

// halfHash is at_hash (OIDC Core §3.1.3.6): the left half of the hash of
// the token, with the hash of the signature algorithm — SHA-256 for RS256,
// SHA-512 for EdDSA with Ed25519 (as go-oidc and openid-client compute it).
func halfHash(s *keys.Signer, token string) string {
	var h hash.Hash
	switch s.Alg {
	case keys.EdDSA:
		h = sha512.New()
	default:
		h = sha256.New()
	}
	h.Write([]byte(token))
	sum := h.Sum(nil)
	return b64.EncodeToString(sum[:len(sum)/2])
}
