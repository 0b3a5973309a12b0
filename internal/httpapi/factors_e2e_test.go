package httpapi_test

import (
	"context"
	"encoding/base32"
	"html"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/totp"
)

var (
	secretKeyText = regexp.MustCompile(`<code class="secret">([A-Z2-7 ]+)</code>`)
	recoveryCode  = regexp.MustCompile(`<li><code>([a-z0-9-]+)</code></li>`)
)

// enrolTOTP sets up an authenticator app from the account page of a
// signed-in browser and returns the secret (read from the page, as a user
// types it into the app) and the recovery codes shown.
func enrolTOTP(t *testing.T, s *tokendtest.Server, br *browser) ([]byte, []string) {
	t.Helper()
	page := br.get(t, "/account/totp")
	if page.Status != 200 || !strings.Contains(string(page.Body), "<svg") {
		t.Fatalf("enrolment page: %d %s", page.Status, page.Body)
	}
	m := secretKeyText.FindSubmatch(page.Body)
	if m == nil {
		t.Fatalf("no key on the enrolment page: %s", page.Body)
	}
	key := strings.ReplaceAll(string(m[1]), " ", "")
	s.AddSecret("TOTP secret", key) // shown grouped on its page only
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	f := formFields(t, page.Body)
	f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
	// The password is asked too: a session left open does not let
	// someone else turn a factor on.
	for _, pw := range []string{"", "not the password"} {
		f.Set("password", pw)
		if r := br.post(t, "/account/totp", f); r.Status != 400 || !strings.Contains(string(r.Body), "password") {
			t.Fatalf("enrolment with password %q: %d %s", pw, r.Status, r.Body)
		}
	}
	f.Set("password", testPassword)
	f.Set("code", "000000")
	if r := br.post(t, "/account/totp", f); r.Status != 400 || !strings.Contains(string(r.Body), "not right") {
		t.Fatalf("a wrong first code: %d %s", r.Status, r.Body)
	}
	f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
	r := br.post(t, "/account/totp", f)
	if r.Status != 200 {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	var codes []string
	for _, c := range recoveryCode.FindAllSubmatch(r.Body, -1) {
		codes = append(codes, html.UnescapeString(string(c[1])))
		s.AddSecret("recovery code", codes[len(codes)-1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown: %s", len(codes), r.Body)
	}
	return secret, codes
}

// wantFactorPage checks that r is the second step's page and returns its
// fields.
func wantFactorPage(t *testing.T, r *tokendtest.Response, status int) url.Values {
	t.Helper()
	if r.Status != status || !strings.Contains(string(r.Body), "Two-step verification") {
		t.Fatalf("want the second step's page (%d), got %d %s", status, r.Status, r.Body)
	}
	f := formFields(t, r.Body)
	if f.Get("pending") == "" || f.Get("csrf") == "" || f.Get("request") == "" {
		t.Fatalf("the second step's page lacks its fields: %s", r.Body)
	}
	return f
}

// TestSecondFactorTOTP: an account sets up an authenticator app on its
// account page; signing in then asks for a code after the password, each
// code works once, recovery codes work once, the ID token says what was
// used (amr, acr), and no endpoint lets the password alone through.
func TestSecondFactorTOTP(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "two@example.com")
		br := newBrowser(t, s)

		// The account page asks a browser without a session to sign in,
		// then comes back.
		page := wantLoginPage(t, br.get(t, "/account"), http.StatusOK)
		r := br.signIn(t, page, "two@example.com", testPassword)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
			t.Fatalf("sign-in for the account page: %d %q", r.Status, r.Header.Get("Location"))
		}
		if r := br.get(t, "/account"); r.Status != 200 || !strings.Contains(string(r.Body), "Set up an authenticator app") {
			t.Fatalf("account page: %d %s", r.Status, r.Body)
		}
		secret, codes := enrolTOTP(t, s, br)
		s.Clock.Advance(totp.Period)

		// The bypass table: the password alone opens nothing.
		wantError(t, s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"two@example.com"},
			"password": {testPassword}, "client_id": {"mobile"}}), 400, "invalid_grant")
		lr := s.PostJSON(t, "/auth/login", map[string]string{"email": "two@example.com", "password": testPassword, "client_id": "web"})
		wantError(t, lr, 400, "invalid_grant")
		if !strings.Contains(string(lr.Body), "this account requires the browser sign-in") {
			t.Fatalf("the refusal does not say why: %s", lr.Body)
		}
		if n := liveSessions(t, s, u.ID); n != 0 {
			t.Fatalf("%d sessions opened with the password alone", n)
		}

		// A new browser: password, then the code.
		b2 := newBrowser(t, s)
		p := newPKCE()
		login := wantLoginPage(t, b2.get(t, "/oauth/authorize?"+authParams(p).Encode()), http.StatusOK)
		f := wantFactorPage(t, b2.signIn(t, login, "two@example.com", testPassword), http.StatusOK)
		for _, bad := range []string{"123456", totp.Code(secret, totp.Step(s.Clock.Now())-3)} {
			f.Set("code", bad)
			wantFactorPage(t, b2.post(t, "/login/factor", f), http.StatusBadRequest)
		}
		// The code the enrolment used (a step ago, within the window) is
		// spent.
		f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())-1))
		wantFactorPage(t, b2.post(t, "/login/factor", f), http.StatusBadRequest)
		code := totp.Code(secret, totp.Step(s.Clock.Now()))
		f.Set("code", code)
		q := redirected(t, b2.post(t, "/login/factor", f), http.StatusSeeOther)
		ct := exchanged(t, exchange(t, s, q.Get("code"), p.verifier))
		_, claims := jwtParts(t, ct.IDToken)
		if amr, _ := claims["amr"].([]any); len(amr) != 3 || amr[0] != "mfa" || amr[1] != "otp" || amr[2] != "pwd" || claims["acr"] != "aal2" {
			t.Fatalf("ID token amr %v acr %v", claims["amr"], claims["acr"])
		}
		// The page of that second step, posted again with the next good
		// code (a copy of it, or the back button): it completed once.
		s.Clock.Advance(totp.Period)
		f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
		if r := b2.post(t, "/login/factor", f); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "expired") {
			t.Fatalf("a completed second step posted again: %d %s", r.Status, r.Body)
		}
		// ... without spending the code it carried.
		bb := newBrowser(t, s)
		login = wantLoginPage(t, bb.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
		fb := wantFactorPage(t, bb.signIn(t, login, "two@example.com", testPassword), http.StatusOK)
		fb.Set("code", f.Get("code"))
		redirected(t, bb.post(t, "/login/factor", fb), http.StatusSeeOther)

		// The same code again, in a third browser: used.
		b3 := newBrowser(t, s)
		login = wantLoginPage(t, b3.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
		f3 := wantFactorPage(t, b3.signIn(t, login, "two@example.com", testPassword), http.StatusOK)
		f3.Set("code", code)
		wantFactorPage(t, b3.post(t, "/login/factor", f3), http.StatusBadRequest)

		// A recovery code instead, once.
		sw := url.Values{"csrf": {f3.Get("csrf")}, "request": {f3.Get("request")}, "pending": {f3.Get("pending")},
			"switch": {"recovery"}}
		fr := wantFactorPage(t, b3.post(t, "/login/factor", sw), http.StatusOK)
		if fr.Get("step") != "recovery" {
			t.Fatalf("switched to %q", fr.Get("step"))
		}
		fr.Set("code", strings.ToUpper(codes[3]))
		redirected(t, b3.post(t, "/login/factor", fr), http.StatusSeeOther)
		b4 := newBrowser(t, s)
		login = wantLoginPage(t, b4.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
		f4 := wantFactorPage(t, b4.signIn(t, login, "two@example.com", testPassword), http.StatusOK)
		f4.Set("step", "recovery")
		f4.Set("code", codes[3])
		wantFactorPage(t, b4.post(t, "/login/factor", f4), http.StatusBadRequest)

		// The pending sign-in does not carry to another browser.
		b5 := newBrowser(t, s)
		b5.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode())
		f4.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())+1))
		if r := b5.post(t, "/login/factor", f4); r.Status != 400 || strings.Contains(string(r.Body), "Two-step") {
			t.Fatalf("another browser's pending sign-in: %d %s", r.Status, r.Body)
		}

		// Nothing secret in the audit log.
		evs, err := s.Store.ListAudit(context.Background(), store.AuditFilter{UserID: u.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			for _, v := range ev.Details {
				for _, c := range codes {
					if strings.Contains(v, c) {
						t.Fatalf("a recovery code in the audit log: %+v", ev)
					}
				}
			}
		}

		// The operator removes the factors; the password works alone again.
		if n, err := s.Factors.Reset(context.Background(), u.ID, audit.CLI); err != nil || n != 1 {
			t.Fatalf("reset: %d %v", n, err)
		}
		evs, err = s.Store.ListAudit(context.Background(), store.AuditFilter{UserID: u.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(evs, func(ev store.AuditEvent) bool { return ev.Type == audit.FactorsReset }) {
			t.Fatalf("the operator's reset of the factors is not audited: %+v", evs)
		}
		nativeLogin(t, s, "two@example.com", "")
	})
}

// TestSecondStepCompletesOnce: one second-step page posted twice at once
// from its browser, with two different good answers (a code from the app
// and a recovery code, each of which passes its own check), signs in once,
// and the losing answer is not spent; a cancelled page completes nothing.
func TestSecondStepCompletesOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "once@example.com")
		br := newBrowser(t, s)
		br.signIn(t, wantLoginPage(t, br.get(t, "/account"), http.StatusOK), "once@example.com", testPassword)
		secret, codes := enrolTOTP(t, s, br)
		for round := range 3 {
			s.Clock.Advance(totp.Period)
			b2 := newBrowser(t, s)
			login := wantLoginPage(t, b2.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
			f := wantFactorPage(t, b2.signIn(t, login, "once@example.com", testPassword), http.StatusOK)
			app, rec := maps.Clone(f), maps.Clone(f) // Set replaces values, never edits them
			app.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
			rec.Set("step", "recovery")
			rec.Set("code", codes[round])
			statuses := make([]int, 2)
			var wg sync.WaitGroup
			for i, form := range []url.Values{app, rec} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = b2.post(t, "/login/factor", form).Status
				}()
			}
			wg.Wait()
			if !slices.Equal(statuses, []int{http.StatusSeeOther, http.StatusBadRequest}) &&
				!slices.Equal(statuses, []int{http.StatusBadRequest, http.StatusSeeOther}) {
				t.Fatalf("round %d: the same second-step page posted twice answered %v, want one 303 and one 400", round, statuses)
			}
			// The losing post spent nothing: its answer signs in elsewhere.
			loser := app
			if statuses[0] == http.StatusSeeOther {
				loser = rec
			}
			b3 := newBrowser(t, s)
			login = wantLoginPage(t, b3.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
			f3 := wantFactorPage(t, b3.signIn(t, login, "once@example.com", testPassword), http.StatusOK)
			f3.Set("step", loser.Get("step"))
			f3.Set("code", loser.Get("code"))
			redirected(t, b3.post(t, "/login/factor", f3), http.StatusSeeOther)
		}

		// A cancelled second step ends its page: the application was told
		// access_denied, and a copy posted afterwards with a good code
		// completes nothing.
		s.Clock.Advance(totp.Period)
		b4 := newBrowser(t, s)
		login := wantLoginPage(t, b4.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
		f := wantFactorPage(t, b4.signIn(t, login, "once@example.com", testPassword), http.StatusOK)
		cancel := maps.Clone(f)
		cancel.Set("action", "cancel")
		if q := redirected(t, b4.post(t, "/login/factor", cancel), http.StatusFound); q.Get("error") != "access_denied" {
			t.Fatalf("cancel: %v", q)
		}
		f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
		if r := b4.post(t, "/login/factor", f); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "expired") {
			t.Fatalf("a cancelled second step posted afterwards: %d %s", r.Status, r.Body)
		}
	})
}

// TestSecondFactorThrottled: wrong codes count against the second step's
// limits.
func TestSecondFactorThrottled(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Backend: "sqlite"})
	createUser(t, s, "brute@example.com")
	br := newBrowser(t, s)
	wantLoginPage(t, br.get(t, "/account"), http.StatusOK)
	page := wantLoginPage(t, br.get(t, "/account"), http.StatusOK)
	br.signIn(t, page, "brute@example.com", testPassword)
	enrolTOTP(t, s, br)
	b2 := newBrowser(t, s)
	login := wantLoginPage(t, b2.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
	f := wantFactorPage(t, b2.signIn(t, login, "brute@example.com", testPassword), http.StatusOK)
	for i := range 5 {
		f.Set("code", "00000"+string(rune('0'+i)))
		wantFactorPage(t, b2.post(t, "/login/factor", f), http.StatusBadRequest)
	}
	f.Set("code", "111111")
	r := b2.post(t, "/login/factor", f)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("the sixth wrong code: %d %s", r.Status, r.Body)
	}
}

// TestStepUp: a sign-in session of the password alone answers a request
// for acr aal2 only after the second factor (without the password again);
// prompt=none gets interaction_required; the session keeps its id.
func TestStepUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "up@example.com")
		br := newBrowser(t, s)
		p := newPKCE()
		q := br.codeFlow(t, p, "up@example.com")
		ct := exchanged(t, exchange(t, s, q.Get("code"), p.verifier))
		_, c1 := jwtParts(t, ct.IDToken)
		if c1["acr"] != "aal1" {
			t.Fatalf("a password sign-in: acr %v", c1["acr"])
		}
		// Without a factor, acr_values=aal2 is answered at aal1.
		p0 := newPKCE()
		q0 := redirected(t, br.get(t, "/oauth/authorize?"+authParams(p0, "acr_values", "aal2").Encode()), http.StatusFound)
		if _, c := jwtParts(t, exchanged(t, exchange(t, s, q0.Get("code"), p0.verifier)).IDToken); c["acr"] != "aal1" {
			t.Fatalf("no factor: acr %v", c["acr"])
		}
		secret, _ := enrolTOTP(t, s, br)
		s.Clock.Advance(totp.Period)
		// The session still answers plain requests at aal1.
		redirected(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusFound)
		e := redirected(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "acr_values", "aal2", "prompt", "none").Encode()),
			http.StatusFound)
		if e.Get("error") != "interaction_required" {
			t.Fatalf("prompt=none step-up: %v", e)
		}
		p2 := newPKCE()
		f := wantFactorPage(t, br.get(t, "/oauth/authorize?"+authParams(p2, "acr_values", "aal2 aal1").Encode()), http.StatusOK)
		f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
		q2 := redirected(t, br.post(t, "/login/factor", f), http.StatusSeeOther)
		_, c2 := jwtParts(t, exchanged(t, exchange(t, s, q2.Get("code"), p2.verifier)).IDToken)
		if c2["acr"] != "aal2" || c2["sid"] != c1["sid"] || c2["auth_time"] == c1["auth_time"] {
			t.Fatalf("after the step-up: %v (before: %v)", c2, c1)
		}
		// aal1 first in the list asks nothing.
		redirected(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE(), "acr_values", "aal1 aal2").Encode()), http.StatusFound)
		s.Clock.Advance(time.Minute)
	})
}
