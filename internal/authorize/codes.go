package authorize

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/store"
)

// CodeTTL is how long a code may be exchanged.
const CodeTTL = 60 * time.Second

// CodeStore is what codes need from storage.
type CodeStore interface {
	CreateCode(ctx context.Context, c store.AuthCode) error
	Code(ctx context.Context, hash string) (store.AuthCode, error)
	RevokeFamily(ctx context.Context, familyID string, at time.Time, reason string, ev *store.AuditEvent) (bool, error)
}

// Codes issues and redeems authorization codes: 256 random bits, stored as
// SHA-256, valid CodeTTL, single use, bound to the client, the redirect
// URI, the PKCE challenge, the nonce and the sign-in session.
type Codes struct {
	Store CodeStore
	Now   func() time.Time
	Log   *slog.Logger
}

// ErrSignInEnded: the sign-in session ended (a logout, a reset, a disable)
// while the request was being answered.
var ErrSignInEnded = errors.New("the sign-in session ended")

// Issue writes a code answering r for the sign-in session si and returns
// it.
func (c *Codes) Issue(ctx context.Context, r Request, si store.SignIn) (string, error) {
	now := c.Now()
	raw := opaque.New()
	err := c.Store.CreateCode(ctx, store.AuthCode{Hash: opaque.Hash(raw), ClientID: r.ClientID, RedirectURI: r.RedirectURI,
		CodeChallenge: r.CodeChallenge, Nonce: r.Nonce, Scope: r.Scope, SignInID: si.ID, UserID: si.UserID, AuthTime: si.AuthTime,
		AMR: si.AMR, CreatedAt: now, ExpiresAt: now.Add(CodeTTL)})
	if errors.Is(err, store.ErrStale) {
		return "", ErrSignInEnded
	}
	if err != nil {
		return "", fmt.Errorf("issue authorization code: %w", err)
	}
	return opaque.Encode(raw).Reveal(), nil
}

// DescBadCode is the one description of every code that does not work.
const DescBadCode = "the authorization code is invalid, expired, already used, or was issued for another client, redirect URI or PKCE verifier"

var verifierPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// Redeem checks a presented code for clientID, redirectURI and the PKCE
// verifier (RFC 7636 §4.6) and returns it, ready to be exchanged. Nothing is
// written, except for a code presented again: the session its first
// exchange started is revoked (RFC 6749 §4.1.2).
func (c *Codes) Redeem(ctx context.Context, raw, clientID, redirectURI, verifier string, m audit.Meta) (store.AuthCode, error) {
	b, ok := opaque.Parse(raw)
	if !ok {
		return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "malformed code")
	}
	code, err := c.Store.Code(ctx, opaque.Hash(b))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "unknown code")
	case err != nil:
		return store.AuthCode{}, err
	case code.ClientID != clientID:
		return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "code of another client")
	case !code.UsedAt.IsZero():
		return store.AuthCode{}, c.Replayed(ctx, code, m)
	case !c.Now().Before(code.ExpiresAt):
		return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "expired code")
	case redirectURI != code.RedirectURI:
		return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "redirect_uri differs from the authorization request's")
	}
	switch {
	case code.CodeChallenge == "" && verifier != "":
		// RFC 9700 §4.8.2: a verifier for a request made without a
		// challenge is a downgrade attempt.
		return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "code_verifier for a request without code_challenge")
	case code.CodeChallenge != "" && !verifierPattern.MatchString(verifier):
		return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "missing or malformed code_verifier")
	case code.CodeChallenge != "":
		sum := sha256.Sum256([]byte(verifier))
		if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(code.CodeChallenge)) != 1 {
			return store.AuthCode{}, oauth.InvalidGrant(DescBadCode, "code_verifier does not match code_challenge")
		}
	}
	return code, nil
}

// Replayed answers a code presented after its first exchange: the session
// that exchange started is revoked, and the answer is invalid_grant.
func (c *Codes) Replayed(ctx context.Context, code store.AuthCode, m audit.Meta) error {
	if code.FamilyID != "" {
		now := c.Now()
		ev := audit.New(audit.CodeReplayed, m, code.UserID, now, map[string]string{"session": code.FamilyID, "client": code.ClientID})
		if _, err := c.Store.RevokeFamily(ctx, code.FamilyID, now, "authorization code replayed", ev); err != nil {
			return fmt.Errorf("revoke the session of a replayed code: %w", err)
		}
		if c.Log != nil {
			c.Log.WarnContext(ctx, "authorization code replayed; the session it started is revoked", "session", code.FamilyID,
				"client_id", code.ClientID, "address", m.Address)
		}
	}
	return oauth.InvalidGrant(DescBadCode, "code already used")
}
