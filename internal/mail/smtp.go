package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tokend/tokend/internal/config"
)

// Timeouts of an SMTP delivery.
const (
	dialTimeout    = 10 * time.Second
	commandTimeout = 30 * time.Second
	submitTimeout  = 60 * time.Second
	// SendBound bounds one whole delivery; the outbox lock outlives it.
	SendBound = 2 * time.Minute
)

// SMTP sends mail to the server of TOKEND_SMTP_URL.
type SMTP struct {
	addr     string // host:port
	host     string
	implicit bool // smtps://
	user     string
	pass     string
	// TLS is the client TLS configuration (system roots when nil; tests
	// set their own root).
	TLS *tls.Config
	// LocalName is sent in EHLO.
	LocalName string
}

// NewSMTP parses an smtp:// or smtps:// URL. Errors never show the
// password.
func NewSMTP(raw string) (*SMTP, error) {
	if err := config.CheckSMTPURL(raw); err != nil {
		return nil, err
	}
	u, _ := url.Parse(raw)
	s := &SMTP{host: u.Hostname(), implicit: u.Scheme == "smtps", LocalName: "localhost"}
	port := u.Port()
	if port == "" {
		port = "587"
		if s.implicit {
			port = "465"
		}
	}
	s.addr = net.JoinHostPort(s.host, port)
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	return s, nil
}

// String describes the server without credentials.
func (s *SMTP) String() string {
	scheme := "smtp"
	if s.implicit {
		scheme = "smtps"
	}
	return scheme + "://" + s.addr
}

func (s *SMTP) tlsConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLS != nil {
		c = s.TLS.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = s.host
	}
	return c
}

// Send delivers m, bounded by ctx and by a timeout on every step.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	body, err := m.Bytes(time.Now())
	if err != nil {
		return err
	}
	from, err := envelopeAddr(m.From)
	if err != nil {
		return err
	}
	to, err := envelopeAddr(m.To)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, SendBound)
	defer cancel()
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if s.user != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS && !config.IsLoopback(s.host) {
			return fmt.Errorf("smtp %s offers no TLS; refusing to send credentials in clear", s.addr)
		}
		if !c.SupportsAuth(sasl.Plain) {
			return fmt.Errorf("smtp %s does not offer AUTH PLAIN", s.addr)
		}
		if err := c.Auth(sasl.NewPlainClient("", s.user, s.pass)); err != nil {
			return fmt.Errorf("smtp auth: %w", scrub(err, s.pass))
		}
	}
	if err := c.SendMail(from, []string{to}, bytes.NewReader(body)); err != nil {
		return fmt.Errorf("smtp send: %w", err)
	}
	if err := c.Quit(); err != nil {
		// The message was accepted; a failed QUIT does not unsend it.
		return nil
	}
	return nil
}

// connect dials the server: implicit TLS for smtps://, else STARTTLS when
// the server offers it (a server that does not is used in clear, which
// Send refuses for credentials). Every connection is closed when ctx ends,
// which bounds each step whatever the library's own deadlines.
func (s *SMTP) connect(ctx context.Context) (*smtp.Client, error) {
	dial := func() (net.Conn, error) {
		d := net.Dialer{Timeout: dialTimeout}
		var conn net.Conn
		var err error
		if s.implicit {
			td := tls.Dialer{NetDialer: &d, Config: s.tlsConfig()}
			conn, err = td.DialContext(ctx, "tcp", s.addr)
		} else {
			conn, err = d.DialContext(ctx, "tcp", s.addr)
		}
		if err != nil {
			return nil, fmt.Errorf("smtp connect %s: %w", s.addr, err)
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
	hello := func(conn net.Conn) (*smtp.Client, error) {
		c := smtp.NewClient(conn)
		c.CommandTimeout, c.SubmissionTimeout = commandTimeout, submitTimeout
		if err := c.Hello(s.LocalName); err != nil {
			c.Close()
			return nil, fmt.Errorf("smtp hello %s: %w", s.addr, err)
		}
		return c, nil
	}
	conn, err := dial()
	if err != nil {
		return nil, err
	}
	if s.implicit {
		return hello(conn)
	}
	c, err := smtp.NewClientStartTLS(conn, s.tlsConfig())
	if err == nil {
		c.CommandTimeout, c.SubmissionTimeout = commandTimeout, submitTimeout
		return c, nil
	}
	conn.Close()
	if !strings.Contains(err.Error(), "doesn't support STARTTLS") {
		return nil, fmt.Errorf("smtp starttls %s: %w", s.addr, err)
	}
	// No STARTTLS offered: reconnect in clear.
	if conn, err = dial(); err != nil {
		return nil, err
	}
	return hello(conn)
}

func envelopeAddr(s string) (string, error) {
	a, err := parseAddress(s)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(a, "\r\n<>") {
		return "", errors.New("invalid envelope address")
	}
	return a, nil
}

// scrub removes a secret from an error message.
func scrub(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "<redacted>"))
}
