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

// Presented is a code as the token endpoint received it, ready to be
// exchanged: its hash and the S256 challenge of its verifier.
type Presented struct {
	Hash      string
	Challenge string // "" when no code_verifier was sent
}

// ParseCode checks the form of a presented code and verifier (RFC 7636 §4.1)
// without reading anything.
func ParseCode(raw, verifier string) (Presented, error) {
	b, ok := opaque.Parse(raw)
	if !ok {
		return Presented{}, oauth.InvalidGrant(DescBadCode, "malformed code")
	}
	p := Presented{Hash: opaque.Hash(b)}
	if verifier != "" {
		if !verifierPattern.MatchString(verifier) {
			return Presented{}, oauth.InvalidGrant(DescBadCode, "malformed code_verifier")
		}
		sum := sha256.Sum256([]byte(verifier))
		p.Challenge = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return p, nil
}

// Explain says why a presented code could not be exchanged — the
// exchange's conditions are checked by the store in one write, and this
// read only runs when it wrote nothing — and answers a code presented
// after its first exchange: the session that exchange started is revoked
// (RFC 6749 §4.1.2), but only when the replay is bound as the exchange was
// (the client, the redirect URI and the PKCE verifier). The code alone is in
// the callback URL, for anyone who sees it; revoking on that would let them
// end the user's session. A replay that proves possession of the verifier
// means the exchange's secrets leaked, and the session is revoked.
func (c *Codes) Explain(ctx context.Context, p Presented, clientID, redirectURI string, m audit.Meta) error {
	code, err := c.Store.Code(ctx, p.Hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return oauth.InvalidGrant(DescBadCode, "unknown code")
	case err != nil:
		return err
	case code.ClientID != clientID:
		return oauth.InvalidGrant(DescBadCode, "code of another client")
	case !code.UsedAt.IsZero():
		if why := unbound(code, p, redirectURI); why != "" {
			return oauth.InvalidGrant(DescBadCode, "code already used; the replay is not bound as its exchange was ("+why+"), nothing revoked")
		}
		return c.Replayed(ctx, code, m)
	case !c.Now().Before(code.ExpiresAt):
		return oauth.InvalidGrant(DescBadCode, "expired code")
	}
	if why := unbound(code, p, redirectURI); why != "" {
		return oauth.InvalidGrant(DescBadCode, why)
	}
	return oauth.InvalidGrant(DescBadCode, "the sign-in session ended or the account was disabled")
}

// unbound says how a presentation of code differs from the binding it was
// issued with (the redirect URI and the PKCE challenge; the caller compares
// the client), "" when it does not.
func unbound(code store.AuthCode, p Presented, redirectURI string) string {
	switch {
	case redirectURI != code.RedirectURI:
		return "redirect_uri differs from the authorization request's"
	case code.CodeChallenge == "" && p.Challenge != "":
		// RFC 9700 §4.8.2: a verifier for a request made without a
		// challenge is a downgrade attempt.
		return "code_verifier for a request without code_challenge"
	case subtle.ConstantTimeCompare([]byte(code.CodeChallenge), []byte(p.Challenge)) != 1:
		return "missing code_verifier, or one that does not match code_challenge"
	}
	return ""
}

// Replayed answers a code presented after its first exchange, bound as
// that exchange was: the session it started is revoked, and the answer is
// invalid_grant.
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
