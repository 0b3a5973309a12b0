package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

func TestWebFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		// Sign-up, then sign-in at once: without the verification that
		// TestSignupVerifyFlow covers.
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name,
			Configure: func(c *configT) { c.RequireVerifiedEmail = false }})
		r := s.PostJSON(t, "/auth/signup", map[string]string{"email": " Ada@Example.com ", "password": testPassword})
		if r.Status != 202 || strings.TrimSpace(string(r.Body)) != "{}" {
			t.Fatalf("signup: %d %s", r.Status, r.Body)
		}
		su, err := s.Store.UserByEmail(context.Background(), "ada@example.com")
		if err != nil || su.Email != "Ada@Example.com" {
			t.Fatalf("signed-up user %+v %v", su, err)
		}
		if r := s.PostJSON(t, "/auth/signup", map[string]string{"email": "ada@example.com", "password": testPassword}); r.Status != 202 {
			t.Fatalf("signup for a taken address: %d %s", r.Status, r.Body)
		}

		r = s.PostJSON(t, "/auth/login", map[string]string{"email": "ada@example.com", "password": testPassword, "client_id": "web"})
		if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("login: %d %v", r.Status, r.Header)
		}
		var tr tokenResp
		r.JSON(t, &tr)
		if tr.TokenType != "Bearer" || tr.ExpiresIn != 900 || tr.AccessToken == "" || tr.RefreshToken != "" {
			t.Fatalf("login body %s (the refresh token must travel only in the cookie)", r.Body)
		}
		c := r.Cookie("tokend_refresh")
		set := r.Header.Get("Set-Cookie")
		if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/auth" || c.MaxAge != 30*24*3600 {
			t.Fatalf("cookie attributes: %q", set)
		}
		// Refresh rotates the cookie and returns a new access token.
		r2 := webRefresh(t, s, c.Value)
		tr2 := refreshed(t, r2)
		c2 := r2.Cookie("tokend_refresh")
		if c2 == nil || c2.Value == c.Value || tr2.AccessToken == tr.AccessToken {
			t.Fatal("refresh did not rotate")
		}
		// The same old cookie again, inside the grace window (a second tab):
		// the same child, nothing revoked.
		r3 := webRefresh(t, s, c.Value)
		refreshed(t, r3)
		if r3.Cookie("tokend_refresh").Value != c2.Value {
			t.Fatal("a repeat inside the grace window got a different child (a second branch)")
		}
		if r := webRefresh(t, s, c2.Value); r.Status != 200 {
			t.Fatalf("the child after a repeat: %d %s", r.Status, r.Body)
		}
		// userinfo.
		var ui struct{ Sub, Email string }
		u := bearerGet(t, s, "/userinfo", tr2.AccessToken)
		u.JSON(t, &ui)
		if u.Status != 200 || ui.Sub != su.ID || ui.Email != "Ada@Example.com" {
			t.Fatalf("userinfo: %d %s", u.Status, u.Body)
		}
		// Logout revokes the family and clears the cookie; it is idempotent.
		req := s.NewRequest(t, http.MethodPost, "/auth/logout", nil)
		req.Header.Set("Cookie", "tokend_refresh="+c2.Value)
		lo := s.Do(t, req)
		if lo.Status != 204 || lo.Cookie("tokend_refresh") == nil || lo.Cookie("tokend_refresh").MaxAge >= 0 {
			t.Fatalf("logout: %d %v", lo.Status, lo.Header)
		}
		r4 := webRefresh(t, s, c2.Value)
		wantError(t, r4, 400, "invalid_grant")
		if ck := r4.Cookie("tokend_refresh"); ck == nil || ck.MaxAge >= 0 {
			t.Fatal("a refused refresh did not clear the cookie")
		}
		wantError(t, bearerGet(t, s, "/userinfo", tr2.AccessToken), 401, "invalid_token")
		if r := s.Do(t, s.NewRequest(t, http.MethodPost, "/auth/logout", nil)); r.Status != 204 {
			t.Fatalf("logout without a cookie: %d", r.Status)
		}
		evs, _ := s.Store.ListAudit(context.Background(), store.AuditFilter{UserID: su.ID})
		types := map[string]bool{}
		for _, e := range evs {
			types[e.Type] = true
			if e.Type == "login.succeeded" && (e.ClientID != "web" || e.Address != "127.0.0.1") {
				t.Fatalf("login audit without client or address: %+v", e)
			}
		}
		for _, want := range []string{"user.created", "login.succeeded", "session.logout"} {
			if !types[want] {
				t.Errorf("no %s audit event (have %v)", want, types)
			}
		}
	})
}

func TestSignupDisabled(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Configure: func(c *configT) { c.Signup = false }})
	wantError(t, s.PostJSON(t, "/auth/signup", map[string]string{"email": "a@example.com", "password": testPassword}), 403, "signup_disabled")
}

func TestNativeFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "nat@example.com")
		tr := nativeLogin(t, s, "nat@example.com", "email openid")
		if tr.RefreshToken == "" || tr.Scope != "email openid" || tr.ExpiresIn != 900 {
			t.Fatalf("password grant: %+v", tr)
		}
		r := nativeRefresh(t, s, tr.RefreshToken)
		if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Pragma") != "no-cache" {
			t.Fatalf("token response cache headers: %v", r.Header)
		}
		tr2 := refreshed(t, r)
		if tr2.RefreshToken == tr.RefreshToken || tr2.Scope != "email openid" {
			t.Fatalf("refresh: %+v", tr2)
		}
		// Narrowing the scope on refresh is allowed; widening is not.
		narrowed := refreshed(t, s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {tr2.RefreshToken}, "client_id": {"mobile"}, "scope": {"openid"}}))
		if narrowed.Scope != "openid" {
			t.Fatalf("narrowed scope %q", narrowed.Scope)
		}
		wantError(t, s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {narrowed.RefreshToken}, "client_id": {"mobile"}, "scope": {"openid profile"}}), 400, "invalid_scope")
		// The refused widening wrote nothing: past the reuse grace the same
		// token still rotates, and is not taken for reuse.
		s.Clock.Advance(s.Config.RefreshReuseGrace + time.Second)
		narrowed = refreshed(t, nativeRefresh(t, s, narrowed.RefreshToken))
		if narrowed.Scope != "email openid" { // a narrowing binds one access token, not the session
			t.Fatalf("scope after the refused widening %q", narrowed.Scope)
		}
		// Revocation (RFC 7009): 200, and the family is gone.
		rv := s.PostForm(t, "/oauth/revoke", url.Values{"token": {narrowed.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {"mobile"}})
		if rv.Status != 200 || len(rv.Body) != 0 {
			t.Fatalf("revoke: %d %s", rv.Status, rv.Body)
		}
		wantError(t, nativeRefresh(t, s, narrowed.RefreshToken), 400, "invalid_grant")
		// Revoking garbage or an unknown token is still 200.
		for _, tok := range []string{"garbage", strings.Repeat("A", 43), tr.RefreshToken} {
			if r := s.PostForm(t, "/oauth/revoke", url.Values{"token": {tok}, "client_id": {"mobile"}}); r.Status != 200 {
				t.Fatalf("revoke %q: %d", tok, r.Status)
			}
		}
	})
}

// TestRotationChainAndReuse: 100 rotations; a replay after the grace window
// revokes the whole family, the newest token included, and is audited.
func TestRotationChainAndReuse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "chain@example.com")
		tok := nativeLogin(t, s, "chain@example.com", "").RefreshToken
		var old string
		for i := range 100 {
			s.Clock.Advance(time.Minute)
			next := refreshed(t, nativeRefresh(t, s, tok)).RefreshToken
			if i == 50 {
				old = tok
			}
			tok = next
		}
		s.Clock.Advance(s.Config.RefreshReuseGrace + time.Second)
		wantError(t, nativeRefresh(t, s, old), 400, "invalid_grant")
		wantError(t, nativeRefresh(t, s, tok), 400, "invalid_grant") // the newest token too
		evs, _ := s.Store.ListAudit(context.Background(), store.AuditFilter{Type: "refresh.reuse_detected"})
		if len(evs) != 1 || evs[0].UserID != u.ID || evs[0].ClientID != "mobile" || evs[0].Address == "" {
			t.Fatalf("reuse audit events: %+v", evs)
		}
	})
}

// TestReuseGrace: a repeat inside the window returns the same child and
// revokes nothing; after the window, or once the child rotated too, it is
// reuse.
func TestReuseGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "g@example.com")
		t0 := nativeLogin(t, s, "g@example.com", "").RefreshToken
		t1 := refreshed(t, nativeRefresh(t, s, t0)).RefreshToken
		s.Clock.Advance(s.Config.RefreshReuseGrace)
		again := refreshed(t, nativeRefresh(t, s, t0))
		if again.RefreshToken != t1 {
			t.Fatal("a repeat at the edge of the grace window got a different child")
		}
		t2 := refreshed(t, nativeRefresh(t, s, t1)).RefreshToken
		if again := refreshed(t, nativeRefresh(t, s, t1)).RefreshToken; again != t2 {
			t.Fatal("a repeat of the next generation got a different child")
		}
		s.Clock.Advance(s.Config.RefreshReuseGrace + time.Second)
		wantError(t, nativeRefresh(t, s, t1), 400, "invalid_grant")
		wantError(t, nativeRefresh(t, s, t2), 400, "invalid_grant")

		// Two generations back is reuse even inside the window: only the
		// previous generation is served again.
		createUser(t, s, "g2@example.com")
		u0 := nativeLogin(t, s, "g2@example.com", "").RefreshToken
		u1 := refreshed(t, nativeRefresh(t, s, u0)).RefreshToken
		u2 := refreshed(t, nativeRefresh(t, s, u1)).RefreshToken
		wantError(t, nativeRefresh(t, s, u0), 400, "invalid_grant")
		wantError(t, nativeRefresh(t, s, u2), 400, "invalid_grant")
	})
}

// TestRevokedFamilyStaysRevoked: the peer bug — using the revoked family's
// newest token, or a just-rotated one inside its grace window, must not
// bring the family back.
func TestRevokedFamilyStaysRevoked(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "r@example.com")
		t0 := nativeLogin(t, s, "r@example.com", "").RefreshToken
		t1 := refreshed(t, nativeRefresh(t, s, t0)).RefreshToken
		s.Clock.Advance(time.Minute)
		t2 := refreshed(t, nativeRefresh(t, s, t1)).RefreshToken    // t1 now inside its grace window
		wantError(t, nativeRefresh(t, s, t0), 400, "invalid_grant") // reuse → revoked
		wantError(t, nativeRefresh(t, s, t1), 400, "invalid_grant")
		wantError(t, nativeRefresh(t, s, t2), 400, "invalid_grant")
	})
}

func TestSessionsEndpoints(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "dev@example.com")
		createUser(t, s, "other@example.com")
		webAccess, webCookie := webLogin(t, s, "dev@example.com", testPassword, "User-Agent", "Firefox/140")
		s.Clock.Advance(time.Minute)
		mob := nativeLogin(t, s, "dev@example.com", "")
		otherAccess, _ := webLogin(t, s, "other@example.com", testPassword)

		r := bearerGet(t, s, "/auth/sessions", webAccess)
		var list struct {
			Sessions []struct {
				ID         string
				ClientID   string `json:"client_id"`
				UserAgent  string `json:"user_agent"`
				Current    bool
				CreatedAt  time.Time `json:"created_at"`
				LastUsedAt time.Time `json:"last_used_at"`
			}
		}
		r.JSON(t, &list)
		if r.Status != 200 || len(list.Sessions) != 2 {
			t.Fatalf("sessions: %d %s", r.Status, r.Body)
		}
		if list.Sessions[0].ClientID != "mobile" || list.Sessions[1].ClientID != "web" || !list.Sessions[1].Current || list.Sessions[0].Current {
			t.Fatalf("sessions not newest first or current wrong: %s", r.Body)
		}
		if list.Sessions[1].UserAgent != "Firefox/140" {
			t.Fatalf("user agent %q", list.Sessions[1].UserAgent)
		}
		mobileID := list.Sessions[0].ID
		wantError(t, bearerDelete(t, s, "/auth/sessions/"+mobileID, otherAccess), 404, "not_found")
		if r := bearerDelete(t, s, "/auth/sessions/"+mobileID, webAccess); r.Status != 204 {
			t.Fatalf("revoke session: %d %s", r.Status, r.Body)
		}
		wantError(t, nativeRefresh(t, s, mob.RefreshToken), 400, "invalid_grant")
		wantError(t, bearerGet(t, s, "/userinfo", mob.AccessToken), 401, "invalid_token")
		if r := webRefresh(t, s, webCookie); r.Status != 200 {
			t.Fatalf("the other session stopped working: %d %s", r.Status, r.Body)
		}
		wantError(t, bearerDelete(t, s, "/auth/sessions/"+mobileID, webAccess), 404, "not_found")
		// DELETE /auth/sessions revokes every other session.
		m2 := nativeLogin(t, s, "dev@example.com", "")
		if r := bearerDelete(t, s, "/auth/sessions", webAccess); r.Status != 204 {
			t.Fatalf("revoke others: %d", r.Status)
		}
		wantError(t, nativeRefresh(t, s, m2.RefreshToken), 400, "invalid_grant")
		r = bearerGet(t, s, "/auth/sessions", webAccess)
		r.JSON(t, &list)
		if len(list.Sessions) != 1 || !list.Sessions[0].Current {
			t.Fatalf("after revoking the others: %s", r.Body)
		}
	})
}

func TestExpiry(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "exp@example.com")
		tr := nativeLogin(t, s, "exp@example.com", "")
		// Access token: 15 minutes.
		s.Clock.Advance(15*time.Minute - time.Second)
		if r := bearerGet(t, s, "/userinfo", tr.AccessToken); r.Status != 200 {
			t.Fatalf("access token rejected before expiry: %d", r.Status)
		}
		s.Clock.Advance(2 * time.Second)
		wantError(t, bearerGet(t, s, "/userinfo", tr.AccessToken), 401, "invalid_token")
		// Refresh token: idle 30 days.
		s.Clock.Advance(30*24*time.Hour - 15*time.Minute)
		wantError(t, nativeRefresh(t, s, tr.RefreshToken), 400, "invalid_grant")
		// Family: absolute 90 days however often it rotates.
		tok := nativeLogin(t, s, "exp@example.com", "").RefreshToken
		for range 3 {
			s.Clock.Advance(29 * 24 * time.Hour)
			tok = refreshed(t, nativeRefresh(t, s, tok)).RefreshToken
		}
		s.Clock.Advance(3*24*time.Hour + time.Second) // 90 days and a second after login
		wantError(t, nativeRefresh(t, s, tok), 400, "invalid_grant")
	})
}

func TestLoginFailures(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "lf@example.com")
		createUser(t, s, "off@example.com")
		if _, err := s.Users.Disable(context.Background(), "off@example.com", metaTest); err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, creds := range [][2]string{{"lf@example.com", "wrong password"}, {"ghost@example.com", testPassword}, {"off@example.com", testPassword}} {
			r := s.PostJSON(t, "/auth/login", map[string]string{"email": creds[0], "password": creds[1], "client_id": "web"})
			wantError(t, r, 400, "invalid_grant")
			bodies = append(bodies, string(r.Body))
			nr := s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {creds[0]}, "password": {creds[1]}, "client_id": {"mobile"}})
			wantError(t, nr, 400, "invalid_grant")
		}
		if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
			t.Fatalf("failed logins are distinguishable: %q", bodies)
		}
		evs, _ := s.Store.ListAudit(context.Background(), store.AuditFilter{Type: "login.failed"})
		reasons := map[string]int{}
		for _, e := range evs {
			reasons[e.Details["reason"]]++
		}
		if reasons["wrong_password"] != 2 || reasons["unknown_email"] != 2 || reasons["disabled"] != 2 {
			t.Fatalf("login.failed audit reasons %v", reasons)
		}
	})
}

// TestBruteForce: the account locks after 5 failures (even the right
// password is refused with 429 and Retry-After), unlocks after the lock, and
// a success clears the count. Counters live in the database, so two
// instances share them.
func TestBruteForce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		db := b.Open(t)
		s := tokendtest.Start(t, tokendtest.Options{Store: db})
		other := tokendtest.Start(t, tokendtest.Options{Store: db, Clock: s.Clock, MasterKey: s.MasterKey})
		createUser(t, s, "bf@example.com")
		bad := map[string]string{"email": "bf@example.com", "password": "nope-nope", "client_id": "web"}
		for i := range 5 {
			srv := s
			if i%2 == 1 {
				srv = other
			}
			wantError(t, srv.PostJSON(t, "/auth/login", bad), 400, "invalid_grant")
		}
		r := other.PostJSON(t, "/auth/login", map[string]string{"email": "BF@example.com", "password": testPassword, "client_id": "web"})
		wantError(t, r, 429, "rate_limited")
		if r.Header.Get("Retry-After") != "30" {
			t.Fatalf("Retry-After %q, want 30", r.Header.Get("Retry-After"))
		}
		s.Clock.Advance(30 * time.Second)
		webLogin(t, s, "bf@example.com", testPassword)
		// The success cleared the count: five more failures are allowed.
		for range 5 {
			wantError(t, s.PostJSON(t, "/auth/login", bad), 400, "invalid_grant")
		}
		wantError(t, s.PostJSON(t, "/auth/login", bad), 429, "rate_limited")
	})
}

func TestBruteForcePerAddress(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	for i := range 50 {
		r := s.PostJSON(t, "/auth/login", map[string]string{"email": "u" + strings.Repeat("x", i) + "@example.com", "password": "wrong pass", "client_id": "web"})
		wantError(t, r, 400, "invalid_grant")
	}
	r := s.PostJSON(t, "/auth/login", map[string]string{"email": "fresh@example.com", "password": "wrong pass", "client_id": "web"})
	wantError(t, r, 429, "rate_limited")
	if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
}

func TestOriginAndCORS(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Configure: func(c *configT) { c.AllowedOrigins = []string{"https://app.example.com"} }})
	createUser(t, s, "o@example.com")
	body := map[string]string{"email": "o@example.com", "password": testPassword, "client_id": "web"}
	wantError(t, s.PostJSON(t, "/auth/login", body, "Origin", "https://evil.example"), 403, "forbidden_origin")
	wantError(t, s.PostJSON(t, "/auth/login", body, "Origin", "null"), 403, "forbidden_origin")
	if n, _ := s.Store.ListAudit(context.Background(), store.AuditFilter{Type: "login.succeeded"}); len(n) != 0 {
		t.Fatal("a refused origin logged in")
	}
	r := s.PostJSON(t, "/auth/login", body, "Origin", "https://app.example.com")
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed origin: %d %v", r.Status, r.Header)
	}
	r = s.PostJSON(t, "/auth/login", body, "Origin", s.URL)
	if r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("same origin: %d, CORS %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
	pre := s.NewRequest(t, http.MethodOptions, "/auth/refresh", nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	if r := s.Do(t, pre); r.Status != 204 || !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", r.Status, r.Header)
	}
	pre.Header.Set("Origin", "https://evil.example")
	wantError(t, s.Do(t, pre), 403, "forbidden_origin")
	// Refresh and logout refuse a foreign origin without touching the
	// session.
	_, cookie := webLogin(t, s, "o@example.com", testPassword)
	for _, path := range []string{"/auth/logout", "/auth/refresh"} {
		req := s.NewRequest(t, http.MethodPost, path, nil)
		req.Header.Set("Cookie", "tokend_refresh="+cookie)
		req.Header.Set("Origin", "https://evil.example")
		wantError(t, s.Do(t, req), 403, "forbidden_origin")
	}
	if r := webRefresh(t, s, cookie); r.Status != 200 {
		t.Fatalf("the session was touched by a refused request: %d", r.Status)
	}
}
