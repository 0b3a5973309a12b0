package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/users"
	"github.com/tokend/tokend/internal/verify"
)

// VerifyService runs sign-up and email verification (verify.Service).
type VerifyService interface {
	SignUp(ctx context.Context, email, pw string, m audit.Meta, loginURL string) error
	Resend(ctx context.Context, email string, m audit.Meta) error
	Verify(ctx context.Context, token string, m audit.Meta) error
	ChangeEmail(ctx context.Context, userID, keep, newEmail string, m audit.Meta) error
}

// Routes of email verification.
const (
	routeVerify       = "/auth/verify"
	routeVerifyResend = "/auth/verify/resend"
	routeChangeEmail  = "/auth/email"
	routeVerifyPage   = "/verify"
	routeResendPage   = "/verify/resend"

	formResend = "resend"
)

// verifyEmail: POST /auth/verify, the verification page's call.
func (s *Server) verifyEmail(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeJSON(r, "token")
	if err != nil {
		return err
	}
	if in["token"] == "" {
		return badRequest("token is required")
	}
	if err := s.cfg.Verify.Verify(r.Context(), in["token"], meta(r, "")); err != nil {
		return verifyErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// resendVerification: POST /auth/verify/resend. 202 for every email.
func (s *Server) resendVerification(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeJSON(r, "email")
	if err != nil {
		return err
	}
	if in["email"] == "" {
		return badRequest("email is required")
	}
	if err := s.cfg.Verify.Resend(r.Context(), in["email"], meta(r, "")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// changeEmail: POST /auth/email (Bearer). 202: a confirmation link goes to
// the new address and a notice to the old one.
func (s *Server) changeEmail(w http.ResponseWriter, r *http.Request) error {
	c, err := s.bearer(r)
	if err != nil {
		return err
	}
	in, err := decodeJSON(r, "email", "password")
	if err != nil {
		return err
	}
	if in["email"] == "" {
		return badRequest("email is required")
	}
	// An access token is not enough to move the account to another
	// address: a relying party holds one too. The owner proves it with the
	// current password, under the sign-in limits.
	if in["password"] == "" {
		return badRequest("password is required: changing the address needs the account's current password")
	}
	u, err := s.cfg.Users.ByID(r.Context(), c.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled()) {
		return invalidToken("the account of this access token is not active")
	}
	if err != nil {
		return err
	}
	proof, err := s.cfg.Login.Password(r.Context(), u.Email, secret.String(in["password"]), meta(r, c.ClientID))
	switch {
	case errors.Is(err, login.ErrFailed):
		return &Error{Status: http.StatusBadRequest, Code: codeInvalidGrant, Description: "the password is not right"}
	case errors.Is(err, login.ErrEmailNotVerified):
		// The right password of an unverified address: moving it is how
		// a typo is fixed.
	case err != nil:
		return err
	default:
		proof.SettleFirstStep(r.Context(), s.log)
	}
	if err := s.cfg.Verify.ChangeEmail(r.Context(), c.Subject, c.SessionID, in["email"], meta(r, c.ClientID)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func verifyErr(err error) error {
	if errors.Is(err, verify.ErrInvalidToken) {
		return &Error{Status: http.StatusBadRequest, Code: codeInvalidGrant,
			Description: "the verification link is invalid, expired or already used"}
	}
	return err
}

// verifyPage: GET /verify, the page the mailed link opens. Its script
// reads the token from the fragment and posts it to POST /auth/verify.
func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) error {
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Verify, Title: "Confirm your email address",
		Data: struct{ Endpoint, ResendURL string }{s.cfg.Issuer + routeVerify, routeResendPage}})
}

// resendPage: GET and POST /verify/resend, which asks for a new
// confirmation link (the same request as POST /auth/verify/resend, from a
// form). The login page's "send the mail again" button posts here.
func (s *Server) resendPage(w http.ResponseWriter, r *http.Request) error {
	back := backToAuthorize(r.URL.Query().Get("back"))
	if r.Method == http.MethodGet {
		key := s.browserKey(w, r)
		return s.renderResend(w, key, back, "", "", false, http.StatusOK)
	}
	form, ok, err := s.postedFormAllowQuery(w, r)
	if !ok {
		return err
	}
	key, ok := s.checkForm(r, form, formResend)
	if !ok {
		return s.badForm(w)
	}
	email := form.Get("email")
	if _, err := users.ValidateEmail(email); err != nil {
		return s.renderResend(w, key, back, email, "Enter a valid email address.", false, http.StatusBadRequest)
	}
	if err := s.cfg.Verify.Resend(r.Context(), email, meta(r, "")); err != nil {
		var le *throttle.LimitedError
		if errors.As(err, &le) {
			w.Header().Set("Retry-After", strconv.Itoa(int((le.RetryAfter+time.Second-1)/time.Second)))
			return s.renderResend(w, key, back, email, "Too many requests. Try again later.", false, http.StatusTooManyRequests)
		}
		return err
	}
	return s.renderResend(w, key, back, "", "", true, http.StatusOK)
}

func (s *Server) renderResend(w http.ResponseWriter, key, back, email, msg string, sent bool, status int) error {
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Resend, Title: "Confirm your email address", Status: status,
		Data: struct {
			Email, Error, Action, CSRF, BackURL string
			Sent                                bool
		}{email, msg, resendAction(back), s.cfg.CSRF.Token(key, formResend), back, sent}})
}

// resendAction is where the resend form posts, keeping its way back.
func resendAction(back string) string {
	if back == "" {
		return routeResendPage
	}
	return routeResendPage + "?" + url.Values{"back": {back}}.Encode()
}

// backToAuthorize keeps a "back" link only when it leads to the
// authorization endpoint of this server.
func backToAuthorize(back string) string {
	if u, err := url.Parse(back); err != nil || (u.Path != routeAuthorize && u.Path != routeAccountPage) || u.Host != "" || u.Scheme != "" {
		return ""
	}
	return back
}
