package grants

import (
	"context"
	"fmt"

	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokens"
)

// Users reads accounts (users.Service).
type Users interface {
	ByID(ctx context.Context, id string) (store.User, error)
}

// IDTokens mints the ID tokens of the grants that return one.
type IDTokens struct {
	Issuer *tokens.Issuer
	Users  Users
}

// mint returns the ID token of a session result for client, or "" when
// openid was not granted or the session was not started through a sign-in
// session (a password login never had an ID token).
func (t IDTokens) mint(ctx context.Context, client store.Client, res *sessions.Result, nonce string) (string, error) {
	if !oauth.HasScope(res.Scope, oauth.ScopeOpenID) || res.SignInID == "" {
		return "", nil
	}
	u, err := t.Users.ByID(ctx, res.UserID)
	if err != nil {
		return "", fmt.Errorf("user of the ID token: %w", err)
	}
	return t.mintFor(client, res, u, nonce)
}

// mintFor is mint with the user already read.
func (t IDTokens) mintFor(client store.Client, res *sessions.Result, u store.User, nonce string) (string, error) {
	if !oauth.HasScope(res.Scope, oauth.ScopeOpenID) || res.SignInID == "" {
		return "", nil
	}
	id := tokens.IDToken{Subject: res.UserID, ClientID: client.ID, Nonce: nonce, AuthTime: res.AuthTime,
		AccessToken: res.Access.Raw, SessionID: res.SignInID, AMR: res.AMR, ACR: oauth.ACROf(res.AMR), Alg: client.Alg}
	if oauth.HasScope(res.Scope, oauth.ScopeEmail) {
		id.WithEmail, id.Email, id.EmailVerified = true, u.Email, u.EmailVerified()
	}
	return t.Issuer.IssueID(id)
}
