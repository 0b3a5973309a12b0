package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/authorize"
	"github.com/tokend/tokend/internal/factors"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
)

// The second sign-in step: after the password of an account with a second
// factor (or to step a sign-in session up to acr aal2), the page asks for a
// code. What the first step proved travels in the form, sealed
// (login.Pending; formseal), so any instance takes the second step.
const (
	routeFactorPage = "/login/factor"
	formFactor      = "factor"
	pendingPurpose  = "tokend pending sign-in v1"
)

// factorForm is what the second step's page shows.
type factorForm struct {
	Step   string // the step asked for; "" for the account's first
	Error  string
	Notice string // why the step is asked for, when it is not a sign-in
}

// stepLabels name the second steps on the buttons that switch to them.
var stepLabels = map[string]string{
	factors.StepTOTP:     "Use your authenticator app",
	factors.StepRecovery: "Use a recovery code",
	factors.StepWebAuthn: "Use your passkey",
}

// pageSteps are the steps this page takes without a script; a passkey
// (factors.StepWebAuthn) needs the page script and passkeys on.
var pageSteps = []string{factors.StepTOTP, factors.StepRecovery}

// pageTakes reports whether the page can take step.
func (s *Server) pageTakes(step string) bool {
	return slices.Contains(pageSteps, step) || (step == factors.StepWebAuthn && s.cfg.Passkeys != nil)
}

func (s *Server) factorPage(w http.ResponseWriter, r *http.Request, req authorize.Request, p login.Pending, f factorForm, status int) error {
	key := s.browserKey(w, r)
	var offered []string
	var passkey *passkeyForm
	for _, st := range p.Steps {
		if !s.pageTakes(st) {
			continue
		}
		if st == factors.StepWebAuthn {
			var err error
			if passkey, err = s.secondStepPasskey(r, p.UserID, key); err != nil {
				return err
			} else if passkey == nil {
				continue // removed meanwhile
			}
		}
		offered = append(offered, st)
	}
	if len(offered) == 0 {
		return s.messagePage(w, http.StatusForbidden, "This account cannot sign in here",
			"Its second factor cannot be used on this page. Ask the operator to reset it.")
	}
	if !slices.Contains(offered, f.Step) {
		f.Step = offered[0]
	}
	if f.Step != factors.StepWebAuthn {
		passkey = nil
	}
	sealed, err := s.cfg.Forms.Seal(pendingPurpose, p, key, login.PendingTTL)
	if err != nil {
		return err
	}
	type alt struct{ Step, Label string }
	var alts []alt
	for _, st := range offered {
		if st != f.Step {
			alts = append(alts, alt{st, stepLabels[st]})
		}
	}
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Factor, Title: "Two-step verification", Status: status,
		FormAction: []string{pages.FormActionSource(req.RedirectURI)}, Script: passkey != nil,
		Data: struct {
			factorForm
			Action, CSRF, Request, Pending, Email string
			Alternatives                          []alt
			Passkey                               *passkeyForm
		}{f, routeFactorPage, s.cfg.CSRF.Token(key, formFactor), s.cfg.Requests.Seal(req, key), sealed, p.Email, alts, passkey}})
}

// factorPost: POST /login/factor, the second step's form.
func (s *Server) factorPost(w http.ResponseWriter, r *http.Request) error {
	form, ok, err := s.postedForm(w, r)
	if !ok {
		return err
	}
	key, ok := s.checkForm(r, form, formFactor)
	if !ok {
		return s.badForm(w)
	}
	req, ok, err := s.resumeRequest(w, r, form.Get("request"), key)
	if !ok {
		return err
	}
	var p login.Pending
	if err := s.cfg.Forms.Open(pendingPurpose, form.Get("pending"), key, &p); err != nil {
		return s.messagePage(w, http.StatusBadRequest, "This sign-in page has expired",
			"Go back to the application and start signing in again.")
	}
	if form.Get("action") == "cancel" {
		// The pending sign-in ends here: a copy of its page posted later
		// completes nothing (the application was told access_denied).
		if err := s.cfg.Login.EndPending(r.Context(), p); err != nil {
			return err
		}
		if p.SignInID != "" && req.Return != "" {
			// A step-up for the account pages: the user stays signed in.
			http.Redirect(w, r, routeAccountPage, http.StatusSeeOther)
			return nil
		}
		return s.cancelSignIn(w, r, req)
	}
	if st := form.Get("switch"); st != "" {
		return s.factorPage(w, r, req, p, factorForm{Step: st}, http.StatusOK)
	}
	step, code := form.Get("step"), form.Get("code")
	if !s.pageTakes(step) {
		return s.badForm(w)
	}
	wrong := "That code is not right, or it was used already."
	if step == factors.StepWebAuthn {
		wrong = "That passkey was not accepted. Try again, or choose another way below."
		if code == "" {
			return s.factorPage(w, r, req, p, factorForm{Step: step, Error: "Use your passkey."}, http.StatusBadRequest)
		}
		var ok bool
		if code, ok = s.passkeyStepInput(form, key); !ok {
			return s.factorPage(w, r, req, p, factorForm{Step: step, Error: "The page was open for too long. Try your passkey again."},
				http.StatusBadRequest)
		}
	} else if code == "" {
		return s.factorPage(w, r, req, p, factorForm{Step: step, Error: "Enter the code."}, http.StatusBadRequest)
	}
	m := s.withDevice(w, r, meta(r, req.ClientID))
	proof, err := s.cfg.Login.SecondStep(r.Context(), p, step, code, m)
	var te *login.ThrottledError
	switch {
	case errors.Is(err, login.ErrPendingUsed):
		return s.messagePage(w, http.StatusBadRequest, "This sign-in page has expired",
			"Go back to the application and start signing in again.")
	case errors.Is(err, login.ErrWrongFactor):
		if step == factors.StepWebAuthn {
			s.log.InfoContext(r.Context(), "passkey second step refused", "user_id", p.UserID, "err", err)
		}
		return s.factorPage(w, r, req, p, factorForm{Step: step, Error: wrong}, http.StatusBadRequest)
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
		return s.factorPage(w, r, req, p, factorForm{Step: step, Error: fmt.Sprintf(
			"Too many attempts. Try again in %s.", humanWait(te.RetryAfter))}, http.StatusTooManyRequests)
	case err != nil:
		return err
	}
	if p.SignInID != "" {
		return s.steppedUp(w, r, req, p, proof, m)
	}
	return s.signedIn(w, r, req, proof, m)
}

// steppedUp raises the sign-in session p named to the proof's methods and
// answers req with it.
func (s *Server) steppedUp(w http.ResponseWriter, r *http.Request, req authorize.Request, p login.Pending, proof *login.Proof, m audit.Meta) error {
	si, err := s.cfg.Sessions.StepUpSignIn(r.Context(), p.SignInID, proof.AMR, proof.Settle(), m)
	if errors.Is(err, sessions.ErrStale) {
		proof.Release(r.Context(), s.log)
		return s.answer(w, r, req, nil, "Your session ended. Sign in again.")
	}
	if err != nil {
		proof.Release(r.Context(), s.log)
		return err
	}
	return s.afterSignIn(w, r, req, si)
}

// stepUp asks the user of the sign-in session si for a second factor, when
// their account has one, so that si reaches acr aal2; with none, si answers
// as it is (its ID token's acr says aal1). prompt=none cannot show a page:
// interaction_required. f is what the page shows besides the step (a
// notice for the account pages' step-up).
func (s *Server) stepUp(w http.ResponseWriter, r *http.Request, req authorize.Request, si *store.SignIn, f factorForm) (bool, error) {
	steps, err := s.cfg.Factors.SecondSteps(r.Context(), si.UserID)
	if err != nil || len(steps) == 0 {
		return false, err
	}
	if req.Prompt == oauth.PromptNone {
		return true, s.redirectError(w, r, req.RedirectURI, req.State, &oauth.Error{Code: oauth.CodeInteractionRequired,
			Description: "a second factor is required"})
	}
	u, err := s.cfg.Users.ByID(r.Context(), si.UserID)
	if err != nil {
		return false, err
	}
	p := login.Pending{ID: login.NewPendingID(), UserID: si.UserID, Email: u.Email, CredentialVersion: u.CredentialVersion, AuthTime: si.AuthTime,
		AMR: si.AMR, Steps: steps, SignInID: si.ID}
	return true, s.factorPage(w, r, req, p, f, http.StatusOK)
}
