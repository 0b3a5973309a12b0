package grants

import (
	"context"
	"errors"

	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/sessions"
)

// Password is the resource owner password credentials grant (RFC 6749
// §4.3), kept for first-party clients registered with it: RFC 9700 §2.4
// says new integrations must not use it, and it can never carry a second
// factor.
type Password struct {
	Login    *login.Service
	Sessions *sessions.Service
}

// Type implements Grant.
func (Password) Type() string { return oauth.GrantPassword }

// Handle implements Grant.
func (g Password) Handle(ctx context.Context, r Request) (*Response, error) {
	email, pw := r.Form.Get("username"), r.Form.Get("password")
	if email == "" || pw == "" {
		return nil, oauth.InvalidRequest("username and password are required")
	}
	scope, err := clientScope(r, r.Form.Get("scope"))
	if err != nil {
		return nil, err
	}
	return openWithPassword(ctx, g.Login, g.Sessions, r, email, secret.String(pw), scope)
}

// DescBadLogin is the one description of every failed password login.
const DescBadLogin = "invalid email or password"

// DescNotVerified refuses the right password of an account whose address
// is not verified (TOKEND_REQUIRE_VERIFIED_EMAIL).
const DescNotVerified = "email address not verified"

// openWithPassword proves the password and opens a family on the client:
// the password grant, and /auth/login for web clients.
func openWithPassword(ctx context.Context, l *login.Service, ss *sessions.Service, r Request, email string, pw secret.String, scope string) (*Response, error) {
	proof, err := l.Password(ctx, email, pw, r.Meta)
	if errors.Is(err, login.ErrFailed) {
		return nil, oauth.InvalidGrant(DescBadLogin, err.Error())
	}
	if errors.Is(err, login.ErrEmailNotVerified) {
		return nil, oauth.InvalidGrant(DescNotVerified, "")
	}
	if err != nil {
		return nil, err
	}
	if !proof.Complete() {
		// No page here to ask for the second factor: the password alone
		// must never open a session of such an account.
		proof.Release(ctx, nil)
		return nil, oauth.InvalidGrant(login.DescNeedsBrowser, "the account has a second factor")
	}
	res, err := ss.Open(ctx, sessions.OpenRequest{User: proof.User, AuthTime: proof.AuthTime, AMR: proof.AMR, Settle: proof.Settle(),
		Client: r.Client, Scope: scope, Grant: oauth.GrantPassword, Meta: r.Meta})
	if err != nil {
		proof.Release(ctx, nil)
		if errors.Is(err, sessions.ErrStale) {
			return nil, oauth.InvalidGrant(DescBadLogin, "the account changed during the login")
		}
		return nil, err
	}
	return &Response{Access: res.Access, Refresh: res.Refresh, RefreshExpiresAt: res.RefreshExpiresAt, Scope: res.Scope}, nil
}

// PasswordLogin is /auth/login: the password grant of web clients, whose
// refresh token travels in a cookie.
func PasswordLogin(ctx context.Context, l *login.Service, ss *sessions.Service, r Request, email string, pw secret.String) (*Response, error) {
	return openWithPassword(ctx, l, ss, r, email, pw, "")
}

// clientScope parses a requested scope and checks that the client may be
// granted it.
func clientScope(r Request, requested string) (string, error) {
	scope, ok := oauth.ParseScope(requested)
	if !ok {
		return "", oauth.InvalidScope("unknown scope")
	}
	if !oauth.Allowed(scope, r.Client.Scopes) {
		return "", oauth.InvalidScope("this client may not be granted that scope")
	}
	return scope, nil
}
