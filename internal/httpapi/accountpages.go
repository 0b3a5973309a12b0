package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/authorize"
	"github.com/tokend/tokend/internal/factors"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
)

// The account pages: a signed-in user (the browser's sign-in session)
// manages their second factors. Changes need the password again and, once
// the account has a second factor, a sign-in session at acr aal2 (see
// factorsGate).
const (
	routeAccountPage = "/account"
	routeAccountTOTP = "/account/totp"
	formAccount      = "account"
	formTOTP         = "totp"
	enrolmentPurpose = "tokend totp enrolment v1"
	enrolmentTTL     = 15 * time.Minute
)

// notices are the messages the account page shows after a change (by key,
// so nothing from the URL is shown as is).
var notices = map[string]string{
	"totp-on":    "Two-step verification is on: signing in now asks for a code from your authenticator app.",
	"passkey-on": "Your passkey is added: sign in with it alone, or after your password.",
	"removed":    "Removed.",
	"no-codes":   "Your recovery codes are used up: make new ones below.",
}

// stepUpNotice is what the second step's page says when the account pages
// send a browser there.
const stepUpNotice = "You signed in without your second factor. Use it now to change your two-step verification settings; " +
	"you come back to your account page."

// factorsGate keeps the factors of an account that has one from changing
// through a sign-in session of one factor (acr aal1: the password, say,
// from before the factor was added): a password must not add, replace or
// remove what protects the account beyond it. Such a session gets the
// second step's page, the step-up /oauth/authorize gives acr_values=aal2,
// which comes back to path; nothing is changed. An account without a factor
// passes (its first factor needs only the password). It reports whether it
// answered.
func (s *Server) factorsGate(w http.ResponseWriter, r *http.Request, si *store.SignIn, path string) (bool, error) {
	if oauth.ACROf(si.AMR) == oauth.ACR2 {
		return false, nil
	}
	req := authorize.AccountRequest(path)
	req.ACRValues = oauth.ACR2
	return s.stepUp(w, r, req, si, factorForm{Notice: stepUpNotice})
}

// accountSession is the browser's sign-in session and its user, or a
// login page that comes back to path when there is none.
func (s *Server) accountSession(w http.ResponseWriter, r *http.Request, path string) (*store.SignIn, store.User, bool, error) {
	si, err := s.currentSignIn(r)
	if err != nil {
		return nil, store.User{}, false, err
	}
	if si == nil {
		return nil, store.User{}, false, s.loginPage(w, r, authorize.AccountRequest(path), loginForm{}, http.StatusOK)
	}
	u, err := s.cfg.Users.ByID(r.Context(), si.UserID)
	if err != nil {
		return nil, store.User{}, false, err
	}
	return si, u, true, nil
}

type accountForm struct {
	Notice, Error string
}

// routeAccountStepUp is the account page's link that steps its sign-in
// session up (factorsGate) before a change.
const routeAccountStepUp = routeAccountPage + "?step-up=1"

func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, u store.User, f accountForm, status int) error {
	sum, err := s.cfg.Factors.Summary(r.Context(), u.ID)
	if err != nil {
		return err
	}
	var stepUpURL string
	if sum.Required() {
		si, err := s.currentSignIn(r)
		if err != nil {
			return err
		}
		if si != nil && oauth.ACROf(si.AMR) != oauth.ACR2 {
			stepUpURL = routeAccountStepUp
		}
	}
	type since struct{ Since string }
	type named struct{ Name, Since string }
	type removable struct{ ID, Label string }
	var (
		totpOn *since
		keys   []named
		remove []removable
	)
	for _, fa := range sum.Factors {
		day := fa.CreatedAt.UTC().Format("2 January 2006")
		switch fa.Kind {
		case store.FactorTOTP:
			totpOn = &since{day}
			remove = append(remove, removable{fa.ID, "the authenticator app"})
		case store.FactorWebAuthn:
			keys = append(keys, named{fa.Name, day})
			remove = append(remove, removable{fa.ID, "passkey “" + fa.Name + "”"})
		}
	}
	if f.Notice == "" && sum.Required() && sum.RecoveryCodes == 0 {
		f.Notice = notices["no-codes"]
	}
	key := s.browserKey(w, r)
	var passkeyAction string
	if s.cfg.Passkeys != nil {
		passkeyAction = routeAccountPasskey
	}
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Account, Title: "Your account", Status: status,
		Data: struct {
			accountForm
			Email, Action, CSRF, TOTPURL, PasskeyAction, StepUpURL string
			TOTP                                                   *since
			Keys                                                   []named
			HasFactors                                             bool
			RecoveryCodes                                          int
			Removable                                              []removable
		}{f, u.Email, routeAccountPage, s.cfg.CSRF.Token(key, formAccount), routeAccountTOTP, passkeyAction, stepUpURL, totpOn, keys,
			sum.Required(), sum.RecoveryCodes, remove}})
}

// accountPage: GET and POST /account. A POST (new recovery codes, or
// removing a factor) needs a sign-in session at aal2 (factorsGate) and the
// password, checked under the sign-in limits. GET with step-up=1 steps the
// session up first.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet {
		si, u, ok, err := s.accountSession(w, r, routeAccountPage)
		if !ok {
			return err
		}
		if r.URL.Query().Get("step-up") != "" {
			if done, err := s.factorsGate(w, r, si, routeAccountPage); done || err != nil {
				return err
			}
		}
		return s.renderAccount(w, r, u, accountForm{Notice: notices[r.URL.Query().Get("done")]}, http.StatusOK)
	}
	form, ok, err := s.postedForm(w, r)
	if !ok {
		return err
	}
	if _, ok := s.checkForm(r, form, formAccount); !ok {
		return s.badForm(w)
	}
	si, u, ok, err := s.accountSession(w, r, routeAccountPage)
	if !ok {
		return err
	}
	if done, err := s.factorsGate(w, r, si, routeAccountPage); done || err != nil {
		return err
	}
	m := s.withDevice(w, r, meta(r, ""))
	if msg, status, err := s.recheckPassword(w, r, u, form.Get("password"), "Enter your password.", m); err != nil {
		return err
	} else if msg != "" {
		return s.renderAccount(w, r, u, accountForm{Error: msg}, status)
	}
	if id := form.Get("remove"); id != "" {
		err := s.cfg.Factors.Remove(r.Context(), u.ID, id, m)
		if errors.Is(err, factors.ErrNotFound) {
			return s.renderAccount(w, r, u, accountForm{Error: "That was removed already."}, http.StatusBadRequest)
		}
		if err != nil {
			return err
		}
		http.Redirect(w, r, routeAccountPage+"?done=removed", http.StatusSeeOther)
		return nil
	}
	if form.Get("action") == "recovery" {
		sum, err := s.cfg.Factors.Summary(r.Context(), u.ID)
		if err != nil {
			return err
		}
		if !sum.Required() {
			return s.renderAccount(w, r, u, accountForm{Error: "Recovery codes come with two-step verification: turn it on first."},
				http.StatusBadRequest)
		}
		codes, err := s.cfg.Factors.RenewRecoveryCodes(r.Context(), u.ID, m)
		if err != nil {
			return err
		}
		return s.recoveryCodesPage(w, codes, true)
	}
	return s.badForm(w)
}

// recheckPassword asks a signed-in user's password again before an
// account page changes something, under the sign-in limits. A refusal
// comes back as the message and status for the page (with Retry-After set
// on w when a limit was hit); err is for anything else.
func (s *Server) recheckPassword(w http.ResponseWriter, r *http.Request, u store.User, pw, empty string, m audit.Meta) (msg string, status int, err error) {
	if pw == "" {
		return empty, http.StatusBadRequest, nil
	}
	proof, err := s.cfg.Login.Password(r.Context(), u.Email, secret.String(pw), m)
	var te *login.ThrottledError
	switch {
	case err == nil:
		proof.SettleFirstStep(r.Context(), s.log)
		return "", 0, nil
	case errors.Is(err, login.ErrFailed):
		return "The password is incorrect.", http.StatusBadRequest, nil
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
		return fmt.Sprintf("Too many attempts. Try again in %s.", humanWait(te.RetryAfter)), http.StatusTooManyRequests, nil
	case errors.Is(err, password.ErrBusy):
		w.Header().Set("Retry-After", "1")
		return "The server is busy. Try again in a moment.", http.StatusTooManyRequests, nil
	}
	return "", 0, err
}

func (s *Server) recoveryCodesPage(w http.ResponseWriter, codes []secret.String, replaced bool) error {
	shown := make([]string, len(codes))
	for i, c := range codes {
		shown[i] = c.Reveal() // this page is the one place they are shown
	}
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Recovery, Title: "Your recovery codes",
		Data: struct {
			Codes    []string
			Replaced bool
			BackURL  string
		}{shown, replaced, routeAccountPage}})
}

// enrolment is a TOTP secret waiting for its first code, sealed into the
// enrolment form for the user it was made for.
type enrolment struct {
	UserID string `json:"u"`
	Secret []byte `json:"s"`
}

// totpPage: GET and POST /account/totp, setting up an authenticator app
// (after a passkey, from a sign-in session at aal2: factorsGate).
func (s *Server) totpPage(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet {
		si, u, ok, err := s.accountSession(w, r, routeAccountTOTP)
		if !ok {
			return err
		}
		if sum, err := s.cfg.Factors.Summary(r.Context(), u.ID); err != nil {
			return err
		} else if sum.HasTOTP() {
			http.Redirect(w, r, routeAccountPage, http.StatusSeeOther)
			return nil
		}
		if done, err := s.factorsGate(w, r, si, routeAccountTOTP); done || err != nil {
			return err
		}
		return s.renderTOTP(w, r, u, enrolment{UserID: u.ID, Secret: s.cfg.Factors.NewTOTP(u.Email).Secret}, "", http.StatusOK)
	}
	form, ok, err := s.postedForm(w, r)
	if !ok {
		return err
	}
	key, ok := s.checkForm(r, form, formTOTP)
	if !ok {
		return s.badForm(w)
	}
	si, u, ok, err := s.accountSession(w, r, routeAccountTOTP)
	if !ok {
		return err
	}
	if done, err := s.factorsGate(w, r, si, routeAccountTOTP); done || err != nil {
		return err
	}
	var e enrolment
	if err := s.cfg.Forms.Open(enrolmentPurpose, form.Get("enrolment"), key, &e); err != nil || e.UserID != u.ID {
		return s.messagePage(w, http.StatusBadRequest, "This page has expired", "Start setting up the app again from your account page.")
	}
	m := s.withDevice(w, r, meta(r, ""))
	// Turning a factor on needs the password too: a session left open
	// must not let someone else lock the owner out behind their app.
	if msg, status, err := s.recheckPassword(w, r, u, form.Get("password"), "Enter your password.", m); err != nil {
		return err
	} else if msg != "" {
		return s.renderTOTP(w, r, u, e, msg, status)
	}
	codes, err := s.cfg.Factors.ConfirmTOTP(r.Context(), u.ID, e.Secret, form.Get("code"), m)
	switch {
	case errors.Is(err, factors.ErrWrongCode):
		return s.renderTOTP(w, r, u, e, "That code is not right. Enter the code the app shows now.", http.StatusBadRequest)
	case errors.Is(err, factors.ErrHasTOTP):
		http.Redirect(w, r, routeAccountPage, http.StatusSeeOther)
		return nil
	case err != nil:
		return err
	}
	if len(codes) > 0 {
		return s.recoveryCodesPage(w, codes, false)
	}
	http.Redirect(w, r, routeAccountPage+"?done=totp-on", http.StatusSeeOther)
	return nil
}

func (s *Server) renderTOTP(w http.ResponseWriter, r *http.Request, u store.User, e enrolment, errMsg string, status int) error {
	key := s.browserKey(w, r)
	sealed, err := s.cfg.Forms.Seal(enrolmentPurpose, e, key, enrolmentTTL)
	if err != nil {
		return err
	}
	en := s.cfg.Factors.Enrolment(u.Email, e.Secret)
	qr, err := pages.QRCode(en.URI)
	if err != nil {
		return err
	}
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.TOTP, Title: "Set up an authenticator app", Status: status,
		Data: struct {
			Error, Action, CSRF, Enrolment, Key, BackURL string
			QR                                           any
		}{errMsg, routeAccountTOTP, s.cfg.CSRF.Token(key, formTOTP), sealed, groupKey(en.Encoded), routeAccountPage, qr}})
}

// groupKey writes a base32 key in groups of four, as apps show them.
func groupKey(k string) string {
	var out []byte
	for i := 0; i < len(k); i++ {
		if i > 0 && i%4 == 0 {
			out = append(out, ' ')
		}
		out = append(out, k[i])
	}
	return string(out)
}
