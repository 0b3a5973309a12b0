package httpapi_test

import (
	"context"
	"encoding/base32"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/passkeys/passkeystest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/totp"
)

// wantStepUpPage checks that r is the second step's page the account pages
// send a sign-in session of one factor to, and returns its fields.
func wantStepUpPage(t *testing.T, r *tokendtest.Response) url.Values {
	t.Helper()
	f := wantFactorPage(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), "You signed in without your second factor") {
		t.Fatalf("the step-up page does not say why: %s", r.Body)
	}
	return f
}

// factorState is what the store holds of an account's factors: its factors'
// IDs, its recovery codes left and how often they were renewed.
func factorState(t *testing.T, s *tokendtest.Server, userID string) string {
	t.Helper()
	ctx := context.Background()
	fs, err := s.Store.Factors(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.Kind+":"+f.ID)
	}
	slices.Sort(ids)
	n, err := s.Store.RecoveryCodesLeft(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.Store.ListAudit(ctx, store.AuditFilter{UserID: userID, Type: audit.RecoveryCodesRenewed, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s codes=%d renewed=%d", strings.Join(ids, ","), n, len(evs))
}

// TestFactorChangesNeedAAL2: once an account has a second factor, a
// sign-in session of the password alone (signed in before the factor was
// added, in another browser) changes nothing on the account pages, even
// with the password: no removal, no new recovery codes, no passkey, no
// authenticator app. Each answers with the second step's page, whose
// cancel goes back to the account page; after the step-up (a TOTP code)
// the same session does all of it (the password still asked for). An
// account without a factor adds its first with the password alone.
func TestFactorChangesNeedAAL2(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name, Hostname: "localhost"})
		u := createUser(t, s, "aal@example.com")

		// Two browsers signed in with the password before any factor.
		old := newBrowser(t, s)
		old.signIn(t, wantLoginPage(t, old.get(t, "/account"), http.StatusOK), "aal@example.com", testPassword)
		old2 := newBrowser(t, s)
		old2.signIn(t, wantLoginPage(t, old2.get(t, "/account"), http.StatusOK), "aal@example.com", testPassword)
		if r := old.get(t, "/account"); strings.Contains(string(r.Body), "?step-up=1") {
			t.Fatalf("an account without a factor is asked for one: %s", r.Body)
		}
		// old2 opens the enrolment page now; it posts it later.
		enrolPage := old2.get(t, "/account/totp")
		enrolForm := formFields(t, enrolPage.Body)
		m := secretKeyText.FindSubmatch(enrolPage.Body)
		if m == nil {
			t.Fatalf("no key on the enrolment page: %s", enrolPage.Body)
		}
		key := strings.ReplaceAll(string(m[1]), " ", "")
		s.AddSecret("TOTP secret", key)
		secret2, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key)
		if err != nil {
			t.Fatal(err)
		}

		// A third browser signs in and turns the authenticator app on.
		br := newBrowser(t, s)
		br.signIn(t, wantLoginPage(t, br.get(t, "/account"), http.StatusOK), "aal@example.com", testPassword)
		secret, _ := enrolTOTP(t, s, br)
		s.Clock.Advance(totp.Period)
		before := factorState(t, s, u.ID)

		// The old session: the page links to the step-up.
		acct := old.get(t, "/account")
		if acct.Status != http.StatusOK || !strings.Contains(string(acct.Body), `href="/account?step-up=1"`) {
			t.Fatalf("the account page of a password-only session: %d %s", acct.Status, acct.Body)
		}
		rm := removeButton.FindSubmatch(acct.Body)
		if rm == nil {
			t.Fatalf("no remove button: %s", acct.Body)
		}
		csrf := formFields(t, acct.Body).Get("csrf")
		refused := map[string]func() *tokendtest.Response{
			"remove": func() *tokendtest.Response {
				return old.post(t, "/account", url.Values{"csrf": {csrf}, "password": {testPassword}, "remove": {string(rm[1])}})
			},
			"new recovery codes": func() *tokendtest.Response {
				return old.post(t, "/account", url.Values{"csrf": {csrf}, "password": {testPassword}, "action": {"recovery"}})
			},
			"add a passkey": func() *tokendtest.Response {
				return old.post(t, "/account/passkey", url.Values{"csrf": {csrf}, "action": {"begin"}, "name": {"evil"},
					"password": {testPassword}})
			},
		}
		for name, do := range refused {
			r := do()
			wantStepUpPage(t, r)
			if recoveryCode.Match(r.Body) || strings.Contains(string(r.Body), `data-passkey="create"`) {
				t.Fatalf("%s from a password-only session: %s", name, r.Body)
			}
			if after := factorState(t, s, u.ID); after != before {
				t.Fatalf("%s from a password-only session changed the factors: %s, was %s", name, after, before)
			}
		}
		// Cancelling the step-up goes back to the account page, signed in.
		f := wantStepUpPage(t, old.get(t, "/account?step-up=1"))
		f.Set("action", "cancel")
		if r := old.post(t, "/login/factor", f); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
			t.Fatalf("cancel: %d %q %s", r.Status, r.Header.Get("Location"), r.Body)
		}

		// The step-up: a code, without the password, back to the account
		// page, which no longer links to it.
		f = wantStepUpPage(t, old.get(t, "/account?step-up=1"))
		f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
		if r := old.post(t, "/login/factor", f); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
			t.Fatalf("step-up: %d %q %s", r.Status, r.Header.Get("Location"), r.Body)
		}
		acct = old.get(t, "/account")
		if strings.Contains(string(acct.Body), "?step-up=1") || !removeButton.Match(acct.Body) {
			t.Fatalf("the account page after the step-up: %s", acct.Body)
		}
		if r := old.get(t, "/account?step-up=1"); r.Status != http.StatusOK || strings.Contains(string(r.Body), "Two-step verification</h1>") {
			t.Fatalf("step-up=1 of a session at aal2: %d %s", r.Status, r.Body)
		}
		csrf = formFields(t, acct.Body).Get("csrf")

		// Now the same session changes the factors, with the password.
		r := old.post(t, "/account", url.Values{"csrf": {csrf}, "password": {"not-the-password"}, "action": {"recovery"}})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "The password is incorrect.") {
			t.Fatalf("new codes with a wrong password: %d %s", r.Status, r.Body)
		}
		r = old.post(t, "/account", url.Values{"csrf": {csrf}, "password": {testPassword}, "action": {"recovery"}})
		if r.Status != http.StatusOK || len(recoveryCode.FindAllSubmatch(r.Body, -1)) != 10 {
			t.Fatalf("new codes after the step-up: %d %s", r.Status, r.Body)
		}
		for _, c := range recoveryCode.FindAllSubmatch(r.Body, -1) {
			s.AddSecret("recovery code", string(c[1]))
		}
		a := &passkeystest.Authenticator{Origin: s.URL}
		if r := addPasskey(t, old, a, "Laptop"); r.Status != http.StatusSeeOther ||
			r.Header.Get("Location") != "/account?done=passkey-on" {
			t.Fatalf("a passkey after the step-up: %d %s", r.Status, r.Body)
		}
		r = old.post(t, "/account", url.Values{"csrf": {csrf}, "password": {testPassword}, "remove": {string(rm[1])}})
		if r.Status != http.StatusSeeOther {
			t.Fatalf("removal after the step-up: %d %s", r.Status, r.Body)
		}
		fs, err := s.Store.Factors(context.Background(), u.ID)
		if err != nil || len(fs) != 1 || fs[0].Kind != store.FactorWebAuthn {
			t.Fatalf("factors after the changes: %+v %v", fs, err)
		}

		// old2, still of the password alone: no authenticator app beside
		// the passkey, neither from a fresh page nor from the one it opened
		// before; the step-up comes back to the enrolment page.
		before = factorState(t, s, u.ID)
		wantStepUpPage(t, old2.get(t, "/account/totp"))
		s.Clock.Advance(totp.Period)
		enrolForm.Set("code", totp.Code(secret2, totp.Step(s.Clock.Now())))
		enrolForm.Set("password", testPassword)
		wantStepUpPage(t, old2.post(t, "/account/totp", enrolForm))
		if after := factorState(t, s, u.ID); after != before {
			t.Fatalf("an app added from a password-only session: %s, was %s", after, before)
		}
		page := old2.get(t, "/account/totp")
		wantStepUpPage(t, page)
		opts, pf := passkeyPage(t, page, http.StatusOK)
		answer, err := a.Get(opts)
		if err != nil {
			t.Fatal(err)
		}
		pf.Set("code", answer)
		if r := old2.post(t, "/login/factor", pf); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account/totp" {
			t.Fatalf("step-up with the passkey: %d %q %s", r.Status, r.Header.Get("Location"), r.Body)
		}
		// The enrolment page it opened before works now.
		if r := old2.post(t, "/account/totp", enrolForm); r.Status != http.StatusSeeOther ||
			r.Header.Get("Location") != "/account?done=totp-on" {
			t.Fatalf("an app after the step-up: %d %s", r.Status, r.Body)
		}
		if fs, err := s.Store.Factors(context.Background(), u.ID); err != nil || len(fs) != 2 {
			t.Fatalf("factors at the end: %+v %v", fs, err)
		}
	})
}
