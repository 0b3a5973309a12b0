package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/grants"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokens"
)

// token: POST /oauth/token. It parses the form once, authenticates the
// client, finds the grant in the registry, checks that the client may use
// it, and lets the grant answer.
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	form, err := decodeForm(r)
	if err != nil {
		return err
	}
	client, authenticated, err := s.endpointClient(r, form, false)
	if err != nil {
		return err
	}
	gt := form.Get("grant_type")
	if gt == "" {
		return badRequest("grant_type is required")
	}
	g, ok := s.cfg.Grants.Lookup(gt)
	if !ok {
		return &Error{Status: http.StatusBadRequest, Code: codeUnsupportedGrant,
			Description: "unsupported grant_type (supported: " + strings.Join(s.cfg.Grants.Types(), ", ") + ")"}
	}
	switch {
	case !clients.KindAllows(client.Kind, gt):
		return oauthError(oauth.InvalidClient("a " + string(client.Kind) + " client cannot use the " + gt + " grant"))
	case !clients.Allows(client, gt):
		return oauthError(oauth.UnauthorizedClient("this client is not registered for the " + gt + " grant"))
	}
	res, err := g.Handle(r.Context(), grants.Request{Client: client, Authenticated: authenticated, Form: form, Meta: meta(r, client.ID)})
	if err != nil {
		return err
	}
	writeToken(w, s.tokenBody(res, true))
	return nil
}

// endpointClient authenticates the client of a request at the token,
// revocation or introspection endpoint: a server client with its secret
// (Basic or in the form) or a signed assertion, a public client by its
// client_id (or Basic with an empty secret). Web clients use the cookie
// endpoints instead; confidentialOnly refuses public clients too.
func (s *Server) endpointClient(r *http.Request, form url.Values, confidentialOnly bool) (store.Client, bool, error) {
	creds := &clients.Credentials{Form: form, Address: clientAddr(r)}
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		id, sec, ok, malformed := clients.ParseBasic(h[0])
		if len(h) > 1 {
			ok, malformed = true, true
		}
		creds.Basic, creds.BasicMalformed, creds.BasicID, creds.BasicSecret = ok, malformed, id, sec
	}
	c, err := s.cfg.ClientAuth.Authenticate(r.Context(), creds)
	var ae *clients.AuthError
	switch {
	case errors.As(err, &ae):
		e := invalidClient()
		e.Err = err
		if ae.Basic {
			e.Header = http.Header{"Www-Authenticate": {`Basic realm="tokend", charset="UTF-8"`}}
		}
		return store.Client{}, false, e
	case errors.Is(err, clients.ErrSeveralMethods):
		return store.Client{}, false, badRequest("use one client authentication method per request")
	case errors.Is(err, clients.ErrTwoClientIDs):
		return store.Client{}, false, badRequest("the client_id parameter differs from the client of the Authorization header")
	case err != nil:
		return store.Client{}, false, err
	case c.Kind == store.ClientWeb, confidentialOnly && clients.Public(c):
		return store.Client{}, false, invalidClient()
	}
	return c, !clients.Public(c), nil
}

// revoke: POST /oauth/revoke (RFC 7009). It answers 200 for any token,
// valid or not; a refresh token of this client has its session revoked.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	form, err := decodeForm(r)
	if err != nil {
		return err
	}
	client, _, err := s.endpointClient(r, form, false)
	if err != nil {
		return err
	}
	tok := form.Get("token")
	if tok == "" {
		return badRequest("token is required")
	}
	// RFC 7009 §2.1: an unknown token_type_hint is ignored.
	if err := s.cfg.Sessions.Revoke(r.Context(), tok, client.Kind, client.ID, audit.TokenRevoked, meta(r, client.ID)); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// introspect: POST /oauth/introspect (RFC 7662), for clients that
// authenticate. Inactive, unknown or foreign tokens answer {"active":false}.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) error {
	form, err := decodeForm(r)
	if err != nil {
		return err
	}
	client, _, err := s.endpointClient(r, form, true)
	if err != nil {
		return err
	}
	tok := form.Get("token")
	if tok == "" {
		return badRequest("token is required")
	}
	res, err := s.cfg.Introspection.Introspect(r.Context(), client, tok, form.Get("token_type_hint"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, res)
	return nil
}

// bearer verifies the request's access token and that its session is live.
func (s *Server) bearer(r *http.Request) (*tokens.Claims, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		h := http.Header{}
		h.Set("WWW-Authenticate", `Bearer`)
		return nil, &Error{Status: http.StatusUnauthorized, Code: codeInvalidToken, Description: "missing bearer token", Header: h}
	}
	scheme, raw, ok := strings.Cut(vals[0], " ")
	if len(vals) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, invalidToken("malformed Authorization header")
	}
	// Only tokens meant for tokend itself (RFC 9068 §4): a token minted
	// for another API must not read the account or end its sessions.
	claims, err := s.cfg.Verifier.Verify(strings.TrimSpace(raw), s.cfg.Issuer)
	if err != nil {
		return nil, invalidToken("the access token is invalid or expired, or not meant for this server")
	}
	if claims.SessionID == "" {
		return nil, invalidToken("the access token names no session")
	}
	active, err := s.cfg.Sessions.Active(r.Context(), claims.SessionID)
	if err != nil {
		return nil, err
	}
	if !active {
		return nil, invalidToken("the session of this access token has ended")
	}
	return claims, nil
}

// userinfo: GET and POST /userinfo (OIDC Core §5.3). The email claims come
// with the email scope, or when the token carries no scope at all (a
// first-party password login).
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) error {
	claims, err := s.bearer(r)
	if err != nil {
		return err
	}
	u, err := s.cfg.Users.ByID(r.Context(), claims.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled()) {
		return invalidToken("the account of this access token is not active")
	}
	if err != nil {
		return err
	}
	type info struct {
		Sub           string `json:"sub"`
		Email         string `json:"email,omitempty"`
		EmailVerified *bool  `json:"email_verified,omitempty"`
	}
	out := info{Sub: u.ID}
	if claims.Scope == "" || oauth.HasScope(claims.Scope, oauth.ScopeEmail) {
		verified := u.EmailVerified()
		out.Email, out.EmailVerified = u.Email, &verified
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	return nil
}
