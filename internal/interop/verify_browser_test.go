package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestVerifyPageInBrowser: a real browser opens the mailed confirmation
// link; the page (under its CSP, with no outside asset) reads the token
// from the fragment, drops it from the address bar, asks (opening the link
// alone confirms nothing), posts it when its button is pressed and says the
// address is confirmed; the account can then sign in. The same link again
// says it was used and offers a new one.
func TestVerifyPageInBrowser(t *testing.T) {
	bctx := browser(t)
	ms := mailtest.Start(t, mailtest.Options{})
	s := tokendtest.Start(t, tokendtest.Options{SMTPURL: ms.URL()})
	ctx := context.Background()
	if err := s.Verify.SignUp(ctx, "chromium@example.com", "typed at sign-up", audit.Meta{Address: "192.0.2.1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Outbox.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	link := mailtest.Parse(t, ms.Wait(1, 10*time.Second)[0].Data).Link(t)
	if _, err := s.PasswordLogin(ctx, "web", "chromium@example.com", "typed at sign-up", audit.Meta{}); err == nil {
		t.Fatal("an unverified account signed in")
	}

	// Opening the link confirms nothing (a mail scanner, or a link someone
	// else sent): the page asks first.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank"), chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#confirm"))); err != nil {
		t.Fatalf("browser on the verification page: %v", err)
	}
	if u, err := s.Store.UserByEmail(ctx, "chromium@example.com"); err != nil || u.EmailVerified() {
		t.Fatalf("opening the link alone verified the address: %+v %v", u, err)
	}

	status, location := openVerifyLink(t, bctx, link, "#status.ok")
	if strings.Contains(location, "token=") {
		t.Fatalf("the token stayed in the address bar: %s", location)
	}
	if !strings.Contains(status, "address is confirmed") {
		t.Fatalf("status: %q", status)
	}
	if u, err := s.Store.UserByEmail(ctx, "chromium@example.com"); err != nil || !u.EmailVerified() {
		t.Fatalf("after the page: %+v %v", u, err)
	}
	if _, err := s.PasswordLogin(ctx, "web", "chromium@example.com", "typed at sign-up", audit.Meta{}); err != nil {
		t.Fatalf("sign-in after the confirmation: %v", err)
	}

	status, _ = openVerifyLink(t, bctx, link, "#status.error")
	if !strings.Contains(status, "already been used") {
		t.Fatalf("status for a used link: %q", status)
	}
	visible, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`!document.getElementById('again').hidden`))
	if err != nil || !visible {
		t.Fatalf("no offer of a new link after a used one (%v)", err)
	}
	// Without a token (a mangled link) the page says so, and posts nothing.
	status, _ = openVerifyLink(t, bctx, s.URL+"/verify", "#status.error")
	if !strings.Contains(status, "incomplete") {
		t.Fatalf("status without a token: %q", status)
	}
}

// openVerifyLink loads link afresh, waits for the status selector and
// returns the status text and the page's address.
func openVerifyLink(t *testing.T, bctx context.Context, link, wait string) (string, string) {
	t.Helper()
	actions := []chromedp.Action[chromedp.Void]{chromedp.Navigate("about:blank"), chromedp.Navigate(link)}
	if strings.Contains(link, "#token=") {
		// The page asks before it posts: press its button.
		actions = append(actions, chromedp.WaitVisible(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#confirm")))
	}
	actions = append(actions, chromedp.WaitVisible(chromedp.CSS(wait)))
	if err := chromedp.Do(bctx, actions...); err != nil {
		t.Fatalf("browser on the verification page: %v", err)
	}
	status, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#status")))
	if err != nil {
		t.Fatal(err)
	}
	location, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return status, location
}
