package interop

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestLoginPageInBrowser: a real browser opens the authorization URL, sees
// tokend's login page under its CSP, types a wrong password (the page says
// so, without saying which of the two was wrong), then the right one and
// submits with the Enter key; the browser lands on the application's
// callback with a code, which the application exchanges. A second request
// from the same browser gets its code without the form.
func TestLoginPageInBrowser(t *testing.T) {
	bctx := browser(t)
	s := tokendtest.Start(t, tokendtest.Options{})
	if _, err := s.Users.CreateVerified(context.Background(), "chrome@example.com", "typed in chrome", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	codes := make(chan url.Values, 4)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r) // the browser asks for a favicon too
			return
		}
		codes <- r.URL.Query()
		_, _ = w.Write([]byte("<!doctype html><title>app</title><p id=done>signed in</p>"))
	}))
	defer rp.Close()
	verifier := strings.Repeat("v", 43)
	authURL := s.URL + "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"mobile"},
		"redirect_uri": {rp.URL + "/callback"}, "scope": {"openid email"}, "state": {"chrome-state"}, "nonce": {"n"},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}}.Encode()

	err := chromedp.Do(bctx,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS("#email")),
	)
	if err != nil {
		t.Fatalf("browser on the login page: %v", err)
	}
	// Labelled inputs with the autocomplete tokens password managers use.
	labels, err := chromedp.Run(bctx, chromedp.Evaluate[string](`[...document.querySelectorAll('label')].map(l => l.htmlFor + ':' + (document.getElementById(l.htmlFor) ? 'ok' : 'missing')).join(',')`))
	if err != nil {
		t.Fatal(err)
	}
	autocomplete, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('email').autocomplete + ' ' + document.getElementById('password').autocomplete`))
	if err != nil {
		t.Fatal(err)
	}
	if labels != "email:ok,password:ok" || autocomplete != "username current-password" {
		t.Fatalf("labels %q, autocomplete %q", labels, autocomplete)
	}
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#email"), "chrome@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "not the password"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(".alert")),
	); err != nil {
		t.Fatalf("a wrong password: %v", err)
	}
	alert, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(".alert")))
	if err != nil {
		t.Fatal(err)
	}
	email, err := chromedp.Run(bctx, chromedp.Value(chromedp.CSS("#email")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(alert, "The email or password is incorrect.") || email != "chrome@example.com" {
		t.Fatalf("after a wrong password: alert %q, email kept %q", alert, email)
	}
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#password"), "typed in chrome"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#done")),
	); err != nil {
		t.Fatalf("signing in: %v", err)
	}
	q := <-codes
	if q.Get("state") != "chrome-state" || q.Get("iss") != s.URL || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	r := s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {rp.URL + "/callback"}, "client_id": {"mobile"}, "code_verifier": {verifier}})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"id_token"`) {
		t.Fatalf("exchange: %d %s", r.Status, r.Body)
	}
	// Single sign-on: the next request goes straight to the application.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank"), chromedp.Navigate(strings.Replace(authURL, "chrome-state", "again", 1)),
		chromedp.WaitVisible(chromedp.CSS("#done"))); err != nil {
		t.Fatalf("second request: %v", err)
	}
	if q := <-codes; q.Get("state") != "again" || q.Get("code") == "" {
		t.Fatalf("second callback %v", q)
	}
}

// s256 is the PKCE S256 challenge of a verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
