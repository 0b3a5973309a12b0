package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/tokend/tokend/internal/authorize"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/csrf"
	"github.com/tokend/tokend/internal/factors"
	"github.com/tokend/tokend/internal/formseal"
	"github.com/tokend/tokend/internal/grants"
	"github.com/tokend/tokend/internal/introspect"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/passkeys"
	"github.com/tokend/tokend/internal/sessions"
)

// Route names (their path templates), used in logs and metrics.
const (
	routeHealthz    = "/healthz"
	routeReadyz     = "/readyz"
	routeMetrics    = "/metrics"
	routeJWKS       = "/.well-known/jwks.json"
	routeDiscovery  = "/.well-known/openid-configuration"
	routeToken      = "/oauth/token"
	routeRevoke     = "/oauth/revoke"
	routeIntrospect = "/oauth/introspect"
	routeUserinfo   = "/userinfo"
)

// Metrics is what the HTTP layer reports. A nil Metrics records nothing.
type Metrics interface {
	ObserveRequest(route, method string, status int, d time.Duration)
}

// Config holds the server's dependencies. Optional ones may be nil, and
// their routes are then not registered (tests build partial servers).
type Config struct {
	Log *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Ready reports whether the server can serve: the database answers and
	// a signing key is loaded.
	Ready func(ctx context.Context) error
	// Metrics records request metrics (served on the admin listener, see
	// NewAdmin).
	Metrics Metrics

	// Issuer is TOKEND_ISSUER; JWKSMaxAge the JWKS and discovery max-age.
	// tokend's own Bearer endpoints (/userinfo, /auth/sessions) accept only
	// access tokens whose aud includes the issuer (RFC 9068 §4).
	Issuer     string
	JWKSMaxAge time.Duration
	// Keys serves the JWKS.
	Keys JWKSSource

	// The account and OAuth endpoints; routes are registered when Sessions
	// is set.
	Users   UserService
	Clients *clients.Service
	// ClientAuth authenticates clients at the token, revocation and
	// introspection endpoints.
	ClientAuth    *clients.Authenticator
	Introspection *introspect.Service
	Login         *login.Service
	Factors       *factors.Service
	// Passkeys runs WebAuthn ceremonies; nil when the issuer cannot be a
	// relying party (an IP address), which hides every passkey form.
	Passkeys *passkeys.Service
	Sessions *sessions.Service
	// Grants are the token endpoint's grant types (and discovery's).
	Grants *grants.Registry
	// Codes, Requests and CSRF serve the authorization endpoint and the
	// hosted pages.
	Codes    *authorize.Codes
	Requests authorize.Sealer
	// Forms seals the state of the second sign-in step and of the account
	// pages' enrolments.
	Forms    formseal.Sealer
	CSRF     *csrf.Guard
	Pages    *pages.Renderer
	Verifier AccessVerifier
	Limiter  Limiter
	// SignInMaxAge is the lifetime of the sign-in cookie.
	SignInMaxAge time.Duration
	// AllowedOrigins may call /auth/* from browsers and get CORS headers.
	AllowedOrigins []string
	// SecureCookies sets the refresh cookie's Secure attribute (off only in
	// dev mode on an http loopback issuer). The __Host- cookies of the
	// browser pages are Secure always.
	SecureCookies bool
	// Signup opens POST /auth/signup.
	Signup bool
	// Reset runs password resets; its routes are registered when set.
	Reset ResetService
	// Verify runs sign-up and email verification; the sign-up and
	// verification routes are registered when it and Sessions are set.
	Verify VerifyService
}

// Server serves tokend's HTTP API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	metrics Metrics
	router  *mux.Router
	handler http.Handler

	discoveryBody []byte
	publicCache   []string
	issuerOrigin  string
	hsts          bool // the issuer is https: send Strict-Transport-Security
	preflights    map[string]bool
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Log, now: cfg.Now, metrics: cfg.Metrics, preflights: map[string]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	r := mux.NewRouter()
	r.Use(routeNamer)
	s.router = r
	s.discoveryBody = s.buildDiscovery()
	if u, err := url.Parse(cfg.Issuer); err == nil {
		s.issuerOrigin = strings.ToLower(u.Scheme + "://" + u.Host)
		s.hsts = strings.EqualFold(u.Scheme, "https")
	}
	s.publicCache = []string{fmt.Sprintf("public, max-age=%d", int(cfg.JWKSMaxAge.Seconds()))}
	s.routes()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, notFound("no such endpoint"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)
	s.handler = s.outer(r)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Router exposes the routes (for the test that compares them with the spec).
func (s *Server) Router() *mux.Router { return s.router }

// handlerFunc is a handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc.
func (s *Server) handle(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// route registers fn for method(s) on path.
func (s *Server) route(path string, fn handlerFunc, methods ...string) {
	s.router.Handle(path, s.handle(fn)).Methods(methods...).Name(path)
}

// authRoute registers a browser-facing /auth/* handler behind the Origin
// check, plus its CORS preflight.
func (s *Server) authRoute(path string, fn handlerFunc, methods ...string) {
	s.route(path, s.browserGuard(fn), methods...)
	if !s.preflights[path] {
		s.route(path, s.preflight, http.MethodOptions)
		s.preflights[path] = true
	}
}

func (s *Server) routes() {
	s.route(routeHealthz, s.healthz, http.MethodGet, http.MethodHead)
	s.route(routeReadyz, s.readyz, http.MethodGet, http.MethodHead)
	s.route(routeDiscovery, s.discovery, http.MethodGet, http.MethodHead)
	s.route(routeDiscoveryOAuth, s.discovery, http.MethodGet, http.MethodHead)
	s.docRoutes()
	if s.cfg.Keys != nil {
		s.router.Handle(routeJWKS, http.HandlerFunc(s.jwks)).Methods(http.MethodGet, http.MethodHead).Name(routeJWKS)
	}
	if s.cfg.Sessions != nil {
		s.authRoute(routeLogin, s.login, http.MethodPost)
		s.authRoute(routeRefresh, s.refresh, http.MethodPost)
		s.authRoute(routeLogout, s.logout, http.MethodPost)
		s.authRoute(routeSessions, s.listSessions, http.MethodGet)
		s.authRoute(routeSessions, s.revokeOtherSessions, http.MethodDelete)
		s.authRoute(routeSession, s.revokeSession, http.MethodDelete)
		s.route(routeToken, s.token, http.MethodPost)
		s.route(routeRevoke, s.revoke, http.MethodPost)
		s.route(routeIntrospect, s.introspect, http.MethodPost)
		s.route(routeUserinfo, s.userinfo, http.MethodGet, http.MethodPost)
		s.route(routeAuthorize, s.authorize, http.MethodGet, http.MethodPost)
		s.route(routeLoginPage, s.loginPost, http.MethodPost)
		s.route(routeLogoutEndpoint, s.endSession, http.MethodGet, http.MethodPost)
		s.route(routeForgotPage, s.forgotPage, http.MethodGet, http.MethodPost)
		s.route(routeFactorPage, s.factorPost, http.MethodPost)
		s.route(routeLoginPasskey, s.loginPasskeyPost, http.MethodPost)
	}
	if s.cfg.Factors != nil && s.cfg.Sessions != nil {
		s.route(routeAccountPage, s.accountPage, http.MethodGet, http.MethodPost)
		s.route(routeAccountTOTP, s.totpPage, http.MethodGet, http.MethodPost)
		s.route(routeAccountPasskey, s.accountPasskey, http.MethodPost)
	}
	if s.cfg.Sessions != nil && s.cfg.Verify != nil {
		s.authRoute(routeSignup, s.signup, http.MethodPost)
		s.authRoute(routeVerify, s.verifyEmail, http.MethodPost)
		s.authRoute(routeVerifyResend, s.resendVerification, http.MethodPost)
		s.authRoute(routeChangeEmail, s.changeEmail, http.MethodPost)
		s.route(routeSignupPage, s.signupPage, http.MethodGet, http.MethodPost)
		s.route(routeVerifyPage, s.verifyPage, http.MethodGet, http.MethodHead)
		s.route(routeResendPage, s.resendPage, http.MethodGet, http.MethodPost)
	}
	if s.cfg.Reset != nil {
		s.authRoute(routeForgot, s.forgot, http.MethodPost)
		s.authRoute(routeReset, s.resetPassword, http.MethodPost)
		s.route(routeResetPage, s.resetPageHandler, http.MethodGet, http.MethodHead)
	}
}

// methodNotAllowed answers 405 with the Allow header listing the methods
// the path does accept.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, m)
		}
	}
	sort.Strings(allowed)
	h := http.Header{}
	h.Set("Allow", strings.Join(allowed, ", "))
	s.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed,
		Description: "method not allowed on this endpoint", Header: h})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
				Description: "not ready: " + readyReason(err), RetryAfter: 2 * time.Second}
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// NotReadyError says why the server is not ready, in words safe to show.
type NotReadyError struct{ Reason string }

func (e *NotReadyError) Error() string { return e.Reason }

func readyReason(err error) string {
	if nr, ok := err.(*NotReadyError); ok {
		return nr.Reason
	}
	return "the database does not answer"
}
