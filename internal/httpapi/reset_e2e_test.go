package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// syncBuffer collects log lines from concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startWithSMTP(t *testing.T, backend string, smtpOpts mailtest.Options, logs *syncBuffer) (*tokendtest.Server, *mailtest.Server) {
	t.Helper()
	ms := mailtest.Start(t, smtpOpts)
	o := tokendtest.Options{Backend: backend, SMTPURL: ms.URL(), MailTLS: ms.ClientTLS()}
	if logs != nil {
		o.Log = logs
	}
	return tokendtest.Start(t, o), ms
}

func forgot(t *testing.T, s *tokendtest.Server, email string) {
	t.Helper()
	r := s.PostJSON(t, "/auth/password/forgot", map[string]string{"email": email})
	if r.Status != 202 || len(r.Body) != 0 {
		t.Fatalf("forgot: %d %s", r.Status, r.Body)
	}
}

func runOutbox(t *testing.T, s *tokendtest.Server) int {
	t.Helper()
	n, err := s.Outbox.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func resetPassword(t *testing.T, s *tokendtest.Server, token, password string) *tokendtest.Response {
	t.Helper()
	return s.PostJSON(t, "/auth/password/reset", map[string]string{"token": token, "password": password})
}

func pending(t *testing.T, s *tokendtest.Server) int {
	t.Helper()
	n, err := s.Store.PendingMail(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestResetFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		logs := &syncBuffer{}
		s, ms := startWithSMTP(t, b.Name, mailtest.Options{StartTLS: true, User: "mailer", Password: "smtp-pass"}, logs)
		u := createUser(t, s, "reset@example.com")
		_, cookie := webLogin(t, s, "reset@example.com", testPassword)
		nat := nativeLogin(t, s, "reset@example.com", "")

		forgot(t, s, "RESET@example.com")
		if pending(t, s) != 1 {
			t.Fatal("no mail queued")
		}
		if n := runOutbox(t, s); n != 1 {
			t.Fatalf("outbox sent %d", n)
		}
		m := ms.Wait(1, 5*time.Second)[0]
		if !m.TLS || !m.Authed || m.To != "reset@example.com" {
			t.Fatalf("the mail went out without TLS or AUTH: %+v", m)
		}
		p := mailtest.Parse(t, m.Data)
		if p.Header.Get("From") != "<tokend@localhost>" && p.Header.Get("From") != "tokend@localhost" {
			t.Fatalf("From %q", p.Header.Get("From"))
		}
		link := p.Link(t)
		if !strings.HasPrefix(link, s.URL+"/reset#token=") || !strings.Contains(p.HTML, link) {
			t.Fatalf("link %q does not carry the token in the fragment of the reset page", link)
		}
		token := mailtest.Token(t, link)
		if pending(t, s) != 0 {
			t.Fatal("the sent job (with its sealed link) was not deleted")
		}

		const newPassword = "brand new secret pw"
		if r := resetPassword(t, s, token, newPassword); r.Status != 204 {
			t.Fatalf("reset: %d %s", r.Status, r.Body)
		}
		wantError(t, s.PostJSON(t, "/auth/login", map[string]string{"email": "reset@example.com", "password": testPassword, "client_id": "web"}), 400, "invalid_grant")
		webLogin(t, s, "reset@example.com", newPassword)
		wantError(t, webRefresh(t, s, cookie), 400, "invalid_grant")
		wantError(t, nativeRefresh(t, s, nat.RefreshToken), 400, "invalid_grant")
		wantError(t, resetPassword(t, s, token, "another password"), 400, "invalid_grant")
		webLogin(t, s, "reset@example.com", newPassword) // the second use changed nothing

		runOutbox(t, s)
		if len(ms.Mails()) != 1 {
			t.Fatalf("%d mails arrived, want exactly 1", len(ms.Mails()))
		}
		evs, _ := s.Store.ListAudit(context.Background(), store.AuditFilter{UserID: u.ID})
		types := map[string]int{}
		for _, e := range evs {
			types[e.Type]++
		}
		if types["password_reset.requested"] != 1 || types["password_reset.completed"] != 1 {
			t.Fatalf("audit %v", types)
		}
		// No secret in the logs or the audit log.
		all := logs.String()
		for _, e := range evs {
			all += fmt.Sprint(e.Details)
		}
		for name, secret := range map[string]string{"reset token": token, "link": link, "new password": newPassword,
			"old password": testPassword, "refresh token": nat.RefreshToken, "cookie": cookie, "smtp password": "smtp-pass"} {
			if strings.Contains(all, secret) {
				t.Errorf("the %s appears in the logs or audit details", name)
			}
		}
	})
}

func TestResetExpiryAndVoiding(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, ms := startWithSMTP(t, b.Name, mailtest.Options{}, nil)
		createUser(t, s, "v@example.com")
		forgot(t, s, "v@example.com")
		runOutbox(t, s)
		first := mailtest.Token(t, mailtest.Parse(t, ms.Wait(1, 5*time.Second)[0].Data).Link(t))
		forgot(t, s, "v@example.com") // voids the first
		runOutbox(t, s)
		second := mailtest.Token(t, mailtest.Parse(t, ms.Wait(2, 5*time.Second)[1].Data).Link(t))
		wantError(t, resetPassword(t, s, first, "new password 1"), 400, "invalid_grant")
		s.Clock.Advance(time.Hour)
		wantError(t, resetPassword(t, s, second, "new password 2"), 400, "invalid_grant")
		webLogin(t, s, "v@example.com", testPassword) // unchanged
		// A third request while an unsent mail for the user is queued drops
		// the older mail: only live links are sent.
		forgot(t, s, "v@example.com")
		forgot(t, s, "v@example.com")
		if pending(t, s) != 1 {
			t.Fatalf("%d mails queued, want 1", pending(t, s))
		}
		wantError(t, resetPassword(t, s, "not-a-token", "new password 3"), 400, "invalid_grant")
		wantError(t, resetPassword(t, s, second, "short"), 400, "invalid_request")
	})
}

// TestResetUnknownEmail: the same 202, no mail, and the same limits.
func TestResetUnknownEmail(t *testing.T) {
	s, ms := startWithSMTP(t, "", mailtest.Options{}, nil)
	createUser(t, s, "known@example.com")
	for _, email := range []string{"ghost@example.com", "known@example.com"} {
		for range 3 {
			forgot(t, s, email)
		}
		r := s.PostJSON(t, "/auth/password/forgot", map[string]string{"email": email})
		wantError(t, r, 429, "rate_limited")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	runOutbox(t, s)
	for _, m := range ms.Mails() {
		if m.To == "ghost@example.com" {
			t.Fatal("a mail was sent to an unknown email")
		}
	}
	wantError(t, s.PostJSON(t, "/auth/password/forgot", map[string]string{"email": "not an email"}), 400, "invalid_request")
}

// TestResetTiming: known and unknown emails answer after about the same
// time (the minimum duration hides the extra transaction).
func TestResetTiming(t *testing.T) {
	ms := mailtest.Start(t, mailtest.Options{})
	s := tokendtest.Start(t, tokendtest.Options{SMTPURL: ms.URL(), ResetMinDuration: 80 * time.Millisecond})
	for i := range 4 {
		createUser(t, s, fmt.Sprintf("k%d@example.com", i))
	}
	measure := func(email string) time.Duration {
		start := time.Now()
		forgot(t, s, email)
		return time.Since(start)
	}
	var known, unknown []time.Duration
	for i := range 4 {
		// Distinct emails stay under the per-email limit; the clock moves
		// the per-address window along.
		s.Clock.Advance(time.Hour)
		known = append(known, measure(fmt.Sprintf("k%d@example.com", i)))
		unknown = append(unknown, measure(fmt.Sprintf("u%d@example.com", i)))
	}
	for i := range known {
		if known[i] < 80*time.Millisecond || unknown[i] < 80*time.Millisecond {
			t.Fatalf("a request answered before the minimum: known %v unknown %v", known[i], unknown[i])
		}
	}
	mk, mu := median(known), median(unknown)
	if diff := (mk - mu).Abs(); diff > max(mk, mu)/5 {
		t.Fatalf("median answer time: known %v, unknown %v: they differ by more than 20%%", mk, mu)
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestSMTPOutage: the mail server is down when the mail is queued, comes
// back, and the mail is delivered once.
func TestSMTPOutage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, ms := startWithSMTP(t, b.Name, mailtest.Options{}, nil)
		createUser(t, s, "down@example.com")
		ms.Stop()
		forgot(t, s, "down@example.com")
		if n := runOutbox(t, s); n != 0 {
			t.Fatal("sent while the server was down")
		}
		if pending(t, s) != 1 {
			t.Fatal("the mail was lost during the outage")
		}
		ms.Restart()
		if n := runOutbox(t, s); n != 0 {
			t.Fatal("retried before the backoff")
		}
		s.Clock.Advance(10 * time.Second)
		if n := runOutbox(t, s); n != 1 {
			t.Fatalf("after the outage sent %d, want 1", n)
		}
		runOutbox(t, s)
		s.Clock.Advance(time.Hour)
		runOutbox(t, s)
		if got := len(ms.Wait(1, 5*time.Second)); got != 1 || len(ms.Mails()) != 1 {
			t.Fatalf("%d mails delivered, want exactly 1", len(ms.Mails()))
		}
		token := mailtest.Token(t, mailtest.Parse(t, ms.Mails()[0].Data).Link(t))
		s.Clock.Set(tokendtest.T0.Add(time.Minute)) // the link is still valid
		if r := resetPassword(t, s, token, "after the outage"); r.Status != 204 {
			t.Fatalf("reset with the delayed mail's link: %d %s", r.Status, r.Body)
		}
	})
}

// TestTwoSendersOnePostgres: two instances' outboxes drain 100 queued mails
// together; each is delivered exactly once.
func TestTwoSendersOnePostgres(t *testing.T) {
	u := dbtest.PostgresURL(t)
	ms := mailtest.Start(t, mailtest.Options{})
	c := clock.NewFake(tokendtest.T0)
	mk := masterkey.Generate()
	same := func(cfg *config.Config) {
		cfg.Issuer, cfg.Audience = "https://auth.example.test", "https://auth.example.test"
	}
	a := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: mk, SMTPURL: ms.URL(), Configure: same})
	b := tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: mk, SMTPURL: ms.URL(), Configure: same})
	ctx := context.Background()
	const n = 100
	for i := range n {
		email := fmt.Sprintf("u%03d@example.com", i)
		createUser(t, a, email)
		if err := a.Reset.Forgot(ctx, email, audit.Meta{Address: fmt.Sprintf("198.51.100.%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, s := range []*tokendtest.Server{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Outbox.RunOnce(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := ms.Wait(n, 30*time.Second)
	seen := map[string]int{}
	for _, m := range got {
		seen[m.To]++
	}
	for to, k := range seen {
		if k != 1 {
			t.Fatalf("%s got %d mails", to, k)
		}
	}
	if len(got) != n || len(seen) != n || pending(t, a) != 0 {
		t.Fatalf("%d mails to %d recipients, %d pending; want %d once each", len(got), len(seen), pending(t, a), n)
	}
}

func TestResetPage(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	r := s.Get(t, "/reset")
	csp := r.Header.Get("Content-Security-Policy")
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/reset: %d %v", r.Status, r.Header)
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
	for _, want := range []string{`<label for="password">`, `autocomplete="new-password"`, `role="status"`, `aria-live="polite"`, `lang="en"`, s.URL + "/auth/password/reset"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "src=\"http") || strings.Contains(body, "href=\"http") {
		t.Error("the page loads an outside asset")
	}
	_ = http.MethodGet
}
