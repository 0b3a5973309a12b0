package grants

import (
	"context"
	"errors"

	"github.com/tokend/tokend/internal/authorize"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
)

// AuthorizationCode is the authorization code grant (RFC 6749 §4.1.3,
// OIDC Core §3.1.3, RFC 7636 §4.5): the code is checked against the client,
// the redirect URI and the PKCE verifier, then consumed in the same
// transaction as the session it starts. A code presented twice revokes the
// session of its first exchange.
type AuthorizationCode struct {
	Codes    *authorize.Codes
	Sessions *sessions.Service
	IDTokens IDTokens
	// CodeStore rereads a code that lost a race to explain why.
	CodeStore interface {
		Code(ctx context.Context, hash string) (store.AuthCode, error)
	}
}

// Type implements Grant.
func (AuthorizationCode) Type() string { return oauth.GrantAuthorizationCode }

// Handle implements Grant.
func (g AuthorizationCode) Handle(ctx context.Context, r Request) (*Response, error) {
	raw := r.Form.Get("code")
	if raw == "" {
		return nil, oauth.InvalidRequest("code is required")
	}
	code, err := g.Codes.Redeem(ctx, raw, r.Client.ID, r.Form.Get("redirect_uri"), r.Form.Get("code_verifier"), r.Meta)
	if err != nil {
		return nil, err
	}
	res, err := g.Sessions.OpenFromCode(ctx, code, r.Client, r.Meta)
	switch {
	case errors.Is(err, sessions.ErrCodeUnusable):
		// A concurrent exchange won, or the code just expired.
		if b, ok := opaque.Parse(raw); ok {
			if again, err := g.CodeStore.Code(ctx, opaque.Hash(b)); err == nil && !again.UsedAt.IsZero() {
				return nil, g.Codes.Replayed(ctx, again, r.Meta)
			}
		}
		return nil, oauth.InvalidGrant(authorize.DescBadCode, "code consumed or expired during the exchange")
	case errors.Is(err, sessions.ErrStale):
		return nil, oauth.InvalidGrant(authorize.DescBadCode, "the sign-in session ended or the account was disabled")
	case err != nil:
		return nil, err
	}
	idt, err := g.IDTokens.mint(ctx, r.Client, res, code.Nonce)
	if err != nil {
		return nil, err
	}
	return &Response{Access: res.Access, Refresh: res.Refresh, RefreshExpiresAt: res.RefreshExpiresAt, IDToken: idt, Scope: res.Scope}, nil
}
