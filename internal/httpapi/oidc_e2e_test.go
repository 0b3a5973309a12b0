package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestAuthorizationCodeFlow runs the flow an OpenID Connect relying party
// runs, over plain HTTP: the login page, a code, its exchange for access,
// refresh and ID tokens, userinfo, a refresh with a new ID token, single
// sign-on for a second request, and RP-initiated logout.
func TestAuthorizationCodeFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "flow@example.com")
		br := newBrowser(t, s)
		p := newPKCE()

		q := br.codeFlow(t, p, "flow@example.com")
		if q.Get("state") != "st-123" || q.Get("iss") != s.URL || q.Get("code") == "" {
			t.Fatalf("code response %v", q)
		}
		ct := exchanged(t, exchange(t, s, q.Get("code"), p.verifier))
		if ct.RefreshToken == "" || ct.IDToken == "" || ct.Scope != "email openid" {
			t.Fatalf("token response %+v", ct)
		}

		// The ID token (OIDC Core §2).
		h, c := jwtParts(t, ct.IDToken)
		if h["typ"] != "JWT" || h["kid"] == "" {
			t.Fatalf("ID token header %v", h)
		}
		sum := sha256.Sum256([]byte(ct.AccessToken))
		if h["alg"] == "EdDSA" {
			t.Fatal("the default algorithm is RS256")
		}
		atHash := base64.RawURLEncoding.EncodeToString(sum[:16])
		for k, want := range map[string]any{"iss": s.URL, "sub": u.ID, "aud": "mobile", "azp": "mobile", "nonce": "n-0S6_WzA2Mj",
			"at_hash": atHash, "email": "flow@example.com", "email_verified": true} {
			if c[k] != want {
				t.Errorf("ID token %s = %v, want %v", k, c[k], want)
			}
		}
		if c["sid"] == "" || c["sid"] == nil || c["auth_time"] == nil || c["exp"] == nil || c["iat"] == nil {
			t.Errorf("ID token lacks sid, auth_time, exp or iat: %v", c)
		}
		if amr, _ := c["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
			t.Errorf("amr = %v", c["amr"])
		}
		// The access token is not an ID token, and the other way round.
		if ah, _ := jwtParts(t, ct.AccessToken); ah["typ"] != "at+jwt" {
			t.Fatalf("access token typ %v", ah["typ"])
		}
		wantError(t, bearerGet(t, s, "/userinfo", ct.IDToken), 401, "invalid_token")

		// userinfo by GET and POST.
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req := s.NewRequest(t, method, "/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+ct.AccessToken)
			r := s.Do(t, req)
			var info map[string]any
			r.JSON(t, &info)
			if r.Status != 200 || info["sub"] != u.ID || info["email"] != "flow@example.com" || info["email_verified"] != true {
				t.Fatalf("%s /userinfo: %d %s", method, r.Status, r.Body)
			}
		}

		// Discovery's claims_supported lists only claims this ID token or
		// userinfo carry (API.md: nothing advertised that tokend does not
		// do; no acr until second factors exist).
		var disc struct {
			Claims []string `json:"claims_supported"`
		}
		s.Get(t, "/.well-known/openid-configuration").JSON(t, &disc)
		info := map[string]any{}
		infoReq := s.NewRequest(t, http.MethodGet, "/userinfo", nil)
		infoReq.Header.Set("Authorization", "Bearer "+ct.AccessToken)
		s.Do(t, infoReq).JSON(t, &info)
		for _, claim := range disc.Claims {
			if _, inID := c[claim]; !inID {
				if _, inInfo := info[claim]; !inInfo {
					t.Errorf("claims_supported lists %q, which neither the ID token nor userinfo carries", claim)
				}
			}
		}

		// A refresh rotates and brings a new ID token for the same session.
		s.Clock.Advance(time.Minute)
		r := nativeRefresh(t, s, ct.RefreshToken)
		var rt codeTokens
		r.JSON(t, &rt)
		if r.Status != 200 || rt.IDToken == "" || rt.RefreshToken == ct.RefreshToken {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
		if _, rc := jwtParts(t, rt.IDToken); rc["sid"] != c["sid"] || rc["auth_time"] != c["auth_time"] || rc["nonce"] != nil {
			t.Fatalf("the refreshed ID token: %v", rc)
		}

		// Single sign-on: a second request gets its code without the form.
		p2 := newPKCE()
		q2 := redirected(t, br.get(t, "/oauth/authorize?"+authParams(p2, "state", "second").Encode()), http.StatusFound)
		ct2 := exchanged(t, exchange(t, s, q2.Get("code"), p2.verifier))
		if _, c2 := jwtParts(t, ct2.IDToken); c2["sid"] != c["sid"] || c2["auth_time"] != c["auth_time"] {
			t.Fatalf("a second code of one sign-in session: %v", c2)
		}
		// prompt=login asks again, max_age=0 too.
		wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "login").Encode()), http.StatusOK)
		wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "max_age", "0").Encode()), http.StatusOK)
		// prompt=none with the session answers at once.
		redirected(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "none").Encode()), http.StatusFound)

		// The sign-in session is listed with the device sessions.
		list := bearerGet(t, s, "/auth/sessions", rt.AccessToken)
		if list.Status != 200 || !strings.Contains(string(list.Body), `"type":"browser"`) {
			t.Fatalf("sessions: %d %s", list.Status, list.Body)
		}

		// RP-initiated logout with the ID token as hint ends the sign-in
		// session and the families started through it, and goes back to
		// the registered URI with state.
		lo := br.get(t, "/oauth/logout?"+url.Values{"id_token_hint": {ct.IDToken}, "post_logout_redirect_uri": {"http://127.0.0.1/signed-out"},
			"state": {"bye"}}.Encode())
		if lo.Status != http.StatusFound || lo.Header.Get("Location") != "http://127.0.0.1/signed-out?state=bye" {
			t.Fatalf("logout: %d %q", lo.Status, lo.Header.Get("Location"))
		}
		wantError(t, nativeRefresh(t, s, rt.RefreshToken), 400, "invalid_grant")
		wantError(t, nativeRefresh(t, s, ct2.RefreshToken), 400, "invalid_grant")
		if n := liveSessions(t, s, u.ID); n != 0 {
			t.Fatalf("%d sessions survived the logout", n)
		}
		// The browser must sign in again.
		wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
	})
}

// counts are the rows a failed request must not write.
type counts struct{ signIns, codes, families int }

func rowCounts(t *testing.T, s *tokendtest.Server) counts {
	t.Helper()
	var c counts
	for _, x := range []struct {
		table string
		into  *int
	}{{"signin_sessions", &c.signIns}, {"authorization_codes", &c.codes}, {"refresh_families", &c.families}} {
		if err := s.Store.Reader().Get(x.into, "SELECT COUNT(*) FROM "+x.table); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestAuthorizeErrors: the error table of the authorization endpoint and of
// the code exchange (API.md), each with its page or redirect and nothing
// written.
func TestAuthorizeErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "err@example.com")
		p := newPKCE()
		pageCases := []struct {
			name  string
			extra []string
		}{
			{"unknown client", []string{"client_id", "nobody"}},
			{"no client", []string{"client_id", ""}},
			{"unregistered redirect URI", []string{"redirect_uri", "https://evil.example/callback"}},
			{"redirect URI on another path", []string{"redirect_uri", "http://127.0.0.1:53117/callback/../x"}},
			// Loopback: any port (RFC 8252 §7.3), but a port, and the rest
			// exactly as registered.
			{"loopback port 0", []string{"redirect_uri", "http://127.0.0.1:0/callback"}},
			{"loopback port 65536", []string{"redirect_uri", "http://127.0.0.1:65536/callback"}},
			{"loopback port too long", []string{"redirect_uri", "http://127.0.0.1:99999999999999999999/callback"}},
			{"loopback port with a leading zero", []string{"redirect_uri", "http://127.0.0.1:08080/callback"}},
			{"loopback empty port", []string{"redirect_uri", "http://127.0.0.1:/callback"}},
			{"loopback uppercase scheme", []string{"redirect_uri", "HTTP://127.0.0.1:53117/callback"}},
			{"loopback empty query", []string{"redirect_uri", "http://127.0.0.1:53117/callback?"}},
			{"loopback empty fragment", []string{"redirect_uri", "http://127.0.0.1:53117/callback#"}},
			{"loopback fragment", []string{"redirect_uri", "http://127.0.0.1/callback#x"}},
			{"no redirect URI", []string{"redirect_uri", ""}},
		}
		for _, tc := range pageCases {
			t.Run(tc.name, func(t *testing.T) {
				before := rowCounts(t, s)
				r := newBrowser(t, s).get(t, "/oauth/authorize?"+authParams(p, tc.extra...).Encode())
				if r.Status != 400 || r.Header.Get("Location") != "" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
					t.Fatalf("got %d %q %s, want a 400 page and no redirect", r.Status, r.Header.Get("Location"), r.Body)
				}
				if after := rowCounts(t, s); after != before {
					t.Fatalf("rows written: %+v → %+v", before, after)
				}
			})
		}
		redirectCases := []struct {
			name, code string
			extra      []string
		}{
			{"no PKCE", "invalid_request", []string{"code_challenge", "", "code_challenge_method", ""}},
			{"plain PKCE", "invalid_request", []string{"code_challenge_method", "plain"}},
			{"short challenge", "invalid_request", []string{"code_challenge", "abc"}},
			{"token response type", "unsupported_response_type", []string{"response_type", "token"}},
			{"no response type", "invalid_request", []string{"response_type", ""}},
			{"unknown scope", "invalid_scope", []string{"scope", "openid admin"}},
			{"prompt=none without a session", "login_required", []string{"prompt", "none"}},
			{"unknown prompt", "invalid_request", []string{"prompt", "consent"}},
			{"bad max_age", "invalid_request", []string{"max_age", "-1"}},
			{"request object", "request_not_supported", []string{"request", "eyJ"}},
		}
		for _, tc := range redirectCases {
			t.Run(tc.name, func(t *testing.T) {
				before := rowCounts(t, s)
				q := redirected(t, newBrowser(t, s).get(t, "/oauth/authorize?"+authParams(p, tc.extra...).Encode()), http.StatusFound)
				if q.Get("error") != tc.code || q.Get("state") != "st-123" || q.Get("iss") != s.URL || q.Get("error_description") == "" {
					t.Fatalf("redirect %v, want error=%s with state and iss", q, tc.code)
				}
				if after := rowCounts(t, s); after != before {
					t.Fatalf("rows written: %+v → %+v", before, after)
				}
			})
		}

		t.Run("wrong password on the form", func(t *testing.T) {
			br := newBrowser(t, s)
			page := wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(p).Encode()), http.StatusOK)
			before := rowCounts(t, s)
			for _, email := range []string{"err@example.com", "nobody@example.com"} {
				r := br.signIn(t, page, email, "not the password")
				again := wantLoginPage(t, r, http.StatusBadRequest)
				if !strings.Contains(string(r.Body), "The email or password is incorrect.") || again.Get("request") == "" {
					t.Fatalf("wrong password: %s", r.Body)
				}
			}
			if after := rowCounts(t, s); after != before {
				t.Fatalf("rows written: %+v → %+v", before, after)
			}
		})
		t.Run("form without its CSRF token", func(t *testing.T) {
			br := newBrowser(t, s)
			page := wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(p).Encode()), http.StatusOK)
			before := rowCounts(t, s)
			for name, f := range map[string]url.Values{
				"no token":      {"request": {page.Get("request")}, "email": {"err@example.com"}, "password": {testPassword}},
				"another token": {"csrf": {"x" + page.Get("csrf")[1:]}, "request": {page.Get("request")}, "email": {"err@example.com"}, "password": {testPassword}},
			} {
				r := br.post(t, "/login", f)
				if r.Status != 400 || strings.Contains(string(r.Body), `name="password"`) {
					t.Fatalf("%s: %d %s", name, r.Status, r.Body)
				}
			}
			// Another browser's token and request: the cookie decides.
			other := newBrowser(t, s)
			f := url.Values{"csrf": {page.Get("csrf")}, "request": {page.Get("request")}, "email": {"err@example.com"}, "password": {testPassword}}
			if r := other.post(t, "/login", f); r.Status != 400 {
				t.Fatalf("a form posted from another browser: %d %s", r.Status, r.Body)
			}
			if after := rowCounts(t, s); after != before {
				t.Fatalf("rows written: %+v → %+v", before, after)
			}
		})
		t.Run("cancel", func(t *testing.T) {
			br := newBrowser(t, s)
			page := wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(p).Encode()), http.StatusOK)
			q := redirected(t, br.post(t, "/login", url.Values{"csrf": {page.Get("csrf")}, "request": {page.Get("request")},
				"action": {"cancel"}}), http.StatusFound)
			if q.Get("error") != "access_denied" || q.Get("state") != "st-123" {
				t.Fatalf("cancel: %v", q)
			}
		})

		// The code exchange.
		br := newBrowser(t, s)
		t.Run("wrong verifier", func(t *testing.T) {
			p := newPKCE()
			q := br.codeFlow(t, p, "err@example.com")
			before := rowCounts(t, s)
			wantError(t, exchange(t, s, q.Get("code"), newPKCE().verifier), 400, "invalid_grant")
			wantError(t, exchange(t, s, q.Get("code"), ""), 400, "invalid_grant")
			wantError(t, exchange(t, s, q.Get("code"), p.verifier, "redirect_uri", "http://127.0.0.1:53117/other"), 400, "invalid_grant")
			if after := rowCounts(t, s); after != before {
				t.Fatalf("rows written: %+v → %+v", before, after)
			}
			// Those failures did not consume the code.
			exchanged(t, exchange(t, s, q.Get("code"), p.verifier))
		})
		t.Run("replayed code", func(t *testing.T) {
			p := newPKCE()
			q := redirected(t, br.get(t, "/oauth/authorize?"+authParams(p).Encode()), http.StatusFound)
			first := exchanged(t, exchange(t, s, q.Get("code"), p.verifier))
			// A replay not bound as the exchange was (anyone who saw the
			// callback URL has the code, not the verifier) is only
			// invalid_grant: it revokes nothing and writes nothing.
			replays := func() int {
				evs, err := s.Store.ListAudit(context.Background(), store.AuditFilter{Type: audit.CodeReplayed})
				if err != nil {
					t.Fatal(err)
				}
				return len(evs)
			}
			before, beforeReplays := rowCounts(t, s), replays()
			for name, extra := range map[string][]string{
				"another verifier":     {"code_verifier", newPKCE().verifier},
				"no verifier":          {"code_verifier", ""},
				"another redirect_uri": {"redirect_uri", "http://127.0.0.1:53117/other"},
				"no redirect_uri":      {"redirect_uri", ""},
			} {
				wantError(t, exchange(t, s, q.Get("code"), p.verifier, extra...), 400, "invalid_grant")
				if r := bearerGet(t, s, "/userinfo", first.AccessToken); r.Status != 200 {
					t.Fatalf("an unbound replay (%s) revoked the session: %d %s", name, r.Status, r.Body)
				}
			}
			if after := rowCounts(t, s); after != before || replays() != beforeReplays {
				t.Fatalf("an unbound replay wrote: %+v → %+v, %d replay events", before, after, replays()-beforeReplays)
			}
			// The same exchange again (it proves possession of the
			// verifier): the code was stolen along with it.
			wantError(t, exchange(t, s, q.Get("code"), p.verifier), 400, "invalid_grant")
			if replays() != beforeReplays+1 {
				t.Fatal("the replay was not audited")
			}
			// The session the first exchange started is revoked.
			wantError(t, nativeRefresh(t, s, first.RefreshToken), 400, "invalid_grant")
			wantError(t, bearerGet(t, s, "/userinfo", first.AccessToken), 401, "invalid_token")
		})
		t.Run("expired code", func(t *testing.T) {
			p := newPKCE()
			q := redirected(t, br.get(t, "/oauth/authorize?"+authParams(p).Encode()), http.StatusFound)
			s.Clock.Advance(61 * time.Second)
			before := rowCounts(t, s)
			wantError(t, exchange(t, s, q.Get("code"), p.verifier), 400, "invalid_grant")
			if after := rowCounts(t, s); after != before {
				t.Fatalf("rows written: %+v → %+v", before, after)
			}
		})
		t.Run("code of another client", func(t *testing.T) {
			p := newPKCE()
			q := redirected(t, br.get(t, "/oauth/authorize?"+authParams(p).Encode()), http.StatusFound)
			if _, _, err := s.Clients.Create(context.Background(), clientsSpecNative("other-app"), s.Clock.Now(), nil); err != nil {
				t.Fatal(err)
			}
			wantError(t, exchange(t, s, q.Get("code"), p.verifier, "client_id", "other-app"), 400, "invalid_grant")
		})
		t.Run("a grant the client may not use", func(t *testing.T) {
			r := s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"pw-only"}})
			wantError(t, r, 401, "invalid_client")
			if _, _, err := s.Clients.Create(context.Background(), clientsSpecPasswordOnly("pw-only"), s.Clock.Now(), nil); err != nil {
				t.Fatal(err)
			}
			r = s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"pw-only"}})
			wantError(t, r, 400, "unauthorized_client")
		})
	})
}

// TestLogoutWithoutHint: without an id_token_hint the browser's session
// ends only after the user confirms on a page (a link elsewhere cannot sign
// anyone out); an unregistered post-logout URI is never redirected to.
func TestLogoutWithoutHint(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	u := createUser(t, s, "bye@example.com")
	br := newBrowser(t, s)
	p := newPKCE()
	first := exchanged(t, exchange(t, s, br.codeFlow(t, p, "bye@example.com").Get("code"), p.verifier))

	evil := br.get(t, "/oauth/logout?"+url.Values{"client_id": {"mobile"}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
	if evil.Status != 400 || evil.Header.Get("Location") != "" {
		t.Fatalf("unregistered post-logout URI: %d %q", evil.Status, evil.Header.Get("Location"))
	}
	r := br.get(t, "/oauth/logout?"+url.Values{"client_id": {"mobile"}, "post_logout_redirect_uri": {"http://127.0.0.1/signed-out"},
		"state": {"s1"}}.Encode())
	if r.Status != 200 || !strings.Contains(string(r.Body), "Sign out?") {
		t.Fatalf("logout without a hint: %d %s", r.Status, r.Body)
	}
	if n := liveSessions(t, s, u.ID); n != 1 {
		t.Fatal("a GET without a hint ended the session")
	}
	f := formFields(t, r.Body)
	f.Set("action", "logout")
	// Without the CSRF token: nothing.
	forged := url.Values{}
	for k, v := range f {
		if k != "csrf" {
			forged[k] = v
		}
	}
	// Without the form's CSRF token a POST is a relying party's request:
	// it asks for the confirmation again and ends nothing; a wrong token
	// is refused.
	if r := br.post(t, "/oauth/logout", forged); r.Status != 200 || !strings.Contains(string(r.Body), "Sign out?") {
		t.Fatalf("a POST without the form's token: %d %s", r.Status, r.Body)
	}
	forged.Set("csrf", "x"+f.Get("csrf")[1:])
	if r := br.post(t, "/oauth/logout", forged); r.Status != 400 {
		t.Fatalf("forged logout: %d", r.Status)
	}
	if n := liveSessions(t, s, u.ID); n != 1 {
		t.Fatal("a forged POST ended the session")
	}
	done := br.post(t, "/oauth/logout", f)
	if done.Status != http.StatusFound || done.Header.Get("Location") != "http://127.0.0.1/signed-out?state=s1" {
		t.Fatalf("confirmed logout: %d %q", done.Status, done.Header.Get("Location"))
	}
	wantError(t, nativeRefresh(t, s, first.RefreshToken), 400, "invalid_grant")
	// Without a session, there is nothing to confirm.
	bye := br.get(t, "/oauth/logout")
	if bye.Status != 200 || !strings.Contains(string(bye.Body), "signed out") {
		t.Fatalf("logout without a session: %d %s", bye.Status, bye.Body)
	}
}

// TestSignInSessionEndedByReset: a password reset ends the browser's
// sign-in session; the next request shows the form.
func TestSignInSessionEndedByReset(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	u := createUser(t, s, "sso@example.com")
	br := newBrowser(t, s)
	br.codeFlow(t, newPKCE(), "sso@example.com")
	redirected(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusFound)
	resetNow(t, s, u.ID, "a new password!")
	wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
	q := redirected(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "none").Encode()), http.StatusFound)
	if q.Get("error") != "login_required" {
		t.Fatalf("prompt=none after a reset: %v", q)
	}
}

// TestSignInAcrossInstances: two instances on one Postgres. A browser signs
// in on A, gets its second code from B without the form (the sign-in
// session is in the database), exchanges it on A, and logs out through B,
// which ends what A issued.
func TestSignInAcrossInstances(t *testing.T) {
	u := dbtest.PostgresURL(t)
	c := clock.NewFake(tokendtest.T0)
	mk := masterkey.Generate()
	same := func(cfg *config.Config) {
		cfg.Issuer, cfg.Audience = "https://auth.example.test", "https://auth.example.test"
	}
	a := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: mk, Configure: same})
	b := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: mk, Configure: same})
	createUser(t, a, "two@example.com")

	onA := newBrowser(t, a)
	p := newPKCE()
	first := exchanged(t, exchange(t, a, onA.codeFlow(t, p, "two@example.com").Get("code"), p.verifier))

	// The same browser (its cookie jar) on instance B.
	onB := &browser{s: b, jar: onA.jar}
	for _, cookie := range onA.jar.Cookies(mustURL(t, a.URL)) {
		onB.jar.SetCookies(mustURL(t, b.URL), []*http.Cookie{cookie})
	}
	p2 := newPKCE()
	q := redirected(t, onB.get(t, "/oauth/authorize?"+authParams(p2).Encode()), http.StatusFound)
	second := exchanged(t, exchange(t, a, q.Get("code"), p2.verifier))

	lo := onB.get(t, "/oauth/logout?"+url.Values{"id_token_hint": {second.IDToken}}.Encode())
	if lo.Status != 200 {
		t.Fatalf("logout on B: %d %s", lo.Status, lo.Body)
	}
	for _, tok := range []string{first.RefreshToken, second.RefreshToken} {
		wantError(t, nativeRefresh(t, a, tok), 400, "invalid_grant")
	}
	wantLoginPage(t, onA.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestLogoutHintNeedsTheCookie: an id_token_hint only says which session
// the relying party means. Without the browser's own sign-in cookie naming
// that session (no cookie, or another sign-in's) nothing ends at once: the
// confirmation page is shown, and confirming it ends only the browser's own
// session, if any, before going back to the registered URI with state.
func TestLogoutHintNeedsTheCookie(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		victim := createUser(t, s, "victim@example.com")
		attacker := createUser(t, s, "attacker@example.com")
		vb := newBrowser(t, s)
		p := newPKCE()
		ct := exchanged(t, exchange(t, s, vb.codeFlow(t, p, "victim@example.com").Get("code"), p.verifier))
		s.Clock.Advance(2 * time.Hour) // the hint has expired: still a valid hint
		hint := url.Values{"id_token_hint": {ct.IDToken}, "post_logout_redirect_uri": {"http://127.0.0.1/signed-out"},
			"state": {"bye"}}.Encode()

		confirm := func(t *testing.T, br *browser, r *tokendtest.Response) {
			t.Helper()
			if r.Status != 200 || !strings.Contains(string(r.Body), "Sign out?") {
				t.Fatalf("want the confirmation page, got %d %q %s", r.Status, r.Header.Get("Location"), r.Body)
			}
			f := formFields(t, r.Body)
			f.Set("action", "logout")
			done := br.post(t, "/oauth/logout", f)
			if done.Status != http.StatusFound || done.Header.Get("Location") != "http://127.0.0.1/signed-out?state=bye" {
				t.Fatalf("confirmed logout: %d %q %s", done.Status, done.Header.Get("Location"), done.Body)
			}
		}
		victimAlive := func(t *testing.T) {
			t.Helper()
			if n := liveSessions(t, s, victim.ID); n != 1 {
				t.Fatalf("the victim has %d sessions, want 1", n)
			}
			redirected(t, vb.get(t, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "none").Encode()), http.StatusFound)
		}

		// No cookie at all: one GET ends nothing.
		if r := s.Get(t, "/oauth/logout?"+hint); r.Status != 200 || !strings.Contains(string(r.Body), "Sign out?") {
			t.Fatalf("cookieless logout with a hint: %d %q", r.Status, r.Header.Get("Location"))
		}
		victimAlive(t)
		// A browser without a sign-in session confirms: nothing to end.
		nobody := newBrowser(t, s)
		confirm(t, nobody, nobody.get(t, "/oauth/logout?"+hint))
		victimAlive(t)
		// The attacker's browser, signed in as someone else, confirms: its
		// own session ends, the victim's does not.
		ab := newBrowser(t, s)
		ab.codeFlow(t, newPKCE(), "attacker@example.com")
		confirm(t, ab, ab.get(t, "/oauth/logout?"+hint))
		victimAlive(t)
		if n := liveSessions(t, s, attacker.ID); n != 0 {
			t.Fatalf("the attacker's own session survived its confirmed logout: %d", n)
		}
		// A form-encoded POST with the hint (an RP's POST, no csrf) is the
		// same as the GET.
		if r := s.PostForm(t, "/oauth/logout", url.Values{"id_token_hint": {ct.IDToken}}); r.Status != 200 ||
			!strings.Contains(string(r.Body), "Sign out?") {
			t.Fatalf("cookieless POST logout with a hint: %d %q", r.Status, r.Header.Get("Location"))
		}
		victimAlive(t)
		// The victim's own browser, whose cookie names the hint's session:
		// at once.
		r := vb.get(t, "/oauth/logout?"+hint)
		if r.Status != http.StatusFound || r.Header.Get("Location") != "http://127.0.0.1/signed-out?state=bye" {
			t.Fatalf("logout with the matching cookie: %d %q", r.Status, r.Header.Get("Location"))
		}
		if n := liveSessions(t, s, victim.ID); n != 0 {
			t.Fatalf("%d sessions survived the logout", n)
		}
	})
}
