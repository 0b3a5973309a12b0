package interop

import (
	"context"
	"encoding/base32"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/totp"
)

// TestTOTPInBrowser: in a real browser, under the pages' CSP, a user signs
// in to the account page, sets up an authenticator app from the page (the
// QR code is drawn, the key typed in as a user would, the first code
// entered), sees the recovery codes once, and then signs in to an
// application with the password and a code from the app.
func TestTOTPInBrowser(t *testing.T) {
	bctx := browser(t)
	s := tokendtest.Start(t, tokendtest.Options{})
	if _, err := s.Users.CreateVerified(context.Background(), "otp@example.com", "typed in chrome", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx,
		chromedp.Navigate(s.URL+"/account"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), "otp@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "typed in chrome"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/account/totp"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/account/totp"]`)),
		chromedp.WaitVisible(chromedp.CSS(".qr svg")),
	); err != nil {
		t.Fatalf("to the enrolment page: %v", err)
	}
	// The QR code is drawn (the CSP lets no image or script in: it is
	// inline SVG) at a size a phone can read.
	size, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`document.querySelector('.qr svg').getBoundingClientRect().width`))
	if err != nil || size < 150 {
		t.Fatalf("QR code width %v %v", size, err)
	}
	key, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("code.secret")))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(key, " ", ""))
	if err != nil {
		t.Fatalf("key %q: %v", key, err)
	}
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(secret, totp.Step(s.Clock.Now()))),
		chromedp.SendKeys(chromedp.CSS("#password"), "typed in chrome"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("ul.codes")),
	); err != nil {
		t.Fatalf("turning it on: %v", err)
	}
	n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('ul.codes li').length`))
	if err != nil || n != 10 {
		t.Fatalf("%d recovery codes shown (%v)", n, err)
	}

	// A fresh browser signs in to an application: password, then the code.
	bctx2 := browser(t)
	codes := make(chan url.Values, 2)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		codes <- r.URL.Query()
		_, _ = w.Write([]byte("<!doctype html><title>app</title><p id=done>signed in</p>"))
	}))
	defer rp.Close()
	verifier := strings.Repeat("w", 43)
	authURL := s.URL + "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"mobile"},
		"redirect_uri": {rp.URL + "/callback"}, "scope": {"openid"}, "state": {"otp"}, "code_challenge": {s256(verifier)},
		"code_challenge_method": {"S256"}}.Encode()
	if err := chromedp.Do(bctx2,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), "otp@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "typed in chrome"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#code")),
	); err != nil {
		t.Fatalf("to the second step: %v", err)
	}
	ac, err := chromedp.Run(bctx2, chromedp.Evaluate[string](`document.getElementById('code').autocomplete + ' ' + document.getElementById('code').inputMode`))
	if err != nil || ac != "one-time-code numeric" {
		t.Fatalf("the code input: %q %v", ac, err)
	}
	// The enrolment used this step's code: the app shows the next one.
	s.Clock.Advance(totp.Period)
	if err := chromedp.Do(bctx2,
		chromedp.SendKeys(chromedp.CSS("#code"), totp.Code(secret, totp.Step(s.Clock.Now()))+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#done")),
	); err != nil {
		t.Fatalf("the second step: %v", err)
	}
	if q := <-codes; q.Get("code") == "" || q.Get("state") != "otp" {
		t.Fatalf("callback %v", q)
	}
}
