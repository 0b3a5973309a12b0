package httpapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestBrowserCookiesHostPrefixed: the cookies tokend sets on Path=/ (the
// sign-in session and the CSRF key) are __Host- cookies, Secure with
// Path=/ and no Domain, so another server on the same host (another port)
// cannot plant one (login CSRF); cookies without the prefix are ignored.
// Dev mode on an http loopback issuer (where the refresh cookie drops
// Secure) keeps them Secure too: __Host- requires it, and browsers, curl
// and Go's cookie jar all treat loopback as a secure origin.
func TestBrowserCookiesHostPrefixed(t *testing.T) {
	for _, dev := range []bool{false, true} {
		t.Run(map[bool]string{false: "production", true: "dev"}[dev], func(t *testing.T) {
			s := tokendtest.Start(t, tokendtest.Options{Configure: func(c *config.Config) { c.Dev = dev }})
			createUser(t, s, "cookie@example.com")
			wantHostCookie := func(t *testing.T, r *tokendtest.Response, name string, cleared bool) string {
				t.Helper()
				var raw []string
				for _, sc := range r.Header.Values("Set-Cookie") {
					if strings.HasPrefix(sc, name+"=") {
						raw = append(raw, sc)
					}
				}
				c := r.Cookie(name)
				if len(raw) != 1 || c == nil {
					t.Fatalf("want one Set-Cookie %s, got %q", name, r.Header.Values("Set-Cookie"))
				}
				if !c.Secure || c.Path != "/" || c.Domain != "" || strings.Contains(strings.ToLower(raw[0]), "domain=") ||
					!c.HttpOnly || c.SameSite != http.SameSiteLaxMode || (c.MaxAge < 0) != cleared {
					t.Fatalf("Set-Cookie %q: want Secure; Path=/; no Domain; HttpOnly; SameSite=Lax", raw[0])
				}
				return c.Value
			}

			br := newBrowser(t, s)
			p := newPKCE()
			page := br.get(t, "/oauth/authorize?"+authParams(p).Encode())
			csrfKey := wantHostCookie(t, page, "__Host-tokend_csrf", false)
			signedIn := br.signIn(t, wantLoginPage(t, page, http.StatusOK), "cookie@example.com", testPassword)
			redirected(t, signedIn, http.StatusSeeOther)
			signIn := wantHostCookie(t, signedIn, "__Host-tokend_signin", false)
			for _, sc := range append(page.Header.Values("Set-Cookie"), signedIn.Header.Values("Set-Cookie")...) {
				if strings.HasPrefix(sc, "tokend_") {
					t.Fatalf("an unprefixed cookie was set: %q", sc)
				}
			}

			// The same values under the old names, as another port on the
			// host could plant them, are not the browser's session or key.
			planted := s.NewRequest(t, http.MethodGet, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "none").Encode(), nil)
			planted.Header.Set("Cookie", "tokend_signin="+signIn+"; tokend_csrf="+csrfKey)
			if q := redirected(t, s.Do(t, planted), http.StatusFound); q.Get("error") != "login_required" {
				t.Fatalf("an unprefixed sign-in cookie was accepted: %v", q)
			}
			form := url.Values{"csrf": {wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "login").Encode()),
				http.StatusOK).Get("csrf")}, "action": {"logout"}}
			post := s.NewRequest(t, http.MethodPost, "/oauth/logout", strings.NewReader(form.Encode()))
			post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			post.Header.Set("Cookie", "tokend_signin="+signIn+"; tokend_csrf="+csrfKey)
			if r := s.Do(t, post); r.Status != http.StatusBadRequest {
				t.Fatalf("a form checked against an unprefixed CSRF cookie: %d %s", r.Status, r.Body)
			}
			// With the real cookies: single sign-on, and logout clears the
			// prefixed cookie.
			redirected(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "none").Encode()), http.StatusFound)
			lo := br.get(t, "/oauth/logout")
			f := formFields(t, lo.Body)
			f.Set("action", "logout")
			wantHostCookie(t, br.post(t, "/oauth/logout", f), "__Host-tokend_signin", true)
		})
	}
}
