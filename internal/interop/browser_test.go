package interop

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/tokendtest"
)

// requireChromium returns Debian's Chromium, skipping without it unless
// TOKEND_TEST_REQUIRE_BROWSER=1 (set by .ci/run, which installs it).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("TOKEND_TEST_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium is not installed but TOKEND_TEST_REQUIRE_BROWSER=1 (apt-get install chromium)")
	}
	t.Skip("chromium is not installed")
	return ""
}

func browser(t *testing.T) context.Context {
	t.Helper()
	path := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	return bctx
}

// TestResetPageInBrowser: a real browser opens the mailed reset link, types
// the new password twice and submits; the user then logs in with it. Opening
// the used link again shows the used-link error.
func TestResetPageInBrowser(t *testing.T) {
	bctx := browser(t)
	ms := mailtest.Start(t, mailtest.Options{})
	s := tokendtest.Start(t, tokendtest.Options{SMTPURL: ms.URL()})
	ctx := context.Background()
	if _, err := s.Users.CreateVerified(ctx, "browser@example.com", "old password 123", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset.Forgot(ctx, "browser@example.com", audit.Meta{Address: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Outbox.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	link := mailtest.Parse(t, ms.Wait(1, 10*time.Second)[0].Data).Link(t)

	const newPassword = "typed in a browser"
	status, location := submitResetPage(t, bctx, link, newPassword, newPassword, "#status.ok")
	if strings.Contains(location, "token=") {
		t.Fatalf("the token stayed in the address bar: %s", location)
	}
	if !strings.Contains(status, "password has been changed") {
		t.Fatalf("status after submit: %q", status)
	}
	if _, err := s.PasswordLogin(ctx, "web", "browser@example.com", newPassword, audit.Meta{}); err != nil {
		t.Fatalf("login with the password typed in the browser: %v", err)
	}
	// The same link again: the page shows the used-link error.
	if status, _ := submitResetPage(t, bctx, link, "yet another pass", "yet another pass", "#status.error"); !strings.Contains(status, "expired or has already been used") {
		t.Fatalf("status for a used link: %q", status)
	}
	// Mismatched passwords are caught on the page.
	if status, _ := submitResetPage(t, bctx, link, "one password", "another one", "#status.error"); !strings.Contains(status, "not the same") {
		t.Fatalf("status for mismatched passwords: %q", status)
	}
}

// submitResetPage opens link, types the two passwords, submits, waits for
// the status selector and returns the status text and the page's address.
func submitResetPage(t *testing.T, bctx context.Context, link, pw1, pw2, wait string) (string, string) {
	t.Helper()
	err := chromedp.Do(bctx,
		// A fresh load, as when the link is clicked in a mail: from the
		// stripped /reset, /reset#token=… would only change the fragment.
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#password"), pw1),
		chromedp.SendKeys(chromedp.CSS("#password-again"), pw2),
		chromedp.Click(chromedp.CSS("#submit")),
		// The status gets its class once the server has answered. (CSS
		// selectors: a plain string is a DOM search that also matches text.)
		chromedp.WaitVisible(chromedp.CSS(wait)),
	)
	if err != nil {
		t.Fatalf("browser on the reset page: %v", err)
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
