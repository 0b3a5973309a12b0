package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/store"
)

// endSession: GET and POST /oauth/logout (OpenID Connect RP-Initiated
// Logout 1.0). With a valid id_token_hint the sign-in session it names ends
// at once, with every family started through it; without one, the browser's
// own session ends only after the user confirms on a page (a POST with a
// CSRF token), so that a link on another site cannot sign anyone out. Then
// the browser goes to the client's registered post_logout_redirect_uri with
// state, or sees a signed-out page. An unregistered URI is never redirected
// to.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) error {
	var params url.Values
	confirmed := false
	if r.Method == http.MethodPost {
		form, ok, err := s.postedForm(w, r)
		if !ok {
			return err
		}
		// A relying party may POST its logout request (RP-Initiated
		// Logout §2); only tokend's own confirmation form carries csrf.
		if form.Has("csrf") {
			if _, ok := s.checkForm(r, form, formLogout); !ok {
				return s.badForm(w)
			}
			confirmed = true
		}
		params = form
	} else {
		params = r.URL.Query()
	}
	for k, v := range params {
		if len(v) > 1 {
			return s.messagePage(w, http.StatusBadRequest, "This sign-out request is not valid", "The parameter "+printable(k)+" is repeated.")
		}
	}
	clientID := params.Get("client_id")
	var hintSignIn, hintUser string
	if hint := params.Get("id_token_hint"); hint != "" {
		c, err := s.cfg.Verifier.VerifyIDTokenHint(hint)
		if err != nil {
			return s.messagePage(w, http.StatusBadRequest, "This sign-out request is not valid",
				"The application sent an ID token this server did not issue, or one signed with a key it no longer publishes.")
		}
		if clientID != "" && !slices.Contains(c.Audience, clientID) {
			return s.messagePage(w, http.StatusBadRequest, "This sign-out request is not valid",
				"The client_id does not match the ID token.")
		}
		clientID = c.Audience[0]
		hintSignIn, hintUser = c.SessionID, c.Subject
	}
	redirect := params.Get("post_logout_redirect_uri")
	if redirect != "" {
		c, err := s.cfg.Clients.Get(r.Context(), clientID)
		if errors.Is(err, clients.ErrNotFound) || (err == nil && !clients.PostLogoutRedirectURIAllowed(c, redirect)) {
			return s.messagePage(w, http.StatusBadRequest, "This sign-out request is not valid",
				"The post_logout_redirect_uri is not registered for this application (or the application sent no client_id).")
		}
		if err != nil {
			return err
		}
	}
	current, err := s.currentSignIn(r)
	if err != nil {
		return err
	}
	m := meta(r, clientID)
	switch {
	case hintSignIn != "":
		si, err := s.cfg.Sessions.SignIn(r.Context(), hintSignIn)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && si.UserID == hintUser {
			if err := s.cfg.Sessions.EndSignIn(r.Context(), si, audit.Logout, m); err != nil {
				return err
			}
		}
		if current != nil && current.ID == hintSignIn {
			s.clearSignInCookie(w)
		}
	case current != nil && !confirmed:
		return s.logoutConfirm(w, r, current, params)
	case current != nil:
		if err := s.cfg.Sessions.EndSignIn(r.Context(), *current, audit.Logout, m); err != nil {
			return err
		}
		s.clearSignInCookie(w)
	}
	if redirect != "" {
		v := url.Values{}
		if st := params.Get("state"); st != "" {
			v.Set("state", st)
		}
		target := redirect
		if len(v) > 0 {
			target = authorizeWithQuery(redirect, v)
		}
		http.Redirect(w, r, target, http.StatusFound)
		return nil
	}
	return s.messagePage(w, http.StatusOK, "You are signed out", "You can close this window.")
}

func (s *Server) clearSignInCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode})
}

// logoutConfirm asks the user to confirm signing out.
func (s *Server) logoutConfirm(w http.ResponseWriter, r *http.Request, si *store.SignIn, params url.Values) error {
	key := s.browserKey(w, r)
	email := ""
	if u, err := s.cfg.Users.ByID(r.Context(), si.UserID); err == nil {
		email = u.Email
	}
	keep := map[string]string{}
	for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
		if v := params.Get(k); v != "" {
			keep[k] = v
		}
	}
	var formAction []string
	if src := pages.FormActionSource(params.Get("post_logout_redirect_uri")); src != "" {
		formAction = append(formAction, src)
	}
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Logout, Title: "Sign out", FormAction: formAction,
		Data: struct {
			Email, Action, CSRF string
			Params              map[string]string
		}{email, routeLogoutEndpoint, s.cfg.CSRF.Token(key, formLogout), keep}})
}

// authorizeWithQuery adds v to a registered redirect URI.
func authorizeWithQuery(uri string, v url.Values) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	q := u.Query()
	for k, x := range v {
		q[k] = x
	}
	u.RawQuery = q.Encode()
	return u.String()
}
