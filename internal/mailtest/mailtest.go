// Package mailtest runs an in-process SMTP server (emersion/go-smtp) that
// records what it receives, for tests that need a real SMTP exchange. It can
// offer STARTTLS or implicit TLS with a generated certificate, require AUTH
// PLAIN, and be stopped and restarted on the same port to test outages.
package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a server.
type Options struct {
	StartTLS bool   // offer STARTTLS
	Implicit bool   // TLS from the first byte (smtps://)
	User     string // require AUTH PLAIN with User/Password when set
	Password string
}

// Mail is a received message.
type Mail struct {
	From, To string
	Data     []byte
	TLS      bool
	Authed   bool
}

// Server is a running SMTP server.
type Server struct {
	t      testing.TB
	opts   Options
	addr   string
	tlsCfg *tls.Config
	roots  *x509.CertPool
	mu     sync.Mutex
	srv    *smtp.Server
	mails  []Mail
	notify chan struct{}
}

// Start runs a server on a free loopback port.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{t: t, opts: o, notify: make(chan struct{}, 1000)}
	if o.StartTLS || o.Implicit {
		s.tlsCfg, s.roots = selfSigned(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &session{s: s, tls: isTLS}, nil
	}))
	srv.Domain = "mailtest.local"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 10
	// Internationalized addresses (RFC 6531), as the relays of today take
	// them: tokend stores emails in NFC, and Åsa@example.com is one.
	srv.EnableSMTPUTF8 = true
	srv.AllowInsecureAuth = !(s.opts.StartTLS || s.opts.Implicit)
	srv.TLSConfig = s.tlsCfg
	if s.opts.Implicit {
		ln = tls.NewListener(ln, s.tlsCfg)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// URL is the server's TOKEND_SMTP_URL.
func (s *Server) URL() string {
	scheme := "smtp"
	if s.opts.Implicit {
		scheme = "smtps"
	}
	cred := ""
	if s.opts.User != "" {
		cred = s.opts.User + ":" + s.opts.Password + "@"
	}
	return scheme + "://" + cred + s.addr
}

// ClientTLS trusts the server's certificate.
func (s *Server) ClientTLS() *tls.Config {
	if s.roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Stop closes the server (connections are refused until Restart).
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Restart listens again on the same address.
func (s *Server) Restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after Close
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("mailtest: restart on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// Mails returns what was received so far.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Wait blocks until n mails have arrived in total, or fails the test after
// timeout.
func (s *Server) Wait(n int, timeout time.Duration) []Mail {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		if m := s.Mails(); len(m) >= n {
			return m
		}
		select {
		case <-s.notify:
		case <-deadline:
			s.t.Fatalf("mailtest: %d mails after %s, want %d", len(s.Mails()), timeout, n)
		}
	}
}

type session struct {
	s      *Server
	tls    bool
	authed bool
	from   string
	to     string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != ss.s.opts.User || pass != ss.s.opts.Password {
			return errors.New("invalid credentials")
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.User != "" && !ss.authed {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error { ss.to = to; return nil }

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, Mail{From: ss.from, To: ss.to, Data: b, TLS: ss.tls, Authed: ss.authed})
	ss.s.mu.Unlock()
	ss.s.notify <- struct{}{}
	return nil
}

func (ss *session) Reset()        {}
func (ss *session) Logout() error { return nil }

func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailtest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, pool
}

// Parsed is a decoded message.
type Parsed struct {
	Header mail.Header
	Text   string
	HTML   string
}

// Parse decodes a received multipart/alternative message.
func Parse(t testing.TB, data []byte) Parsed {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("mailtest: not a mail message: %v", err)
	}
	p := Parsed{Header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("mailtest: content type %q", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = part
		if part.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			r = quotedprintable.NewReader(part)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			p.Text = string(b)
		case "text/html":
			p.HTML = string(b)
		}
	}
	return p
}

var linkRe = regexp.MustCompile(`https?://[^\s"<]+#token=[A-Za-z0-9_-]+`)

// Link returns the reset link of a mail's text part.
func (p Parsed) Link(t testing.TB) string {
	t.Helper()
	links := linkRe.FindAllString(p.Text, -1)
	if len(links) == 0 {
		t.Fatalf("mailtest: no link in %q", p.Text)
	}
	return links[0]
}

// Token returns the token in a link's fragment.
func Token(t testing.TB, link string) string {
	t.Helper()
	_, tok, ok := strings.Cut(link, "#token=")
	if !ok {
		t.Fatalf("mailtest: no token fragment in %s", link)
	}
	return tok
}
