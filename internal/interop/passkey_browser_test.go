package interop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// virtualAuthenticator adds Chromium's virtual authenticator to the tab: a
// CTAP2 platform authenticator (transport internal) with resident keys and
// user verification that succeeds, as a laptop's fingerprint reader would.
func virtualAuthenticator(t *testing.T, bctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	id, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (webauthn.AuthenticatorID, error) {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return "", err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
				Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
		return res.AuthenticatorID, err
	})
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	return id
}

func credentials(t *testing.T, bctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	creds, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) ([]*webauthn.Credential, error) {
		res, err := cdp.Call(ctx, tg, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		return res.Credentials, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// signOut forgets the browser's cookies (its sign-in session).
func signOut(t *testing.T, bctx context.Context) {
	t.Helper()
	if err := chromedp.Do(bctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
}

// TestPasskeysInBrowser: in Chromium with its virtual authenticator, a
// signed-in user adds a passkey on the account page (the page script runs
// navigator.credentials.create under tokend's CSP); then signs in with the
// passkey alone from the login page's button, and with the password and
// then the passkey; the ID tokens say so (amr, acr). A clone of the
// credential, on another authenticator with its signature counter behind,
// is refused and audited.
func TestPasskeysInBrowser(t *testing.T) {
	bctx := browser(t)
	// A hostname issuer: WebAuthn refuses an IP address as RP ID, and
	// http://localhost is a secure context.
	s := tokendtest.Start(t, tokendtest.Options{Hostname: "localhost"})
	u, err := s.Users.CreateVerified(context.Background(), "passkey@example.com", "typed in chrome", audit.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan url.Values, 4)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		codes <- r.URL.Query()
		_, _ = w.Write([]byte("<!doctype html><title>app</title><p id=done>signed in</p>"))
	}))
	defer rp.Close()
	verifier := strings.Repeat("p", 43)
	authURL := func(state string) string {
		return s.URL + "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"mobile"},
			"redirect_uri": {rp.URL + "/callback"}, "scope": {"openid"}, "state": {state}, "nonce": {"n"},
			"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}, "prompt": {"login"}}.Encode()
	}
	amrOf := func(state string) (any, any) {
		t.Helper()
		q := <-codes
		if q.Get("state") != state || q.Get("code") == "" {
			t.Fatalf("callback %v", q)
		}
		r := s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
			"redirect_uri": {rp.URL + "/callback"}, "client_id": {"mobile"}, "code_verifier": {verifier}})
		var tok struct {
			IDToken string `json:"id_token"`
		}
		if r.Status != 200 {
			t.Fatalf("exchange: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &tok)
		parts := strings.Split(tok.IDToken, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims map[string]any
		if err := json.Unmarshal(raw, &claims); err != nil {
			t.Fatal(err)
		}
		return claims["amr"], claims["acr"]
	}
	wantAMR := func(state string, want ...string) {
		t.Helper()
		amr, acr := amrOf(state)
		var got []string
		for _, m := range amr.([]any) {
			got = append(got, m.(string))
		}
		if !slices.Equal(got, want) || acr != "aal2" {
			t.Fatalf("%s: amr %v acr %v, want %v aal2", state, got, acr, want)
		}
	}

	auth := virtualAuthenticator(t, bctx)
	// Sign in with the password, then add a passkey on the account page.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(s.URL+"/account"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), "passkey@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "typed in chrome"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#passkey-add")),
		chromedp.SendKeys(chromedp.CSS("#passkey-name"), "Chromium"),
		chromedp.SendKeys(chromedp.CSS("#passkey-password"), "typed in chrome"),
		chromedp.Click(chromedp.CSS("#passkey-add")),
		chromedp.WaitVisible(chromedp.CSS("#passkey-start")),
		chromedp.Click(chromedp.CSS("#passkey-start")),
		chromedp.WaitVisible(chromedp.CSS("ul.codes")),
	); err != nil {
		status, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.getElementById('status')||{}).textContent||document.body.innerText`))
		t.Fatalf("adding a passkey: %v (page: %q)", err, status)
	}
	creds := credentials(t, bctx, auth)
	if len(creds) != 1 || !creds[0].IsResidentCredential || string(creds[0].UserHandle) != u.ID || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator's credentials: %+v", creds)
	}
	fs, err := s.Store.Factors(context.Background(), u.ID)
	if err != nil || len(fs) != 1 || fs[0].Kind != store.FactorWebAuthn || fs[0].Name != "Chromium" ||
		fs[0].CredentialID != base64.RawURLEncoding.EncodeToString(creds[0].CredentialID) {
		t.Fatalf("stored factors: %+v %v", fs, err)
	}

	// The passkey alone, from the login page's button.
	signOut(t, bctx)
	if err := chromedp.Do(bctx,
		chromedp.Navigate(authURL("alone")),
		chromedp.WaitVisible(chromedp.CSS("#passkey-start")),
		chromedp.Click(chromedp.CSS("#passkey-start")),
		chromedp.WaitVisible(chromedp.CSS("#done")),
	); err != nil {
		t.Fatalf("signing in with the passkey: %v", err)
	}
	wantAMR("alone", "hwk", "mfa", "user")

	// The password, then the passkey.
	signOut(t, bctx)
	if err := chromedp.Do(bctx,
		chromedp.Navigate(authURL("both")),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), "passkey@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "typed in chrome"+kb.Enter),
		// The second step's page (the login page has a passkey button too).
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey-start][value="verify"]`)),
		chromedp.Click(chromedp.CSS(`button[data-passkey-start][value="verify"]`)),
		chromedp.WaitVisible(chromedp.CSS("#done")),
	); err != nil {
		t.Fatalf("the password and the passkey: %v", err)
	}
	wantAMR("both", "hwk", "mfa", "pwd", "user")

	// A clone: the same credential on another authenticator, its counter
	// behind the one tokend has seen.
	orig := credentials(t, bctx, auth)[0]
	if orig.SignCount < 2 {
		t.Fatalf("the virtual authenticator's counter is %v after two sign-ins", orig.SignCount)
	}
	if _, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, tg, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: auth})
	}); err != nil {
		t.Fatal(err)
	}
	clone := virtualAuthenticator(t, bctx)
	// The command's parameters by hand: cdproto's Credential always sends
	// the CMTG fields, which this Chromium refuses for an authenticator
	// without CMTG.
	if err := chromedp.Do(bctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return tg.Call(ctx, webauthn.CommandAddCredential, map[string]any{"authenticatorId": clone, "credential": map[string]any{
			"credentialId": orig.CredentialID, "isResidentCredential": true, "rpId": orig.RpID, "privateKey": orig.PrivateKey,
			"userHandle": orig.UserHandle, "signCount": 0}}, nil)
	})); err != nil {
		t.Fatal(err)
	}
	signOut(t, bctx)
	if err := chromedp.Do(bctx,
		chromedp.Navigate(authURL("clone")),
		chromedp.WaitVisible(chromedp.CSS("#passkey-start")),
		chromedp.Click(chromedp.CSS("#passkey-start")),
		chromedp.WaitVisible(chromedp.CSS(".alert")),
	); err != nil {
		t.Fatalf("a clone's sign-in: %v", err)
	}
	alert, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(".alert")))
	if err != nil || !strings.Contains(alert, "That passkey could not sign you in") {
		t.Fatalf("a clone: alert %q %v", alert, err)
	}
	evs, err := s.Store.ListAudit(context.Background(), store.AuditFilter{UserID: u.ID, Type: audit.FactorCloned, Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Fatalf("clone audit: %+v %v", evs, err)
	}
	select {
	case q := <-codes:
		t.Fatalf("a clone reached the application: %v", q)
	default:
	}
}
