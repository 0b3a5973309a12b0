package grants

import (
	"context"
	"errors"

	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/sessions"
)

// Refresh is the refresh token grant (RFC 6749 §6): one rotation with reuse
// detection (see the sessions package). A session started through the
// authorization code flow with openid gets a new ID token too.
type Refresh struct {
	Sessions *sessions.Service
	IDTokens IDTokens
}

// Type implements Grant.
func (Refresh) Type() string { return oauth.GrantRefreshToken }

// DescBadRefresh is the one description of every refresh that fails.
const DescBadRefresh = "the refresh token is invalid, expired, revoked or already used"

// Handle implements Grant.
func (g Refresh) Handle(ctx context.Context, r Request) (*Response, error) {
	tok := r.Form.Get("refresh_token")
	if tok == "" {
		return nil, oauth.InvalidRequest("refresh_token is required")
	}
	res, err := g.Sessions.Refresh(ctx, sessions.RefreshRequest{Token: tok, Kind: r.Client.Kind, ClientID: r.Client.ID,
		Scope: r.Form.Get("scope"), Meta: r.Meta})
	if err != nil {
		return nil, RefreshError(err)
	}
	idt, err := g.IDTokens.mint(ctx, r.Client, res, "")
	if err != nil {
		return nil, err
	}
	return &Response{Access: res.Access, Refresh: res.Refresh, RefreshExpiresAt: res.RefreshExpiresAt, IDToken: idt, Scope: res.Scope}, nil
}

// RefreshError maps the errors of a rotation to OAuth errors (the cookie
// flow's /auth/refresh uses it too).
func RefreshError(err error) error {
	var ge *sessions.GrantError
	switch {
	case errors.As(err, &ge):
		return oauth.InvalidGrant(DescBadRefresh, ge.Reason)
	case errors.Is(err, sessions.ErrInvalidScope):
		return oauth.InvalidScope("unknown scope, or more than the session was granted")
	}
	return err
}
