package grants

import (
	"context"
	"errors"

	"github.com/tokend/tokend/internal/authorize"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/sessions"
)

// AuthorizationCode is the authorization code grant (RFC 6749 §4.1.3,
// OIDC Core §3.1.3, RFC 7636 §4.5): the code is consumed, if it is bound to
// the client, the redirect URI and the PKCE verifier, in the same write as
// the session it starts. A code presented twice, bound as its first
// exchange was (so proving possession of the verifier), revokes the session
// of that exchange; presented with another verifier or redirect URI it is
// only invalid_grant.
type AuthorizationCode struct {
	Codes    *authorize.Codes
	Sessions *sessions.Service
	IDTokens IDTokens
}

// Type implements Grant.
func (AuthorizationCode) Type() string { return oauth.GrantAuthorizationCode }

// Handle implements Grant.
func (g AuthorizationCode) Handle(ctx context.Context, r Request) (*Response, error) {
	raw := r.Form.Get("code")
	if raw == "" {
		return nil, oauth.InvalidRequest("code is required")
	}
	p, err := authorize.ParseCode(raw, r.Form.Get("code_verifier"))
	if err != nil {
		return nil, err
	}
	redirect := r.Form.Get("redirect_uri")
	res, code, u, err := g.Sessions.OpenFromCode(ctx, sessions.CodeRequest{Hash: p.Hash, Client: r.Client, RedirectURI: redirect,
		Challenge: p.Challenge, Meta: r.Meta})
	if errors.Is(err, sessions.ErrCodeUnusable) {
		return nil, g.Codes.Explain(ctx, p, r.Client.ID, redirect, r.Meta)
	}
	if err != nil {
		return nil, err
	}
	idt, err := g.IDTokens.mintFor(r.Client, res, u, code.Nonce)
	if err != nil {
		return nil, err
	}
	return &Response{Access: res.Access, Refresh: res.Refresh, RefreshExpiresAt: res.RefreshExpiresAt, IDToken: idt, Scope: res.Scope}, nil
}
