package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/grants"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/tokens"
)

// Route names of the account endpoints.
const (
	routeSignup      = "/auth/signup"
	routeLogin       = "/auth/login"
	routeRefresh     = "/auth/refresh"
	routeLogout      = "/auth/logout"
	routeSessions    = "/auth/sessions"
	routeSession     = "/auth/sessions/{id}"
	routeForgot      = "/auth/password/forgot"
	routeReset       = "/auth/password/reset"
	refreshCookie    = "tokend_refresh"
	refreshCookiePth = "/auth"
)

// UserService reads accounts (users.Service).
type UserService interface {
	ByID(ctx context.Context, id string) (store.User, error)
}

// AccessVerifier verifies access tokens (tokens.Verifier).
type AccessVerifier interface {
	Verify(raw, audience string) (*tokens.Claims, error)
	VerifyIDTokenHint(raw string) (*tokens.HintClaims, error)
}

// Limiter counts events against rate limits (throttle.Limiter).
type Limiter interface {
	Count(ctx context.Context, rules ...throttle.Rule) error
}

func meta(r *http.Request, clientID string) audit.Meta {
	return audit.Meta{ClientID: clientID, Address: clientAddr(r), UserAgent: userAgent(r), Device: deviceOf(r)}
}

// userAgent is the request's User-Agent as storable text: net/http accepts
// any byte above 0x7f in a header, and a session or audit row must not fail
// to write because a client sent Latin-1.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if store.Storable(ua) {
		return ua
	}
	return strings.ReplaceAll(strings.ToValidUTF8(ua, "\uFFFD"), "\x00", "")
}

// tokenBody is a token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
type tokenBody struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (s *Server) tokenBody(res *grants.Response, withRefresh bool) tokenBody {
	b := tokenBody{AccessToken: res.Access.Raw, TokenType: "Bearer",
		ExpiresIn: int64(res.Access.ExpiresAt.Sub(s.now()).Round(time.Second) / time.Second), Scope: res.Scope, IDToken: res.IDToken}
	if withRefresh {
		b.RefreshToken = res.Refresh.Reveal()
	}
	return b
}

// writeToken writes a token response, never cacheable.
func writeToken(w http.ResponseWriter, b tokenBody) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, b)
}

// setRefreshCookie sets the web client's refresh cookie.
func (s *Server) setRefreshCookie(w http.ResponseWriter, res *grants.Response) {
	maxAge := int((res.RefreshExpiresAt.Sub(s.now()) + time.Second/2) / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(w, &http.Cookie{Name: refreshCookie, Value: res.Refresh.Reveal(), Path: refreshCookiePth,
		MaxAge: maxAge, HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode})
}

func (s *Server) clearRefreshCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: refreshCookie, Value: "", Path: refreshCookiePth, MaxAge: -1,
		HttpOnly: true, Secure: s.cfg.SecureCookies, SameSite: http.SameSiteStrictMode})
}

// refreshFromCookie reads the refresh cookie. Several cookies of that name
// (a sibling subdomain tossing its own) are refused rather than guessed.
func refreshFromCookie(r *http.Request) (string, error) {
	var found []string
	for _, c := range r.Cookies() {
		if c.Name == refreshCookie {
			found = append(found, c.Value)
		}
	}
	switch len(found) {
	case 0:
		return "", badRequest("no refresh cookie")
	case 1:
		return found[0], nil
	}
	return "", badRequest("more than one refresh cookie")
}

// signup: POST /auth/signup. Every well-formed request gets 202 {},
// whether or not the address has an account: a new account is mailed its
// confirmation link, the owner of a taken address a notice.
func (s *Server) signup(w http.ResponseWriter, r *http.Request) error {
	if !s.cfg.Signup {
		return &Error{Status: http.StatusForbidden, Code: codeSignupDisabled, Description: "signup is disabled on this server"}
	}
	in, err := decodeJSON(r, "email", "password")
	if err != nil {
		return err
	}
	if in["email"] == "" || in["password"] == "" {
		return badRequest("email and password are required")
	}
	// Malformed requests are refused before they count (and write nothing);
	// every well-formed attempt counts against the limits.
	if err := s.cfg.Verify.SignUp(r.Context(), in["email"], in["password"], meta(r, ""), ""); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, struct{}{})
	return nil
}

// login: POST /auth/login (web clients).
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeJSON(r, "email", "password", "client_id")
	if err != nil {
		return err
	}
	if in["email"] == "" || in["password"] == "" || in["client_id"] == "" {
		return badRequest("email, password and client_id are required")
	}
	client, err := s.cfg.Clients.Get(r.Context(), in["client_id"])
	if errors.Is(err, clients.ErrNotFound) || (err == nil && client.Kind != store.ClientWeb) {
		return invalidClient()
	}
	if err != nil {
		return err
	}
	res, err := grants.PasswordLogin(r.Context(), s.cfg.Login, s.cfg.Sessions,
		grants.Request{Client: client, Meta: s.withDevice(w, r, meta(r, client.ID))},
		in["email"], secret.String(in["password"]))
	if err != nil {
		return err
	}
	s.setRefreshCookie(w, res)
	writeToken(w, s.tokenBody(res, false))
	return nil
}

// refresh: POST /auth/refresh (the cookie).
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	tok, err := refreshFromCookie(r)
	if err != nil {
		return err
	}
	res, err := s.cfg.Sessions.Refresh(r.Context(), sessions.RefreshRequest{Token: tok, Kind: store.ClientWeb, Meta: meta(r, "")})
	if err != nil {
		err = grants.RefreshError(err)
		if errors.Is(err, oauth.ErrInvalidGrant) {
			s.clearRefreshCookie(w)
		}
		return err
	}
	out := &grants.Response{Access: res.Access, Refresh: res.Refresh, RefreshExpiresAt: res.RefreshExpiresAt, Scope: res.Scope}
	s.setRefreshCookie(w, out)
	writeToken(w, s.tokenBody(out, false))
	return nil
}

// logout: POST /auth/logout. Idempotent: it always clears the cookie. With
// several tokend_refresh cookies (a sibling subdomain can set one) it
// revokes the session of every one that is a refresh token of a web client:
// it never reports success without revoking what was presented.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	for _, c := range r.Cookies() {
		if c.Name != refreshCookie {
			continue
		}
		if err := s.cfg.Sessions.Revoke(r.Context(), c.Value, store.ClientWeb, "", audit.Logout, meta(r, "")); err != nil {
			return err
		}
	}
	s.clearRefreshCookie(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// originAllowed reports whether a browser Origin may call the cookie
// endpoints, and whether it gets CORS headers.
func (s *Server) originAllowed(origin string) (allowed, cors bool) {
	o := strings.ToLower(origin)
	for _, a := range s.cfg.AllowedOrigins {
		if o == a {
			return true, true
		}
	}
	return o == s.issuerOrigin, false
}

// browserGuard wraps the /auth/* handlers: a request whose Origin is neither
// the issuer's nor allowed is refused before it changes anything; allowed
// origins get CORS headers with credentials.
func (s *Server) browserGuard(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return next(w, r) // not a browser cross-origin call
		}
		allowed, cors := s.originAllowed(origin)
		if !allowed {
			return &Error{Status: http.StatusForbidden, Code: codeForbiddenOrigin, Description: "requests from this origin are not allowed"}
		}
		if cors {
			setCORS(w.Header(), origin)
			w.Header().Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
		}
		return next(w, r)
	}
}

// preflight answers CORS preflight requests on /auth/*.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) error {
	origin := r.Header.Get("Origin")
	allowed, cors := s.originAllowed(origin)
	if origin == "" || !allowed {
		return &Error{Status: http.StatusForbidden, Code: codeForbiddenOrigin, Description: "requests from this origin are not allowed"}
	}
	if cors {
		h := w.Header()
		setCORS(h, origin)
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", strconv.Itoa(600))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setCORS admits an allowed origin, with credentials (the cookie).
func setCORS(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}
