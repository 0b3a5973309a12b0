package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/authorize"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/csrf"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/users"
)

// Routes of the browser flow: the authorization endpoint, the hosted pages
// it leads to, and RP-initiated logout.
const (
	routeAuthorize      = "/oauth/authorize"
	routeLoginPage      = "/login"
	routeLogoutEndpoint = "/oauth/logout"
	routeSignupPage     = "/signup"
	routeForgotPage     = "/forgot"

	// The browser's cookies on Path=/ are __Host- cookies (RFC 6265bis
	// §4.1.3.2): a browser accepts them only Secure, on Path=/ and without
	// Domain, so no other server on the host (another port) or sibling
	// domain can plant one, e.g. its own sign-in session (login CSRF).
	signInCookie = "__Host-tokend_signin"
	csrfCookie   = "__Host-tokend_csrf"
)

// hostCookie is one of the __Host- cookies above. It is Secure even where
// the refresh cookie is not (dev mode on an http loopback issuer): the
// prefix requires it, and browsers treat loopback as a secure origin.
func hostCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode}
}

// Form purposes bound into CSRF tokens.
const (
	formLogin  = "login"
	formSignup = "signup"
	formForgot = "forgot"
	formLogout = "logout"
)

// authorize: GET and POST /oauth/authorize (RFC 6749 §4.1.1, OIDC Core
// §3.1.2). An unknown client or unregistered redirect URI gets a page and
// is never redirected to; other errors go back to the redirect URI. A live
// sign-in session answers with a code at once; otherwise the login page.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) error {
	params, err := authorizeParams(r)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err // a 413 page
	}
	if err != nil {
		return s.messagePage(w, http.StatusBadRequest, "This sign-in request is not valid", err.Error())
	}
	client, err := s.clientOf(r, params)
	if err != nil {
		return err
	}
	req, err := authorize.Parse(params, client)
	if err != nil {
		return s.authorizeError(w, r, err)
	}
	si, err := s.currentSignIn(r)
	if err != nil {
		return err
	}
	return s.answer(w, r, req, si, "")
}

// answer issues a code for req with the sign-in session si, or asks the
// user to sign in (prompt=none: login_required).
func (s *Server) answer(w http.ResponseWriter, r *http.Request, req authorize.Request, si *store.SignIn, notice string) error {
	if authorize.NeedsLogin(req, si, s.now()) {
		if req.Prompt == oauth.PromptNone {
			return s.redirectError(w, r, req.RedirectURI, req.State, &oauth.Error{Code: oauth.CodeLoginRequired,
				Description: "the user is not signed in"})
		}
		return s.loginPage(w, r, req, loginForm{Email: req.LoginHint, Notice: notice}, http.StatusOK)
	}
	if authorize.NeedsStepUp(req, si) && s.cfg.Factors != nil {
		if done, err := s.stepUp(w, r, req, si, factorForm{}); done || err != nil {
			return err
		}
	}
	if req.Return != "" {
		return s.afterSignIn(w, r, req, *si)
	}
	code, err := s.cfg.Codes.Issue(r.Context(), req, *si)
	if errors.Is(err, authorize.ErrSignInEnded) {
		return s.answer(w, r, req, nil, "")
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, authorize.CodeRedirect(req.RedirectURI, s.cfg.Issuer, req.State, code), http.StatusFound)
	return nil
}

// authorizeParams reads the request's authorization parameters: the query
// of a GET, the form body of a POST (OIDC Core §3.1.2.1).
func authorizeParams(r *http.Request) (url.Values, error) {
	if r.Method == http.MethodGet {
		return r.URL.Query(), nil
	}
	if mediaType(r) != "application/x-www-form-urlencoded" {
		return nil, errors.New("the request must be form-encoded")
	}
	body, err := readBody(r)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, err
	}
	if err != nil {
		return nil, errors.New("the request body could not be read")
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("the request body is malformed")
	}
	return v, nil
}

// clientOf returns the client named by params' client_id, nil when there
// is none such.
func (s *Server) clientOf(r *http.Request, params url.Values) (*store.Client, error) {
	c, err := s.cfg.Clients.Get(r.Context(), params.Get("client_id"))
	if errors.Is(err, clients.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// authorizeError shows a *authorize.PageError, or sends a
// *authorize.RedirectError back to the client.
func (s *Server) authorizeError(w http.ResponseWriter, r *http.Request, err error) error {
	var pe *authorize.PageError
	var re *authorize.RedirectError
	switch {
	case errors.As(err, &pe):
		return s.messagePage(w, http.StatusBadRequest, "This sign-in request is not valid", pe.Description,
			"Go back to the application and try again. If it keeps happening, its registration with this server is wrong.")
	case errors.As(err, &re):
		return s.redirectError(w, r, re.RedirectURI, re.State, re.Err)
	}
	return err
}

// redirectError sends an error back to a verified redirect URI.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirect, state string, e *oauth.Error) error {
	if info := infoFrom(r.Context()); info != nil {
		info.errCode = e.Code
	}
	http.Redirect(w, r, authorize.ErrorRedirect(redirect, s.cfg.Issuer, state, e), http.StatusFound)
	return nil
}

// currentSignIn is the browser's live sign-in session, or nil.
func (s *Server) currentSignIn(r *http.Request) (*store.SignIn, error) {
	for _, c := range r.Cookies() {
		if c.Name != signInCookie {
			continue
		}
		si, ok, err := s.cfg.Sessions.SignInFromCookie(r.Context(), c.Value)
		if err != nil {
			return nil, err
		}
		if ok {
			return &si, nil
		}
	}
	return nil, nil
}

// browserKey returns the browser's CSRF cookie, setting a new one when it
// has none.
func (s *Server) browserKey(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 {
		return c.Value
	}
	v := csrf.NewCookie()
	http.SetCookie(w, hostCookie(csrfCookie, v, int((24*time.Hour)/time.Second)))
	return v
}

// checkForm verifies a posted form's CSRF token for purpose and returns the
// browser's key.
func (s *Server) checkForm(r *http.Request, form url.Values, purpose string) (string, bool) {
	c, err := r.Cookie(csrfCookie)
	if err != nil || !s.cfg.CSRF.Valid(c.Value, purpose, form.Get("csrf")) {
		return "", false
	}
	return c.Value, true
}

// loginForm is what the login page shows. Resend offers to mail the
// confirmation link again (an account whose address is not verified).
type loginForm struct {
	Email, Error, Notice string
	Resend               bool
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, req authorize.Request, f loginForm, status int) error {
	key := s.browserKey(w, r)
	sealed := s.cfg.Requests.Seal(req, key)
	var signup string
	if s.cfg.Signup && req.Return == "" {
		signup = routeSignupPage + "?" + url.Values{"request": {sealed}}.Encode()
	}
	back := url.Values{"back": {backTo(req)}}.Encode()
	var resendAction, resendCSRF string
	if f.Resend {
		resendAction, resendCSRF = routeResendPage+"?"+back, s.cfg.CSRF.Token(key, formResend)
	}
	token := s.cfg.CSRF.Token(key, formLogin)
	passkey := s.loginPasskey(r, key, token, sealed)
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Login, Title: "Sign in", Status: status,
		FormAction: []string{pages.FormActionSource(req.RedirectURI)}, Script: passkey != nil,
		Data: struct {
			loginForm
			Action, CSRF, Request, SignupURL, ForgotURL, ResendAction, ResendCSRF string
			Passkey                                                               *passkeyForm
		}{f, routeLoginPage, token, sealed, signup, routeForgotPage + "?" + back, resendAction, resendCSRF, passkey}})
}

// backTo is where a page reached from the login page of req links back to.
func backTo(req authorize.Request) string {
	if req.Return != "" {
		return req.Return
	}
	return routeAuthorize + "?" + req.Params().Encode()
}

// messagePage shows a page of text.
func (s *Server) messagePage(w http.ResponseWriter, status int, heading string, paragraphs ...string) error {
	return s.linkPage(w, status, heading, "", "", paragraphs...)
}

// linkPage shows a page of text with a link.
func (s *Server) linkPage(w http.ResponseWriter, status int, heading, linkURL, linkText string, paragraphs ...string) error {
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Message, Title: heading, Status: status,
		Data: struct {
			Heading           string
			Paragraphs        []string
			LinkURL, LinkText string
		}{heading, paragraphs, linkURL, linkText}})
}

// browserPages are the routes a person looks at: their errors are pages.
var browserPages = map[string]bool{routeAuthorize: true, routeLoginPage: true, routeSignupPage: true, routeForgotPage: true,
	routeLogoutEndpoint: true, routeResetPage: true, routeFactorPage: true, routeAccountPage: true, routeAccountTOTP: true,
	routeVerifyPage: true, routeResendPage: true, routeLoginPasskey: true, routeAccountPasskey: true}

// pageError writes e as a message page, with e's headers (Allow), when r is
// for a browser page and e is one of the errors that arise before or
// outside its handler: a body over the limit (413) or a method the route
// does not take (405). It reports whether it wrote.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, e *Error) bool {
	if s.cfg.Pages == nil || !browserPages[r.URL.Path] {
		return false
	}
	var heading, text string
	switch e.Status {
	case http.StatusRequestEntityTooLarge:
		heading, text = "This form is too large", "What was sent is larger than this server accepts (64 KiB). Go back, reload the page and try again."
	case http.StatusMethodNotAllowed:
		heading, text = "This page cannot be opened this way",
			"The page was requested with a method it does not take. Go back to the application and start again."
	default:
		return false
	}
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	if err := s.messagePage(w, e.Status, heading, text); err != nil {
		s.log.ErrorContext(r.Context(), "render an error page", "err", err)
	}
	return true
}

// postedForm reads one of tokend's own forms. Problems are pages, not JSON:
// a person is looking at the answer.
func (s *Server) postedForm(w http.ResponseWriter, r *http.Request) (url.Values, bool, error) {
	form, err := decodeForm(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, false, err
		}
		return nil, false, s.messagePage(w, http.StatusBadRequest, "This form could not be read",
			"Go back, reload the page and try again.")
	}
	return form, true, nil
}

// resumeRequest opens the authorization request a form carries and checks
// it again against its client (which may have changed meanwhile).
func (s *Server) resumeRequest(w http.ResponseWriter, r *http.Request, sealed, key string) (authorize.Request, bool, error) {
	req, err := s.cfg.Requests.Open(sealed, key)
	if err != nil {
		return req, false, s.messagePage(w, http.StatusBadRequest, "This sign-in page has expired",
			"Go back to the application and start signing in again.")
	}
	if req.Return != "" {
		return req, true, nil // tokend's own page: sealed by tokend, no client
	}
	client, err := s.clientOf(r, url.Values{"client_id": {req.ClientID}})
	if err != nil {
		return req, false, err
	}
	again, err := authorize.Parse(req.Params(), client)
	if err != nil {
		return req, false, s.authorizeError(w, r, err)
	}
	return again, true, nil
}

// badForm is the answer to a form without a valid CSRF token: nothing is
// done.
func (s *Server) badForm(w http.ResponseWriter) error {
	return s.messagePage(w, http.StatusBadRequest, "This form has expired",
		"It was open for too long, or it was not sent from this site. Go back, reload the page and try again.")
}

// loginPost: POST /login, the login page's form. The password counts
// against the brute-force limits of /auth/login; a wrong password or an
// unknown email shows the form again with one message. Success starts the
// sign-in session and answers the authorization request with a code.
func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) error {
	form, ok, err := s.postedForm(w, r)
	if !ok {
		return err
	}
	key, ok := s.checkForm(r, form, formLogin)
	if !ok {
		return s.badForm(w)
	}
	req, ok, err := s.resumeRequest(w, r, form.Get("request"), key)
	if !ok {
		return err
	}
	if form.Get("action") == "cancel" {
		return s.cancelSignIn(w, r, req)
	}
	email, pw := form.Get("email"), form.Get("password")
	if email == "" || pw == "" {
		return s.loginPage(w, r, req, loginForm{Email: email, Error: "Enter your email and your password."}, http.StatusBadRequest)
	}
	m := s.withDevice(w, r, meta(r, req.ClientID))
	proof, err := s.cfg.Login.Password(r.Context(), email, secret.String(pw), m)
	if err != nil {
		return s.loginFailed(w, r, req, email, err)
	}
	return s.signedIn(w, r, req, proof, m)
}

// signedIn goes on from a successful sign-in step: a proof still waiting
// for its second step gets that step's page; a complete one starts the
// sign-in session (or raises the one being stepped up) and answers req.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, req authorize.Request, proof *login.Proof, m audit.Meta) error {
	if !proof.Complete() {
		proof.SettleFirstStep(r.Context(), s.log)
		return s.factorPage(w, r, req, proof.Pending(), factorForm{}, http.StatusOK)
	}
	si, err := s.startSignIn(w, r, proof, m)
	if errors.Is(err, sessions.ErrStale) {
		return s.loginPage(w, r, req, loginForm{Email: proof.User.Email, Error: "The email or password is incorrect."}, http.StatusBadRequest)
	}
	if err != nil {
		return err
	}
	return s.afterSignIn(w, r, req, si)
}

// afterSignIn answers req with the sign-in session si: a code for the
// client, or tokend's own page.
func (s *Server) afterSignIn(w http.ResponseWriter, r *http.Request, req authorize.Request, si store.SignIn) error {
	if req.Return != "" {
		http.Redirect(w, r, req.Return, http.StatusSeeOther)
		return nil
	}
	code, err := s.cfg.Codes.Issue(r.Context(), req, si)
	if err != nil {
		return err
	}
	http.Redirect(w, r, authorize.CodeRedirect(req.RedirectURI, s.cfg.Issuer, req.State, code), http.StatusSeeOther)
	return nil
}

// cancelSignIn answers a sign-in the user cancelled: access_denied to the
// client, or a page for tokend's own.
func (s *Server) cancelSignIn(w http.ResponseWriter, r *http.Request, req authorize.Request) error {
	if req.Return != "" {
		return s.messagePage(w, http.StatusOK, "Sign-in cancelled", "You are not signed in.")
	}
	return s.redirectError(w, r, req.RedirectURI, req.State, &oauth.Error{Code: oauth.CodeAccessDenied,
		Description: "the user cancelled the sign-in"})
}

// loginFailed shows the login page again after a failed password.
func (s *Server) loginFailed(w http.ResponseWriter, r *http.Request, req authorize.Request, email string, err error) error {
	var te *login.ThrottledError
	switch {
	case errors.Is(err, login.ErrFailed):
		return s.loginPage(w, r, req, loginForm{Email: email, Error: "The email or password is incorrect."}, http.StatusBadRequest)
	case errors.Is(err, login.ErrEmailNotVerified):
		return s.loginPage(w, r, req, loginForm{Email: email, Resend: true, Error: "Your email address is not confirmed yet. " +
			"Open the link we mailed you when you signed up, or have it sent again."}, http.StatusBadRequest)
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
		return s.loginPage(w, r, req, loginForm{Email: email, Error: fmt.Sprintf(
			"Too many attempts. Try again in %s.", humanWait(te.RetryAfter))}, http.StatusTooManyRequests)
	case errors.Is(err, password.ErrBusy):
		w.Header().Set("Retry-After", "1")
		return s.loginPage(w, r, req, loginForm{Email: email, Error: "The server is busy. Try again in a moment."},
			http.StatusTooManyRequests)
	}
	return err
}

// humanWait says a wait in words.
func humanWait(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 90 {
		return fmt.Sprintf("%d seconds", secs)
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}

// startSignIn writes the sign-in session of a proof and sets its cookie.
func (s *Server) startSignIn(w http.ResponseWriter, r *http.Request, proof *login.Proof, m audit.Meta) (store.SignIn, error) {
	value, si, err := s.cfg.Sessions.StartSignIn(r.Context(), sessions.StartSignInRequest{User: proof.User, AuthTime: proof.AuthTime,
		AMR: proof.AMR, Settle: proof.Settle(), Meta: m})
	if err != nil {
		proof.Release(r.Context(), s.log)
		return store.SignIn{}, err
	}
	http.SetCookie(w, hostCookie(signInCookie, value.Reveal(), int(s.cfg.SignInMaxAge/time.Second)))
	return si, nil
}

// signupPage: GET and POST /signup, the sign-up page next to the login
// page. Whether or not the address has an account, the answer is the same
// "check your email" page (a new account gets the confirmation link, the
// owner of a taken address a mail saying so), with a link back to the
// login page of the authorization request it came from.
func (s *Server) signupPage(w http.ResponseWriter, r *http.Request) error {
	if !s.cfg.Signup {
		return s.messagePage(w, http.StatusForbidden, "Sign-up is closed", "New accounts cannot be created on this server.")
	}
	if r.Method == http.MethodGet {
		sealed := r.URL.Query().Get("request")
		key := s.browserKey(w, r)
		if _, err := s.cfg.Requests.Open(sealed, key); err != nil {
			return s.messagePage(w, http.StatusBadRequest, "This sign-up link has expired",
				"Go back to the application and start signing in again; the sign-in page links here.")
		}
		return s.renderSignup(w, sealed, key, "", "", http.StatusOK)
	}
	form, ok, err := s.postedForm(w, r)
	if !ok {
		return err
	}
	key, ok := s.checkForm(r, form, formSignup)
	if !ok {
		return s.badForm(w)
	}
	req, ok, err := s.resumeRequest(w, r, form.Get("request"), key)
	if !ok {
		return err
	}
	email, pw := form.Get("email"), form.Get("password")
	if _, err := users.ValidateEmail(email); err != nil {
		return s.renderSignup(w, form.Get("request"), key, email, "Enter a valid email address.", http.StatusBadRequest)
	}
	if err := users.ValidatePassword(pw); err != nil {
		return s.renderSignup(w, form.Get("request"), key, email, "The password must be 8 to 1024 bytes long.", http.StatusBadRequest)
	}
	loginURL := routeAuthorize + "?" + req.Params().Encode()
	err = s.cfg.Verify.SignUp(r.Context(), email, pw, meta(r, req.ClientID), s.cfg.Issuer+loginURL)
	var le *throttle.LimitedError
	switch {
	case errors.As(err, &le):
		w.Header().Set("Retry-After", strconv.Itoa(int((le.RetryAfter+time.Second-1)/time.Second)))
		return s.renderSignup(w, form.Get("request"), key, email, "Too many sign-ups from your network or for this address. Try again later.",
			http.StatusTooManyRequests)
	case err != nil:
		return err
	}
	e, _ := users.ValidateEmail(email)
	return s.linkPage(w, http.StatusOK, "Check your email", loginURL, "Back to sign in",
		"We sent a message to "+e+". Open the link in it to confirm your address, then sign in.",
		"The link works for 24 hours. If nothing arrives, look in your spam folder.")
}

func (s *Server) renderSignup(w http.ResponseWriter, sealed, key, email, msg string, status int) error {
	req, _ := s.cfg.Requests.Open(sealed, key)
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Signup, Title: "Create an account", Status: status,
		FormAction: []string{pages.FormActionSource(req.RedirectURI)},
		Data: struct {
			Email, Error, Action, CSRF, Request, LoginURL string
		}{email, msg, routeSignupPage, s.cfg.CSRF.Token(key, formSignup), sealed, routeAuthorize + "?" + req.Params().Encode()}})
}

// forgotPage: GET and POST /forgot, which requests a password-reset mail
// (the same request as POST /auth/password/forgot, from a form).
func (s *Server) forgotPage(w http.ResponseWriter, r *http.Request) error {
	back := backToAuthorize(r.URL.Query().Get("back"))
	if r.Method == http.MethodGet {
		key := s.browserKey(w, r)
		return s.renderForgot(w, key, back, "", "", false, http.StatusOK)
	}
	form, ok, err := s.postedFormAllowQuery(w, r)
	if !ok {
		return err
	}
	key, ok := s.checkForm(r, form, formForgot)
	if !ok {
		return s.badForm(w)
	}
	email := form.Get("email")
	if _, err := users.ValidateEmail(email); err != nil {
		return s.renderForgot(w, key, back, email, "Enter a valid email address.", false, http.StatusBadRequest)
	}
	if err := s.cfg.Reset.Forgot(r.Context(), email, meta(r, "")); err != nil {
		var le *throttle.LimitedError
		if errors.As(err, &le) {
			w.Header().Set("Retry-After", strconv.Itoa(int((le.RetryAfter+time.Second-1)/time.Second)))
			return s.renderForgot(w, key, back, email, "Too many requests. Try again later.", false, http.StatusTooManyRequests)
		}
		return err
	}
	return s.renderForgot(w, key, back, "", "", true, http.StatusOK)
}

// postedFormAllowQuery reads a form posted to a page whose URL has a query
// (the forgot page keeps its back link there).
func (s *Server) postedFormAllowQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool, error) {
	q := r.URL.RawQuery
	r.URL.RawQuery = ""
	defer func() { r.URL.RawQuery = q }()
	return s.postedForm(w, r)
}

func (s *Server) renderForgot(w http.ResponseWriter, key, back, email, msg string, sent bool, status int) error {
	action := routeForgotPage
	if back != "" {
		action += "?" + url.Values{"back": {back}}.Encode()
	}
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Forgot, Title: "Reset your password", Status: status,
		Data: struct {
			Email, Error, Action, CSRF, BackURL string
			Sent                                bool
		}{email, msg, action, s.cfg.CSRF.Token(key, formForgot), back, sent}})
}
