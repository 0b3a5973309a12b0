package httpapi_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// startMail starts tokend with a real SMTP server; configure may be nil.
func startMail(t *testing.T, backend string, configure func(*config.Config)) (*tokendtest.Server, *mailtest.Server) {
	t.Helper()
	ms := mailtest.Start(t, mailtest.Options{})
	return tokendtest.Start(t, tokendtest.Options{Backend: backend, SMTPURL: ms.URL(), Configure: configure}), ms
}

// delivered runs the outbox and returns the mails received since `seen`
// (n of them, in the order they arrived).
func delivered(t *testing.T, s *tokendtest.Server, ms *mailtest.Server, seen, n int) []mailtest.Mail {
	t.Helper()
	runOutbox(t, s)
	got := ms.Wait(seen+n, 10*time.Second)
	if len(got) != seen+n {
		t.Fatalf("%d mails arrived, want %d", len(got)-seen, n)
	}
	return got[seen:]
}

// verifyLink checks a confirmation mail to `to` and returns its link.
func verifyLink(t *testing.T, s *tokendtest.Server, m mailtest.Mail, to, subject string) string {
	t.Helper()
	p := mailtest.Parse(t, m.Data)
	if m.To != to || p.Header.Get("Subject") != subject {
		t.Fatalf("mail to %s, subject %q; want %s, %q", m.To, p.Header.Get("Subject"), to, subject)
	}
	link := p.Link(t)
	if !strings.HasPrefix(link, s.URL+"/verify#token=") || !strings.Contains(p.HTML, link) {
		t.Fatalf("link %q does not open the verification page with the token in the fragment", link)
	}
	return link
}

func signup(t *testing.T, s *tokendtest.Server, email, pw string) *tokendtest.Response {
	t.Helper()
	return s.PostJSON(t, "/auth/signup", map[string]string{"email": email, "password": pw})
}

func postVerify(t *testing.T, s *tokendtest.Server, token string) *tokendtest.Response {
	t.Helper()
	return s.PostJSON(t, "/auth/verify", map[string]string{"token": token})
}

func wantAccepted(t *testing.T, r *tokendtest.Response, body string) {
	t.Helper()
	if r.Status != http.StatusAccepted || strings.TrimSpace(string(r.Body)) != body {
		t.Fatalf("got %d %q, want 202 %q", r.Status, r.Body, body)
	}
}

// wantNotVerified checks the answer to the right password of an account
// whose address is not verified.
func wantNotVerified(t *testing.T, r *tokendtest.Response) {
	t.Helper()
	wantError(t, r, 400, "invalid_grant")
	var e struct {
		Description string `json:"error_description"`
	}
	r.JSON(t, &e)
	if e.Description != "email address not verified" {
		t.Fatalf("description %q", e.Description)
	}
}

func passwordGrantResp(t *testing.T, s *tokendtest.Server, email, pw string) *tokendtest.Response {
	t.Helper()
	return s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {email}, "password": {pw},
		"client_id": {"mobile"}})
}

func loginResp(t *testing.T, s *tokendtest.Server, email, pw string) *tokendtest.Response {
	t.Helper()
	return s.PostJSON(t, "/auth/login", map[string]string{"email": email, "password": pw, "client_id": "web"})
}

func auditTypes(t *testing.T, s *tokendtest.Server, userID string) map[string]int {
	t.Helper()
	evs, err := s.Store.ListAudit(context.Background(), store.AuditFilter{UserID: userID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range evs {
		out[e.Type]++
	}
	return out
}

// TestSignupVerifyFlow: a sign-up gets 202 {} and a confirmation mail over
// SMTP; until its link is used the account cannot sign in (the right
// password says why, a wrong one does not); the link works once, and then
// the account signs in with email_verified true.
func TestSignupVerifyFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, ms := startMail(t, b.Name, nil)
		wantAccepted(t, signup(t, s, " Ada@Example.com ", testPassword), "{}")
		u, err := s.Store.UserByEmail(context.Background(), "ada@example.com")
		if err != nil || u.EmailVerified() || u.Email != "Ada@Example.com" {
			t.Fatalf("the new account: %+v %v", u, err)
		}
		link := verifyLink(t, s, delivered(t, s, ms, 0, 1)[0], "Ada@Example.com", "Confirm your email address")
		token := mailtest.Token(t, link)
		if pending(t, s) != 0 {
			t.Fatal("the sent job (with its sealed link) was not deleted")
		}

		// Not verified: the right password says so, a wrong one does not.
		wantNotVerified(t, loginResp(t, s, "ada@example.com", testPassword))
		wantNotVerified(t, passwordGrantResp(t, s, "ada@example.com", testPassword))
		wantError(t, loginResp(t, s, "ada@example.com", "not the password"), 400, "invalid_grant")
		if r := loginResp(t, s, "ada@example.com", "not the password"); strings.Contains(string(r.Body), "verified") {
			t.Fatalf("a wrong password was told about verification: %s", r.Body)
		}

		if r := postVerify(t, s, token); r.Status != 204 {
			t.Fatalf("verify: %d %s", r.Status, r.Body)
		}
		wantError(t, postVerify(t, s, token), 400, "invalid_grant")
		if u, _ := s.Store.UserByID(context.Background(), u.ID); !u.EmailVerifiedAt.Equal(s.Clock.Now()) {
			t.Fatalf("verified at %v", u.EmailVerifiedAt)
		}
		access, _ := webLogin(t, s, "ada@example.com", testPassword)
		var info struct {
			Email         string `json:"email"`
			EmailVerified bool   `json:"email_verified"`
		}
		bearerGet(t, s, "/userinfo", access).JSON(t, &info)
		if !info.EmailVerified || info.Email != "Ada@Example.com" {
			t.Fatalf("userinfo %+v", info)
		}
		nativeLogin(t, s, "ada@example.com", "")
		if got := auditTypes(t, s, u.ID); got["user.created"] != 1 || got["email.verified"] != 1 || got["login.failed"] != 4 {
			t.Fatalf("audit %v", got)
		}
		for _, bad := range []string{"", "not-a-token", strings.Repeat("A", 43)} {
			r := postVerify(t, s, bad)
			if bad == "" {
				wantError(t, r, 400, "invalid_request")
			} else {
				wantError(t, r, 400, "invalid_grant")
			}
		}
	})
}

// TestVerifyExpiry: a confirmation link works for 24 hours, not a moment
// more.
func TestVerifyExpiry(t *testing.T) {
	s, ms := startMail(t, "", nil)
	wantAccepted(t, signup(t, s, "late@example.com", testPassword), "{}")
	wantAccepted(t, signup(t, s, "ontime@example.com", testPassword), "{}")
	mails := delivered(t, s, ms, 0, 2)
	late := mailtest.Token(t, verifyLink(t, s, mails[0], "late@example.com", "Confirm your email address"))
	onTime := mailtest.Token(t, verifyLink(t, s, mails[1], "ontime@example.com", "Confirm your email address"))
	if !strings.Contains(mailtest.Parse(t, mails[0].Data).Text, "within 24 hours") {
		t.Fatal("the mail does not say how long the link works")
	}
	s.Clock.Advance(24*time.Hour - time.Second)
	if r := postVerify(t, s, onTime); r.Status != 204 {
		t.Fatalf("a link one second before its expiry: %d %s", r.Status, r.Body)
	}
	s.Clock.Advance(time.Second)
	wantError(t, postVerify(t, s, late), 400, "invalid_grant")
	wantNotVerified(t, loginResp(t, s, "late@example.com", testPassword))
}

// TestVerifyConcurrentUse: of concurrent uses of one link, one succeeds.
func TestVerifyConcurrentUse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, ms := startMail(t, b.Name, nil)
		wantAccepted(t, signup(t, s, "race@example.com", testPassword), "{}")
		token := mailtest.Token(t, verifyLink(t, s, delivered(t, s, ms, 0, 1)[0], "race@example.com", "Confirm your email address"))
		const n = 8
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Post(s.URL+"/auth/verify", "application/json", strings.NewReader(`{"token":"`+token+`"}`))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		slices.Sort(statuses)
		want := append([]int{204}, slices.Repeat([]int{400}, n-1)...)
		if !slices.Equal(statuses, want) {
			t.Fatalf("statuses %v, want one 204 and %d 400s", statuses, n-1)
		}
		u, _ := s.Store.UserByEmail(context.Background(), "race@example.com")
		if got := auditTypes(t, s, u.ID)["email.verified"]; got != 1 {
			t.Fatalf("%d verifications audited", got)
		}
	})
}

// TestResendVerification: a new link voids the older one; unknown,
// verified and unknown-but-limited emails get the same 202 and no mail;
// the limits are those of reset mails, counted for unknown emails too.
func TestResendVerification(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, ms := startMail(t, b.Name, nil)
		createUser(t, s, "verified@example.com")
		wantAccepted(t, signup(t, s, "slow@example.com", testPassword), "{}")
		first := mailtest.Token(t, verifyLink(t, s, delivered(t, s, ms, 0, 1)[0], "slow@example.com", "Confirm your email address"))
		resend := func(email string) *tokendtest.Response {
			return s.PostJSON(t, "/auth/verify/resend", map[string]string{"email": email})
		}
		wantAccepted(t, resend("SLOW@example.com"), "")
		second := mailtest.Token(t, verifyLink(t, s, delivered(t, s, ms, 1, 1)[0], "slow@example.com", "Confirm your email address"))
		wantError(t, postVerify(t, s, first), 400, "invalid_grant")

		for _, email := range []string{"verified@example.com", "ghost@example.com"} {
			wantAccepted(t, resend(email), "")
		}
		if runOutbox(t, s) != 0 || len(ms.Mails()) != 2 {
			t.Fatal("a verified or unknown address was mailed")
		}
		// The sign-up and two re-sends make three mails for the address in
		// the hour: the fourth is refused, as for an unknown address.
		wantAccepted(t, resend("slow@example.com"), "")
		r := resend("slow@example.com")
		wantError(t, r, 429, "rate_limited")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		for range 2 {
			wantAccepted(t, resend("ghost@example.com"), "")
		}
		wantError(t, resend("ghost@example.com"), 429, "rate_limited")
		wantError(t, resend("not an email"), 400, "invalid_request")

		third := mailtest.Token(t, verifyLink(t, s, delivered(t, s, ms, 2, 1)[0], "slow@example.com", "Confirm your email address"))
		wantError(t, postVerify(t, s, second), 400, "invalid_grant")
		if r := postVerify(t, s, third); r.Status != 204 {
			t.Fatalf("the newest link: %d %s", r.Status, r.Body)
		}
	})
}

// TestSignupNoEnumeration: a sign-up for a taken address answers exactly
// like one for a new address (status, body, headers), after exactly the
// same password-hashing work, under the same limits; the owner of the
// taken address gets a mail saying so, with a way to sign in and to reset
// the password, and nothing about the account changes.
func TestSignupNoEnumeration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, ms := startMail(t, b.Name, nil)
		owner := createUser(t, s, "taken@example.com")
		var (
			mu   sync.Mutex
			work []password.Work
		)
		s.Hasher.Observe(func(w password.Work) {
			mu.Lock()
			defer mu.Unlock()
			work = append(work, w)
		})
		t.Cleanup(func() { s.Hasher.Observe(nil) })
		answer := func(email string) (*tokendtest.Response, []password.Work) {
			mu.Lock()
			work = nil
			mu.Unlock()
			r := signup(t, s, email, "another password 1")
			mu.Lock()
			defer mu.Unlock()
			return r, slices.Clone(work)
		}
		newR, newWork := answer("fresh@example.com")
		takenR, takenWork := answer("TAKEN@example.com")
		for _, r := range []*tokendtest.Response{newR, takenR} {
			wantAccepted(t, r, "{}")
		}
		if len(newWork) != 1 || newWork[0].Verify || !slices.Equal(newWork, takenWork) {
			t.Fatalf("hashing work: new address %+v, taken address %+v; want the same single hash", newWork, takenWork)
		}
		if a, b := headerShape(newR.Header), headerShape(takenR.Header); a != b {
			t.Fatalf("headers differ:\nnew   %s\ntaken %s", a, b)
		}
		if u, _ := s.Store.UserByID(context.Background(), owner.ID); u.PasswordHash != owner.PasswordHash {
			t.Fatal("a sign-up for a taken address changed its password")
		}
		mails := delivered(t, s, ms, 0, 2)
		slices.SortFunc(mails, func(a, b mailtest.Mail) int { return strings.Compare(a.To, b.To) })
		verifyLink(t, s, mails[0], "fresh@example.com", "Confirm your email address")
		notice := mailtest.Parse(t, mails[1].Data)
		if mails[1].To != "taken@example.com" || notice.Header.Get("Subject") != "You already have an account" ||
			!strings.Contains(notice.Text, s.URL+"/forgot") || strings.Contains(notice.Text, "#token=") {
			t.Fatalf("the owner's mail: to %s %q\n%s", mails[1].To, notice.Header.Get("Subject"), notice.Text)
		}
		if got := auditTypes(t, s, owner.ID)["signup.address_taken"]; got != 1 {
			t.Fatalf("%d signup.address_taken events", got)
		}
		// The same per-address mail limit, known or not: the 1st was above,
		// the 2nd and 3rd pass, the 4th gets 429, for both.
		for _, email := range []string{"fresh@example.com", "taken@example.com"} {
			for i := range 2 {
				s.Clock.Advance(time.Second)
				if r := signup(t, s, email, fmt.Sprintf("password number %d", i)); r.Status != 202 {
					t.Fatalf("%s sign-up %d: %d %s", email, i+2, r.Status, r.Body)
				}
			}
			r := signup(t, s, email, "one too many")
			wantError(t, r, 429, "rate_limited")
		}
	})
}

var (
	resendFormAction = regexp.MustCompile(`<form method="post" action="(/verify/resend[^"]*)">`)
	signupLink       = regexp.MustCompile(`href="(/signup\?request=[^"]*)"`)
)

// resendFields returns the hidden fields of the login page's resend form.
func resendFields(t *testing.T, body []byte) url.Values {
	t.Helper()
	b := string(body)
	i := strings.Index(b, `action="/verify/resend`)
	if i < 0 {
		t.Fatalf("no resend form: %s", b)
	}
	j := strings.Index(b[i:], "</form>")
	return formFields(t, []byte(b[i:i+j]))
}

// headerShape is a response's headers without those that differ per
// request.
func headerShape(h http.Header) string {
	var lines []string
	for k, vs := range h {
		if k == "X-Request-Id" || k == "Date" {
			continue
		}
		lines = append(lines, k+": "+strings.Join(vs, ", "))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestRequireVerifiedEmail: the flag applies on every password sign-in
// (the password grant, /auth/login, the login page), after the right
// password only; off, an unverified account signs in.
func TestRequireVerifiedEmail(t *testing.T) {
	for _, require := range []bool{true, false} {
		t.Run(fmt.Sprintf("require=%v", require), func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
				s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name,
					Configure: func(c *config.Config) { c.RequireVerifiedEmail = require }})
				if _, err := s.Users.Create(context.Background(), "new@example.com", testPassword, metaTest); err != nil {
					t.Fatal(err)
				}
				createUser(t, s, "ok@example.com")
				paths := []struct {
					name string
					try  func(email, pw string) (ok bool, notVerified bool)
				}{
					{"password grant", func(email, pw string) (bool, bool) {
						r := passwordGrantResp(t, s, email, pw)
						return r.Status == 200, r.Status == 400 && strings.Contains(string(r.Body), "email address not verified")
					}},
					{"/auth/login", func(email, pw string) (bool, bool) {
						r := loginResp(t, s, email, pw)
						return r.Status == 200, r.Status == 400 && strings.Contains(string(r.Body), "email address not verified")
					}},
					{"login page", func(email, pw string) (bool, bool) {
						br := newBrowser(t, s)
						page := wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), 200)
						r := br.signIn(t, page, email, pw)
						return r.Status == http.StatusSeeOther, r.Status == 400 && strings.Contains(string(r.Body), "not confirmed yet") &&
							strings.Contains(string(r.Body), `action="/verify/resend?back=`)
					}},
				}
				for _, p := range paths {
					if ok, nv := p.try("new@example.com", testPassword); ok == require || nv != require {
						t.Errorf("%s, unverified account, right password: signed in %v, told not verified %v", p.name, ok, nv)
					}
					if ok, nv := p.try("new@example.com", "a wrong password"); ok || nv {
						t.Errorf("%s, unverified account, wrong password: signed in %v, told not verified %v", p.name, ok, nv)
					}
					if ok, nv := p.try("ok@example.com", testPassword); !ok || nv {
						t.Errorf("%s, verified account: signed in %v, told not verified %v", p.name, ok, nv)
					}
				}
			})
		})
	}
}

// TestLoginPageResend: after the right password of an unverified account
// the login page offers to mail the link again; the button mails it.
func TestLoginPageResend(t *testing.T) {
	s, ms := startMail(t, "", nil)
	wantAccepted(t, signup(t, s, "button@example.com", testPassword), "{}")
	delivered(t, s, ms, 0, 1)
	br := newBrowser(t, s)
	page := wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), 200)
	r := br.signIn(t, page, "button@example.com", testPassword)
	if r.Status != 400 || !strings.Contains(string(r.Body), `id="resend"`) {
		t.Fatalf("login page after the right password: %d %s", r.Status, r.Body)
	}
	action := resendFormAction.FindStringSubmatch(string(r.Body))
	if action == nil {
		t.Fatalf("no resend form: %s", r.Body)
	}
	fields := resendFields(t, r.Body)
	if fields.Get("email") != "button@example.com" {
		t.Fatalf("resend form fields %v", fields)
	}
	sent := br.post(t, html.UnescapeString(action[1]), fields)
	if sent.Status != 200 || !strings.Contains(string(sent.Body), "we sent it a new link") ||
		!strings.Contains(string(sent.Body), `href="/oauth/authorize?`) {
		t.Fatalf("after the button: %d %s", sent.Status, sent.Body)
	}
	link := verifyLink(t, s, delivered(t, s, ms, 1, 1)[0], "button@example.com", "Confirm your email address")
	if r := postVerify(t, s, mailtest.Token(t, link)); r.Status != 204 {
		t.Fatalf("the re-sent link: %d %s", r.Status, r.Body)
	}
	// A form without its CSRF token does nothing.
	fields.Del("csrf")
	if r := br.post(t, "/verify/resend", fields); r.Status != 400 {
		t.Fatalf("resend without CSRF: %d", r.Status)
	}
	if runOutbox(t, s) != 0 {
		t.Fatal("a form without CSRF token mailed")
	}
}

// TestSignupPage: the sign-up page answers the same "check your email"
// page for a new and a taken address, signs nobody in, and links back to
// the authorization request's login page; the owner's mail links there too.
func TestSignupPage(t *testing.T) {
	s, ms := startMail(t, "", nil)
	createUser(t, s, "owner@example.com")
	var bodies []string
	p := newPKCE()
	for _, email := range []string{"newcomer@example.com", "owner@example.com"} {
		br := newBrowser(t, s)
		login := br.get(t, "/oauth/authorize?"+authParams(p).Encode())
		wantLoginPage(t, login, 200)
		signupURL := signupLink.FindStringSubmatch(string(login.Body))
		if signupURL == nil {
			t.Fatal("the login page has no sign-up link")
		}
		f := formFields(t, br.get(t, html.UnescapeString(signupURL[1])).Body)
		r := br.post(t, "/signup", url.Values{"csrf": {f.Get("csrf")}, "request": {f.Get("request")}, "email": {email},
			"password": {testPassword}})
		if r.Status != 200 || !strings.Contains(string(r.Body), "Check your email") || r.Cookie("__Host-tokend_signin") != nil {
			t.Fatalf("%s: %d %s", email, r.Status, r.Body)
		}
		if !strings.Contains(string(r.Body), `href="/oauth/authorize?`) {
			t.Fatalf("no link back to the login page: %s", r.Body)
		}
		bodies = append(bodies, strings.ReplaceAll(string(r.Body), email, "EMAIL"))
	}
	if bodies[0] != bodies[1] {
		t.Fatalf("the pages differ:\n%s\n---\n%s", bodies[0], bodies[1])
	}
	mails := delivered(t, s, ms, 0, 2)
	slices.SortFunc(mails, func(a, b mailtest.Mail) int { return strings.Compare(a.To, b.To) })
	verifyLink(t, s, mails[0], "newcomer@example.com", "Confirm your email address")
	if n := mailtest.Parse(t, mails[1].Data); !strings.Contains(n.Text, s.URL+"/oauth/authorize?") {
		t.Fatalf("the owner's mail has no sign-in link: %s", n.Text)
	}
}

// TestResetVerifiesEmail: a used reset link proves the address, so an
// account that never confirmed it can sign in after a reset.
func TestResetVerifiesEmail(t *testing.T) {
	s, ms := startMail(t, "", nil)
	wantAccepted(t, signup(t, s, "forgetful@example.com", testPassword), "{}")
	delivered(t, s, ms, 0, 1)
	forgot(t, s, "forgetful@example.com")
	m := delivered(t, s, ms, 1, 1)[0]
	if r := resetPassword(t, s, mailtest.Token(t, mailtest.Parse(t, m.Data).Link(t)), "a new password 1"); r.Status != 204 {
		t.Fatalf("reset: %d %s", r.Status, r.Body)
	}
	webLogin(t, s, "forgetful@example.com", "a new password 1")
}

// TestVerifyPage: the page the link opens has no outside assets and a
// strict CSP with the hash of its one script.
func TestVerifyPage(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	r := s.Get(t, "/verify")
	csp := r.Header.Get("Content-Security-Policy")
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/verify: %d %v", r.Status, r.Header)
	}
	for _, want := range []string{"default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %q", csp, bad)
		}
	}
	body := string(r.Body)
	for _, want := range []string{`role="status"`, `aria-live="polite"`, s.URL + "/auth/verify", `href="/verify/resend"`, "replaceState"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, `src="http`) || strings.Contains(body, `href="http`) {
		t.Error("the page loads an outside asset")
	}
}

// TestChangeEmail: a signed-in user asks for a new address; the new one
// gets a confirmation link, the old one a notice; nothing changes until the
// link is used; then the account has the new address (verified), the links
// mailed to the old one are dead, and every session but the one that asked
// has ended. A taken address is mailed nothing; one taken meanwhile
// refuses the link and changes nothing.
func TestChangeEmail(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, ms := startMail(t, b.Name, nil)
		u := createUser(t, s, "old@example.com")
		createUser(t, s, "someone@example.com")
		access, cookie := webLogin(t, s, "old@example.com", testPassword)
		other := nativeLogin(t, s, "old@example.com", "")
		forgot(t, s, "old@example.com") // a reset link to the old address, pending
		delivered(t, s, ms, 0, 1)
		change := func(email, bearer string) *tokendtest.Response {
			return s.PostJSON(t, "/auth/email", map[string]string{"email": email, "password": testPassword}, "Authorization", "Bearer "+bearer)
		}
		wantError(t, s.PostJSON(t, "/auth/email", map[string]string{"email": "x@example.com", "password": testPassword}), 401, "invalid_token")
		wantError(t, change("not an address", access), 400, "invalid_request")
		// The access token alone (a relying party holds one too) moves
		// nothing: the current password is required, and must be right.
		wantError(t, s.PostJSON(t, "/auth/email", map[string]string{"email": "rp@example.com"}, "Authorization", "Bearer "+access),
			400, "invalid_request")
		wantError(t, s.PostJSON(t, "/auth/email", map[string]string{"email": "rp@example.com", "password": "a guess 12345"},
			"Authorization", "Bearer "+access), 400, "invalid_grant")
		if runOutbox(t, s) != 0 {
			t.Fatal("a change without the password mailed someone")
		}

		// An address another account has: the same answer, no mail.
		wantAccepted(t, change("SOMEONE@example.com", access), "")
		if runOutbox(t, s) != 0 {
			t.Fatal("a change to a taken address mailed someone")
		}

		wantAccepted(t, change("A\u030a.new@example.com", access), "")
		mails := delivered(t, s, ms, 1, 2)
		slices.SortFunc(mails, func(a, b mailtest.Mail) int { return strings.Compare(b.To, a.To) })
		link := verifyLink(t, s, mails[0], "\u00c5.new@example.com", "Confirm your new email address")
		notice := mailtest.Parse(t, mails[1].Data)
		if mails[1].To != "old@example.com" || !strings.Contains(notice.Header.Get("Subject"), "being changed") ||
			strings.Contains(notice.Text, "#token=") || !strings.Contains(notice.Text, s.URL+"/forgot") {
			t.Fatalf("the notice to the old address: %s %q %s", mails[1].To, notice.Header.Get("Subject"), notice.Text)
		}
		if strings.Contains(notice.Text, "new@example.com") {
			t.Fatal("the notice tells the old address the new one")
		}
		webLogin(t, s, "old@example.com", testPassword) // nothing changed yet

		if r := postVerify(t, s, mailtest.Token(t, link)); r.Status != 204 {
			t.Fatalf("confirm: %d %s", r.Status, r.Body)
		}
		wantError(t, postVerify(t, s, mailtest.Token(t, link)), 400, "invalid_grant")
		got, err := s.Store.UserByEmail(context.Background(), "\u00e5.NEW@example.com")
		if err != nil || got.ID != u.ID || got.Email != "\u00c5.new@example.com" || !got.EmailVerifiedAt.Equal(s.Clock.Now()) {
			t.Fatalf("after the change: %+v %v", got, err)
		}
		wantError(t, loginResp(t, s, "old@example.com", testPassword), 400, "invalid_grant")
		webLogin(t, s, "\u00c5.new@example.com", testPassword)
		if r := webRefresh(t, s, cookie); r.Status != 200 {
			t.Fatalf("the session that asked for the change: %d %s", r.Status, r.Body)
		}
		wantError(t, nativeRefresh(t, s, other.RefreshToken), 400, "invalid_grant")
		var info struct {
			Email         string `json:"email"`
			EmailVerified bool   `json:"email_verified"`
		}
		bearerGet(t, s, "/userinfo", access).JSON(t, &info)
		if info.Email != "\u00c5.new@example.com" || !info.EmailVerified {
			t.Fatalf("userinfo %+v", info)
		}
		oldReset := mailtest.Token(t, mailtest.Parse(t, ms.Mails()[0].Data).Link(t))
		wantError(t, resetPassword(t, s, oldReset, "taken over 123"), 400, "invalid_grant")
		if got := auditTypes(t, s, u.ID); got["email.change_requested"] != 2 || got["email.changed"] != 1 {
			t.Fatalf("audit %v", got)
		}

		// Taken between the request and the link: refused, nothing changes.
		access2, _ := webLogin(t, s, "someone@example.com", testPassword)
		wantAccepted(t, change("contested@example.com", access2), "")
		contested := mailtest.Token(t, verifyLink(t, s, delivered(t, s, ms, 3, 2)[0], "contested@example.com", "Confirm your new email address"))
		createUser(t, s, "contested@example.com")
		wantError(t, postVerify(t, s, contested), 400, "invalid_grant")
		if got, _ := s.Store.UserByEmail(context.Background(), "someone@example.com"); got.Email != "someone@example.com" {
			t.Fatalf("a refused change wrote %q", got.Email)
		}
	})
}

// TestResetCancelsEmailChange: the owner who gets the notice resets the
// password; the pending change's link dies with it.
func TestResetCancelsEmailChange(t *testing.T) {
	s, ms := startMail(t, "", nil)
	createUser(t, s, "victim@example.com")
	access, _ := webLogin(t, s, "victim@example.com", testPassword)
	wantAccepted(t, s.PostJSON(t, "/auth/email", map[string]string{"email": "intruder@example.com", "password": testPassword},
		"Authorization", "Bearer "+access), "")
	mails := delivered(t, s, ms, 0, 2)
	slices.SortFunc(mails, func(a, b mailtest.Mail) int { return strings.Compare(a.To, b.To) })
	link := verifyLink(t, s, mails[0], "intruder@example.com", "Confirm your new email address")
	forgot(t, s, "victim@example.com")
	reset := mailtest.Parse(t, delivered(t, s, ms, 2, 1)[0].Data).Link(t)
	if r := resetPassword(t, s, mailtest.Token(t, reset), "owner's new password"); r.Status != 204 {
		t.Fatalf("reset: %d %s", r.Status, r.Body)
	}
	wantError(t, postVerify(t, s, mailtest.Token(t, link)), 400, "invalid_grant")
	if _, err := s.Store.UserByEmail(context.Background(), "victim@example.com"); err != nil {
		t.Fatal("the address changed after the reset")
	}
}
