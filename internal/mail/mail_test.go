package mail_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/masterkey"
)

func message(to string) mail.Message {
	return mail.Message{From: "tokend@localhost", To: to, Subject: "Reset your password",
		Text: "open https://auth.example/reset#token=abc\n", HTML: "<p>open</p>"}
}

func TestSMTPVariants(t *testing.T) {
	tests := []struct {
		name       string
		opts       mailtest.Options
		tls, authd bool
	}{
		{"plain", mailtest.Options{}, false, false},
		{"plain with auth on loopback", mailtest.Options{User: "u", Password: "pw-secret"}, false, true},
		{"starttls", mailtest.Options{StartTLS: true}, true, false},
		{"starttls with auth", mailtest.Options{StartTLS: true, User: "u", Password: "pw-secret"}, true, true},
		{"implicit tls", mailtest.Options{Implicit: true}, true, false},
		{"implicit tls with auth", mailtest.Options{Implicit: true, User: "u", Password: "pw-secret"}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.Start(t, tc.opts)
			s, err := mail.NewSMTP(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(s.String(), "pw-secret") {
				t.Fatalf("String() shows the password: %s", s)
			}
			s.TLS = srv.ClientTLS()
			if err := s.Send(context.Background(), message("ada@example.com")); err != nil {
				t.Fatal(err)
			}
			m := srv.Wait(1, 5*time.Second)[0]
			if m.TLS != tc.tls || m.Authed != tc.authd || m.To != "ada@example.com" || m.From != "tokend@localhost" {
				t.Fatalf("received %+v", m)
			}
			p := mailtest.Parse(t, m.Data)
			if p.Header.Get("Subject") != "Reset your password" || !strings.Contains(p.Text, "#token=abc") || p.HTML == "" {
				t.Fatalf("parsed %+v", p)
			}
		})
	}
}

func TestSMTPFailures(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{StartTLS: true, User: "u", Password: "right"})
	bad := strings.Replace(srv.URL(), ":right@", ":wrong-secret@", 1)
	s, _ := mail.NewSMTP(bad)
	s.TLS = srv.ClientTLS()
	err := s.Send(context.Background(), message("a@example.com"))
	if err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("wrong password: %v", err)
	}
	// An untrusted certificate is refused (no silent downgrade).
	s2, _ := mail.NewSMTP(srv.URL())
	if err := s2.Send(context.Background(), message("a@example.com")); err == nil {
		t.Fatal("sent to a server whose certificate is not trusted")
	}
	// A server that is down.
	srv.Stop()
	s3, _ := mail.NewSMTP(srv.URL())
	if err := s3.Send(context.Background(), message("a@example.com")); err == nil {
		t.Fatal("sent to a stopped server")
	}
	// A server that accepts the connection and never answers: the context
	// bounds the wait.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	s4, _ := mail.NewSMTP("smtp://" + ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s4.Send(ctx, message("a@example.com")); err == nil {
		t.Fatal("a silent server accepted mail")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("a silent server held the sender for %s", time.Since(start))
	}
	if len(srv.Mails()) != 0 {
		t.Fatal("mail delivered despite the failures")
	}
}

func TestRenderAndSeal(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := mail.Payload{Kind: mail.KindPasswordReset, To: "ada@example.com", Link: "https://a.example/reset#token=T0K3N", ExpiresAt: now.Add(time.Hour)}
	s := masterkey.Generate().Sealer(masterkey.PurposeMail)
	sealed, err := mail.Seal(s, "job-1", p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "T0K3N") || strings.Contains(string(sealed), "ada@example.com") {
		t.Fatal("the sealed payload shows the link or the address")
	}
	if _, err := mail.Open(s, "job-2", sealed); err == nil {
		t.Fatal("a payload opened under another job's id")
	}
	got, err := mail.Open(s, "job-1", sealed)
	if err != nil || got != p {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	m, err := mail.Render(got, "tokend@localhost", now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, p.Link) || !strings.Contains(m.HTML, `href="https://a.example/reset#token=T0K3N"`) || !strings.Contains(m.Text, "1 hour") {
		t.Fatalf("rendered %+v", m)
	}
	evil := p
	evil.To = "x@example.com\r\nBcc: victim@example.com"
	if m, err := mail.Render(evil, "tokend@localhost", now); err == nil {
		if _, err := m.Bytes(now); err == nil {
			t.Fatal("a header injection in the recipient was encoded")
		}
	}
}

// TestRenderEveryKind: every kind of mail renders in text and HTML with its
// link, and the notices show the sign-in link only when there is one.
func TestRenderEveryKind(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{mail.KindPasswordReset, mail.KindVerifyEmail, mail.KindChangeEmail,
		mail.KindSignupExisting, mail.KindEmailChangeNotice} {
		for _, login := range []string{"", "https://a.example/oauth/authorize?client_id=app&state=s"} {
			p := mail.Payload{Kind: kind, To: "ada@example.com", Link: "https://a.example/page#token=L1NK", ExpiresAt: now.Add(24 * time.Hour), LoginURL: login}
			m, err := mail.Render(p, "tokend@localhost", now)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if m.Subject == "" || !strings.Contains(m.Text, p.Link) || !strings.Contains(m.HTML, `href="`+p.Link+`"`) ||
				!strings.Contains(m.Text, "ada@example.com") {
				t.Fatalf("%s rendered %+v", kind, m)
			}
			if kind == mail.KindSignupExisting && login != "" &&
				(!strings.Contains(m.Text, login) || !strings.Contains(m.HTML, "client_id=app&amp;state=s")) {
				t.Fatalf("%s without its sign-in link: %+v", kind, m)
			}
			if _, err := m.Bytes(now); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
		}
	}
	if _, err := mail.Render(mail.Payload{Kind: "nope"}, "tokend@localhost", now); err == nil {
		t.Fatal("an unknown kind rendered")
	}
}
