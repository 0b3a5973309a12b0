package httpapi_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/passkeys/passkeystest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

var passkeyOptions = regexp.MustCompile(`data-passkey="(?:create|get)" data-options="([^"]*)"`)

// passkeyPage returns the options of a page's passkey form and its hidden
// fields.
func passkeyPage(t *testing.T, r *tokendtest.Response, status int) (string, url.Values) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want a page with a passkey form (%d), got %d %s", status, r.Status, r.Body)
	}
	m := passkeyOptions.FindSubmatch(r.Body)
	if m == nil {
		t.Fatalf("no passkey form: %s", r.Body)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") {
		t.Fatalf("a passkey page without its script in the CSP: %s", csp)
	}
	f := formFields(t, r.Body)
	if f.Get("ceremony") == "" {
		t.Fatalf("no ceremony on the page: %s", r.Body)
	}
	return html.UnescapeString(string(m[1])), f
}

// addPasskey adds a passkey of a to the signed-in browser's account and
// returns the page that answered.
func addPasskey(t *testing.T, br *browser, a *passkeystest.Authenticator, name string) *tokendtest.Response {
	t.Helper()
	acct := br.get(t, "/account")
	if !strings.Contains(string(acct.Body), "Add a passkey") {
		t.Fatalf("the account page offers no passkey: %s", acct.Body)
	}
	opts, f := passkeyPage(t, br.post(t, "/account/passkey", url.Values{"csrf": {formFields(t, acct.Body).Get("csrf")},
		"action": {"begin"}, "name": {name}, "password": {testPassword}}), http.StatusOK)
	resp, err := a.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("credential", resp)
	return br.post(t, "/account/passkey", f)
}

// passkeySignIn answers the login page's passkey form with a.
func passkeySignIn(t *testing.T, br *browser, page *tokendtest.Response, a *passkeystest.Authenticator) *tokendtest.Response {
	t.Helper()
	opts, f := passkeyPage(t, page, page.Status)
	resp, err := a.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("credential", resp)
	return br.post(t, "/login/passkey", f)
}

func wantAMR(t *testing.T, idToken string, amr ...string) {
	t.Helper()
	_, claims := jwtParts(t, idToken)
	var got []string
	for _, m := range claims["amr"].([]any) {
		got = append(got, m.(string))
	}
	if !slices.Equal(got, amr) || claims["acr"] != "aal2" {
		t.Fatalf("ID token amr %v acr %v, want %v aal2", got, claims["acr"], amr)
	}
}

// TestPasskeys: a passkey added from the account page signs in alone
// (amr hwk, mfa, user; acr aal2) and as the second step after the password
// (hwk, mfa, pwd, user); replayed challenges, a clone's counter going
// backwards, another origin or RP ID, and a disabled account are refused;
// the password alone opens nothing while the passkey exists, and works
// again once it is removed (with the recovery codes).
func TestPasskeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name, Hostname: "localhost"})
		ctx := context.Background()
		u := createUser(t, s, "keys@example.com")
		a := &passkeystest.Authenticator{Origin: s.URL}

		br := newBrowser(t, s)
		page := wantLoginPage(t, br.get(t, "/account"), http.StatusOK)
		if r := br.signIn(t, page, "keys@example.com", testPassword); r.Status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d %s", r.Status, r.Body)
		}
		// Adding a passkey needs the password.
		acct := br.get(t, "/account")
		r := br.post(t, "/account/passkey", url.Values{"csrf": {formFields(t, acct.Body).Get("csrf")}, "action": {"begin"},
			"password": {"wrong password"}})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "The password is incorrect.") {
			t.Fatalf("begin with a wrong password: %d %s", r.Status, r.Body)
		}
		r = addPasskey(t, br, a, "My <laptop>")
		if r.Status != http.StatusOK || len(recoveryCode.FindAllSubmatch(r.Body, -1)) != 10 {
			t.Fatalf("the first passkey does not show recovery codes: %d %s", r.Status, r.Body)
		}
		if acct := br.get(t, "/account"); !strings.Contains(string(acct.Body), "Passkey “My &lt;laptop&gt;”") {
			t.Fatalf("the account page does not list the passkey, escaped: %s", acct.Body)
		}

		// The bypass table: the password alone opens nothing.
		wantError(t, s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"keys@example.com"},
			"password": {testPassword}, "client_id": {"mobile"}}), 400, "invalid_grant")
		wantError(t, s.PostJSON(t, "/auth/login", map[string]string{"email": "keys@example.com", "password": testPassword,
			"client_id": "web"}), 400, "invalid_grant")

		// The passkey alone.
		b2 := newBrowser(t, s)
		p := newPKCE()
		login := b2.get(t, "/oauth/authorize?"+authParams(p).Encode())
		wantLoginPage(t, login, http.StatusOK)
		opts, lf := passkeyPage(t, login, http.StatusOK)
		answer, err := a.Get(opts)
		if err != nil {
			t.Fatal(err)
		}
		lf.Set("credential", answer)
		q := redirected(t, b2.post(t, "/login/passkey", lf), http.StatusSeeOther)
		wantAMR(t, exchanged(t, exchange(t, s, q.Get("code"), p.verifier)).IDToken, "hwk", "mfa", "user")
		// The same answer again, and a new answer (its counter ahead) to
		// the same challenge: the challenge was answered.
		r = b2.post(t, "/login/passkey", lf)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "could not sign you in") {
			t.Fatalf("a replayed challenge: %d %s", r.Status, r.Body)
		}
		if answer, err = a.Get(opts); err != nil {
			t.Fatal(err)
		}
		lf.Set("credential", answer)
		r = b2.post(t, "/login/passkey", lf)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "could not sign you in") {
			t.Fatalf("a second answer to a challenge: %d %s", r.Status, r.Body)
		}

		// Password, then the passkey.
		b3 := newBrowser(t, s)
		p3 := newPKCE()
		fr := b3.signIn(t, wantLoginPage(t, b3.get(t, "/oauth/authorize?"+authParams(p3).Encode()), http.StatusOK),
			"keys@example.com", testPassword)
		wantFactorPage(t, fr, http.StatusOK)
		opts, ff := passkeyPage(t, fr, http.StatusOK)
		if ff.Get("step") != "webauthn" || !strings.Contains(string(fr.Body), "Use a recovery code") {
			t.Fatalf("the second step: %s", fr.Body)
		}
		answer, err = a.Get(opts)
		if err != nil {
			t.Fatal(err)
		}
		ff.Set("code", answer)
		q = redirected(t, b3.post(t, "/login/factor", ff), http.StatusSeeOther)
		wantAMR(t, exchanged(t, exchange(t, s, q.Get("code"), p3.verifier)).IDToken, "hwk", "mfa", "pwd", "user")
		// Replayed in the second step too: the page completed once.
		if r := b3.post(t, "/login/factor", ff); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "expired") {
			t.Fatalf("a completed passkey step posted again: %d %s", r.Status, r.Body)
		}

		// A clone of the credential whose counter is behind.
		orig := a.Credentials()[0]
		clone := &passkeystest.Authenticator{Origin: s.URL}
		clone.Add(passkeystest.Credential{ID: orig.ID, Key: orig.Key, RPID: orig.RPID, UserHandle: orig.UserHandle, SignCount: 0})
		b4 := newBrowser(t, s)
		r = passkeySignIn(t, b4, b4.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), clone)
		if r.Status != http.StatusBadRequest {
			t.Fatalf("a clone: %d %s", r.Status, r.Body)
		}
		evs, err := s.Store.ListAudit(ctx, store.AuditFilter{UserID: u.ID, Type: audit.FactorCloned, Limit: 10})
		if err != nil || len(evs) != 1 {
			t.Fatalf("clone audit: %v %v", evs, err)
		}

		// Another origin (a phishing page relaying the challenge), another
		// RP ID, no user verification.
		for name, bad := range map[string]*passkeystest.Authenticator{
			"origin": {Origin: "http://127.0.0.1" + s.URL[len("http://localhost"):]},
			"rp id":  {Origin: s.URL, RPID: "evil.localhost"},
			"uv":     {Origin: s.URL, NoUserVerification: true},
		} {
			bad.Add(*orig)
			r := passkeySignIn(t, b4, b4.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), bad)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("%s: %d %s", name, r.Status, r.Body)
			}
		}

		// A disabled account cannot sign in with its passkey.
		if _, err := s.Users.Disable(ctx, "keys@example.com", audit.CLI); err != nil {
			t.Fatal(err)
		}
		r = passkeySignIn(t, b4, b4.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), a)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "could not sign you in") {
			t.Fatalf("a disabled account: %d %s", r.Status, r.Body)
		}
	})
}

// TestPasskeyRemoved: removing the last factor (a passkey) removes the
// recovery codes, and the password alone works again. The session that
// added it (of the password) steps up with it first.
func TestPasskeyRemoved(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Backend: "sqlite", Hostname: "localhost"})
	u := createUser(t, s, "gone@example.com")
	br := newBrowser(t, s)
	br.signIn(t, wantLoginPage(t, br.get(t, "/account"), http.StatusOK), "gone@example.com", testPassword)
	a := &passkeystest.Authenticator{Origin: s.URL, BackupEligible: true}
	if r := addPasskey(t, br, a, ""); r.Status != http.StatusOK {
		t.Fatalf("add: %d %s", r.Status, r.Body)
	}
	// A synced passkey (backup eligible): "swk".
	b2 := newBrowser(t, s)
	p := newPKCE()
	q := redirected(t, passkeySignIn(t, b2, b2.get(t, "/oauth/authorize?"+authParams(p).Encode()), a), http.StatusSeeOther)
	wantAMR(t, exchanged(t, exchange(t, s, q.Get("code"), p.verifier)).IDToken, "mfa", "swk", "user")

	fs, err := s.Store.Factors(context.Background(), u.ID)
	if err != nil || len(fs) != 1 || fs[0].Name != "Passkey" {
		t.Fatalf("factors: %+v %v", fs, err)
	}
	acct := br.get(t, "/account")
	remove := url.Values{"csrf": {formFields(t, acct.Body).Get("csrf")}, "password": {testPassword}, "remove": {fs[0].ID}}
	r := br.post(t, "/account", remove)
	wantFactorPage(t, r, http.StatusOK)
	opts, ff := passkeyPage(t, r, http.StatusOK)
	answer, err := a.Get(opts)
	if err != nil {
		t.Fatal(err)
	}
	ff.Set("code", answer)
	if r := br.post(t, "/login/factor", ff); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
		t.Fatalf("step-up: %d %s", r.Status, r.Body)
	}
	r = br.post(t, "/account", remove)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	if n, _ := s.Store.RecoveryCodesLeft(context.Background(), u.ID); n != 0 {
		t.Fatalf("%d recovery codes left after the last factor", n)
	}
	nativeLogin(t, s, "gone@example.com", "")
	// The removed passkey no longer signs in.
	r = passkeySignIn(t, b2, b2.get(t, "/oauth/authorize?"+authParams(newPKCE(), "prompt", "login").Encode()), a)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("a removed passkey: %d %s", r.Status, r.Body)
	}
}

// TestPasskeysOffOnIPIssuer: on an issuer whose host is an IP address (the
// default here and in dev mode), no page offers passkeys, the login page
// has no script, and the passkey endpoints say so.
func TestPasskeysOffOnIPIssuer(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Backend: "sqlite"})
	createUser(t, s, "ip@example.com")
	br := newBrowser(t, s)
	login := br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode())
	f := wantLoginPage(t, login, http.StatusOK)
	if strings.Contains(string(login.Body), "passkey") || !strings.Contains(login.Header.Get("Content-Security-Policy"), "script-src 'none'") {
		t.Fatalf("a login page with passkeys on an IP issuer: %s %s", login.Header.Get("Content-Security-Policy"), login.Body)
	}
	r := br.post(t, "/login/passkey", url.Values{"csrf": {f.Get("csrf")}, "request": {f.Get("request")}, "credential": {"{}"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "Passkeys cannot be used on this server.") {
		t.Fatalf("a passkey sign-in on an IP issuer: %d %s", r.Status, r.Body)
	}
	br.signIn(t, wantLoginPage(t, br.get(t, "/account"), http.StatusOK), "ip@example.com", testPassword)
	if acct := br.get(t, "/account"); strings.Contains(string(acct.Body), "passkey") {
		t.Fatalf("the account page offers passkeys on an IP issuer: %s", acct.Body)
	}
}

// TestPasskeyThrottled: failed sign-ins with a passkey alone count against
// the address: the 21st in 15 minutes is refused before it is checked.
func TestPasskeyThrottled(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Backend: "sqlite", Hostname: "localhost"})
	br := newBrowser(t, s)
	_, f := passkeyPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
	f.Set("credential", `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`)
	for i := range 20 {
		if r := br.post(t, "/login/passkey", f); r.Status != http.StatusBadRequest {
			t.Fatalf("failure %d: %d %s", i+1, r.Status, r.Body)
		}
	}
	r := br.post(t, "/login/passkey", f)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("the 21st failure: %d %s", r.Status, r.Body)
	}
}
