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
// Logout 1.0). A valid id_token_hint only says which sign-in session the
// relying party means: that session ends at once, with every family started
// through it, only when the request carries the browser's own sign-in
// cookie for it. Anyone may hold an ID token (it may have expired, §2), so
// a hint without that cookie, or a request without a hint, gets a page
// asking the user to confirm (a POST with a CSRF token, which ends only the
// browser's own session, if any); a link or a script elsewhere cannot sign
// anyone out. Then the browser goes to the client's registered
// post_logout_redirect_uri with state, or sees a signed-out page. An
// unregistered URI is never redirected to.
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
	hint := params.Get("id_token_hint")
	var hintSignIn, hintUser string
	if hint != "" {
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
	case current != nil && hintSignIn != "" && current.ID == hintSignIn && current.UserID == hintUser,
		current != nil && confirmed:
		if err := s.cfg.Sessions.EndSignIn(r.Context(), *current, audit.Logout, m); err != nil {
			return err
		}
		s.clearSignInCookie(w)
	case confirmed:
		// Confirmed by a browser without a session: nothing to end.
	case current != nil || hint != "":
		return s.logoutConfirm(w, r, current, params, clientID)
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
	http.SetCookie(w, hostCookie(signInCookie, "", -1))
}

// logoutConfirm asks the user to confirm signing out of si, the browser's
// own session (nil when the request carried none: the relying party's
// request may have come without the cookie, as a cross-site POST does, and
// the confirmation, posted from this site, will carry it). clientID is the
// request's client, from its client_id or its hint.
func (s *Server) logoutConfirm(w http.ResponseWriter, r *http.Request, si *store.SignIn, params url.Values, clientID string) error {
	key := s.browserKey(w, r)
	email := ""
	if si != nil {
		if u, err := s.cfg.Users.ByID(r.Context(), si.UserID); err == nil {
			email = u.Email
		}
	}
	keep := map[string]string{}
	for _, k := range []string{"post_logout_redirect_uri", "state"} {
		if v := params.Get(k); v != "" {
			keep[k] = v
		}
	}
	if clientID != "" {
		keep["client_id"] = clientID
	}
	var formAction []string
	if src := pages.FormActionSource(params.Get("post_logout_redirect_uri")); src != "" {
		formAction = append(formAction, src)
	}
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Logout, Title: "Sign out", FormAction: formAction,
		Data: struct {
			SignedIn            bool
			Email, Action, CSRF string
			Params              map[string]string
		}{si != nil, email, routeLogoutEndpoint, s.cfg.CSRF.Token(key, formLogout), keep}})
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
