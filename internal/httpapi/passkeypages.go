package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/passkeys"
)

// Passkeys in the browser (see package passkeys): a "Sign in with a
// passkey" form on the login page, the passkey as the second step, and
// adding one from the account page. Each ceremony's state travels in its
// form sealed to the browser (formseal) under a purpose of its own, for
// passkeys.CeremonyTTL; the challenge in it is answered once across every
// instance. The page script (pages' passkey.js) calls WebAuthn and posts
// the answer; without it, these forms stay hidden or say so, and the
// password, authenticator-app and recovery-code paths work as before.
const (
	routeLoginPasskey   = "/login/passkey"
	routeAccountPasskey = "/account/passkey"
	formPasskey         = "passkey"

	passkeySignInPurpose   = "tokend passkey sign-in v1"
	passkeySecondPurpose   = "tokend passkey second step v1"
	passkeyRegisterPurpose = "tokend passkey registration v1"
)

// passkeyForm is a ceremony on a page: the options for the script and the
// sealed state.
type passkeyForm struct {
	Action, CSRF, Request string
	Options, Ceremony     string
}

// sealCeremony seals c for the browser key under purpose.
func (s *Server) sealCeremony(purpose string, c any, key string) (string, error) {
	return s.cfg.Forms.Seal(purpose, c, key, passkeys.CeremonyTTL)
}

// loginPasskey is the login page's passkey form, or nil when passkeys are
// off (or the ceremony could not begin: the page works without it).
func (s *Server) loginPasskey(r *http.Request, key, csrfToken, sealedReq string) *passkeyForm {
	if s.cfg.Passkeys == nil {
		return nil
	}
	opts, c, err := s.cfg.Passkeys.BeginPasskey()
	if err == nil {
		var sealed string
		if sealed, err = s.sealCeremony(passkeySignInPurpose, c, key); err == nil {
			return &passkeyForm{Action: routeLoginPasskey, CSRF: csrfToken, Request: sealedReq, Options: string(opts), Ceremony: sealed}
		}
	}
	s.log.ErrorContext(r.Context(), "begin a passkey sign-in", "err", err)
	return nil
}

// loginPasskeyPost: POST /login/passkey, a sign-in with a passkey alone.
// It counts against the address's limit of failed passkey sign-ins; success
// goes on as the password does (login.Service.Passkey is complete by
// itself: no second step).
func (s *Server) loginPasskeyPost(w http.ResponseWriter, r *http.Request) error {
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
	if s.cfg.Passkeys == nil {
		return s.loginPage(w, r, req, loginForm{Error: "Passkeys cannot be used on this server."}, http.StatusBadRequest)
	}
	var c passkeys.Ceremony
	if err := s.cfg.Forms.Open(passkeySignInPurpose, form.Get("ceremony"), key, &c); err != nil {
		return s.loginPage(w, r, req, loginForm{Error: "The page was open for too long. Try your passkey again."}, http.StatusBadRequest)
	}
	answer := form.Get("credential")
	if answer == "" {
		return s.loginPage(w, r, req, loginForm{Error: "Your browser sent no passkey. Try again."}, http.StatusBadRequest)
	}
	m := s.withDevice(w, r, meta(r, req.ClientID))
	proof, err := s.cfg.Login.Passkey(r.Context(), passkeys.EncodeInput(c, answer), m)
	var te *login.ThrottledError
	switch {
	case errors.Is(err, login.ErrPasskeyFailed):
		s.log.InfoContext(r.Context(), "passkey sign-in refused", "address", m.Address, "err", err)
		return s.loginPage(w, r, req, loginForm{Error: "That passkey could not sign you in. Try again, or use your password."},
			http.StatusBadRequest)
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
		return s.loginPage(w, r, req, loginForm{Error: fmt.Sprintf("Too many attempts. Try again in %s.", humanWait(te.RetryAfter))},
			http.StatusTooManyRequests)
	case errors.Is(err, login.ErrEmailNotVerified):
		return s.loginFailed(w, r, req, "", err)
	case err != nil:
		return err
	}
	return s.signedIn(w, r, req, proof, m)
}

// secondStepPasskey is the second step's passkey ceremony for the user of
// a pending sign-in, or nil (passkeys off, or none left).
func (s *Server) secondStepPasskey(r *http.Request, userID, key string) (*passkeyForm, error) {
	if s.cfg.Passkeys == nil {
		return nil, nil
	}
	opts, c, err := s.cfg.Passkeys.BeginSecondStep(r.Context(), userID)
	if errors.Is(err, passkeys.ErrNoPasskey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sealed, err := s.sealCeremony(passkeySecondPurpose, c, key)
	if err != nil {
		return nil, err
	}
	return &passkeyForm{Options: string(opts), Ceremony: sealed}, nil
}

// registration is a passkey being added, sealed into its page: for whom,
// under what name, and the ceremony.
type registration struct {
	UserID   string            `json:"u"`
	Name     string            `json:"n"`
	Ceremony passkeys.Ceremony `json:"c"`
}

// accountPasskey: POST /account/passkey. action=begin (from the account
// page: a name and the password, checked under the sign-in limits) shows
// the page whose script creates the passkey; action=finish (that page's
// form) registers it. Once the account has a second factor, both need a
// sign-in session at aal2 (factorsGate). The first factor of an account
// comes with its recovery codes, shown once.
func (s *Server) accountPasskey(w http.ResponseWriter, r *http.Request) error {
	form, ok, err := s.postedForm(w, r)
	if !ok {
		return err
	}
	purpose := formAccount
	if form.Get("action") == "finish" {
		purpose = formPasskey
	}
	key, ok := s.checkForm(r, form, purpose)
	if !ok {
		return s.badForm(w)
	}
	si, u, ok, err := s.accountSession(w, r, routeAccountPage)
	if !ok {
		return err
	}
	if s.cfg.Passkeys == nil {
		return s.renderAccount(w, r, u, accountForm{Error: "Passkeys cannot be used on this server."}, http.StatusBadRequest)
	}
	if done, err := s.factorsGate(w, r, si, routeAccountPage); done || err != nil {
		return err
	}
	m := s.withDevice(w, r, meta(r, ""))
	if purpose == formAccount {
		if form.Get("action") != "begin" {
			return s.badForm(w)
		}
		if msg, status, err := s.recheckPassword(w, r, u, form.Get("password"), "Enter your password to add a passkey.", m); err != nil {
			return err
		} else if msg != "" {
			return s.renderAccount(w, r, u, accountForm{Error: msg}, status)
		}
		opts, c, err := s.cfg.Passkeys.BeginRegistration(r.Context(), u)
		if err != nil {
			return err
		}
		sealed, err := s.sealCeremony(passkeyRegisterPurpose, registration{UserID: u.ID,
			Name: passkeys.Name(form.Get("name"), nil), Ceremony: c}, key)
		if err != nil {
			return err
		}
		return s.cfg.Pages.Render(w, pages.Page{Name: pages.Passkey, Title: "Add a passkey",
			Data: struct {
				Error, Email, Action, CSRF, Options, Ceremony, BackURL string
			}{"", u.Email, routeAccountPasskey, s.cfg.CSRF.Token(key, formPasskey), string(opts), sealed, routeAccountPage}})
	}
	var reg registration
	if err := s.cfg.Forms.Open(passkeyRegisterPurpose, form.Get("ceremony"), key, &reg); err != nil || reg.UserID != u.ID {
		return s.renderAccount(w, r, u, accountForm{Error: "The passkey page was open for too long. Add the passkey again."},
			http.StatusBadRequest)
	}
	answer := form.Get("credential")
	if answer == "" {
		return s.renderAccount(w, r, u, accountForm{Error: "Your browser sent no passkey. Add the passkey again."}, http.StatusBadRequest)
	}
	codes, err := s.cfg.Passkeys.Register(r.Context(), u, reg.Ceremony, reg.Name, answer, m)
	switch {
	case errors.Is(err, passkeys.ErrKnownCredential):
		return s.renderAccount(w, r, u, accountForm{Error: "That passkey is registered already."}, http.StatusBadRequest)
	case errors.Is(err, passkeys.ErrRejected):
		s.log.InfoContext(r.Context(), "passkey registration refused", "user_id", u.ID, "err", err)
		return s.renderAccount(w, r, u, accountForm{Error: "The passkey could not be added. Try again."}, http.StatusBadRequest)
	case err != nil:
		return err
	}
	if len(codes) > 0 {
		return s.recoveryCodesPage(w, codes, false)
	}
	http.Redirect(w, r, routeAccountPage+"?done=passkey-on", http.StatusSeeOther)
	return nil
}

// passkeyStepInput is the second step's input for a passkey: the ceremony
// the form carries, opened, with the browser's answer; ok false when the
// ceremony expired or was not this browser's.
func (s *Server) passkeyStepInput(form interface{ Get(string) string }, key string) (string, bool) {
	var c passkeys.Ceremony
	if err := s.cfg.Forms.Open(passkeySecondPurpose, form.Get("ceremony"), key, &c); err != nil {
		return "", false
	}
	return passkeys.EncodeInput(c, form.Get("code")), true
}
