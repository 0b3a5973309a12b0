package grants

import (
	"context"
	"strings"

	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/tokens"
)

// Metrics counts issued tokens (the metrics package).
type Metrics interface{ TokenIssued(grant, alg string) }

// ClientCredentials is the client credentials grant (RFC 6749 §4.4): a
// confidential client gets an access token for itself — sub and client_id
// are the client, no sid, no refresh token, scope at most what it was
// registered with (all of it when none is asked for), aud its registered
// audience.
type ClientCredentials struct {
	Issuer  *tokens.Issuer
	Metrics Metrics
}

// Type implements Grant.
func (ClientCredentials) Type() string { return oauth.GrantClientCredentials }

// Handle implements Grant.
func (g ClientCredentials) Handle(ctx context.Context, r Request) (*Response, error) {
	if !r.Authenticated {
		return nil, oauth.UnauthorizedClient("client_credentials is for clients that authenticate")
	}
	// Without a scope parameter the client gets every scope it was
	// registered with (RFC 6749 §3.3 lets the server pick a default).
	requested := r.Form.Get("scope")
	if strings.TrimSpace(requested) == "" {
		requested = strings.Join(r.Client.Scopes, " ")
	}
	scope, err := clientScope(r, requested)
	if err != nil {
		return nil, err
	}
	access, err := g.Issuer.Issue(tokens.Grant{Subject: r.Client.ID, ClientID: r.Client.ID, Scope: scope,
		Audience: r.Client.Audience, Alg: r.Client.Alg})
	if err != nil {
		return nil, err
	}
	if g.Metrics != nil {
		g.Metrics.TokenIssued(oauth.GrantClientCredentials, access.Alg)
	}
	return &Response{Access: access, Scope: scope}, nil
}
