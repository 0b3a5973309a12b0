package mail

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/tokend/tokend/internal/masterkey"
)

// Kinds of mail. The kinds of the mails that carry a single-use link are
// the purposes of their tokens (store.OneTimePurpose).
const (
	// KindPasswordReset carries a password-reset link.
	KindPasswordReset = "password_reset"
	// KindVerifyEmail carries the confirmation link of a sign-up.
	KindVerifyEmail = "verify_email"
	// KindChangeEmail carries the confirmation link of a new address,
	// mailed to that address.
	KindChangeEmail = "change_email"
	// KindSignupExisting tells the owner of an address that someone tried
	// to create an account with it (Link: the forgotten-password page;
	// LoginURL: where to sign in, when known).
	KindSignupExisting = "signup_existing"
	// KindEmailChangeNotice tells the old address of an account that a
	// change of address was asked for (Link: the forgotten-password page).
	KindEmailChangeNotice = "email_change_notice"
)

// Payload is what a queued job carries, sealed under the master key. It
// holds the link (a secret when it carries a token) and never a password.
type Payload struct {
	Kind      string    `json:"kind"`
	To        string    `json:"to"`
	Link      string    `json:"link"`
	ExpiresAt time.Time `json:"expires_at"`
	// LoginURL is where the reader signs in, for the notices that say so.
	LoginURL string `json:"login_url,omitempty"`
}

// LogValue keeps the link out of logs.
func (p Payload) LogValue() slog.Value { return slog.GroupValue(slog.String("kind", p.Kind)) }

func payloadAD(jobID string) []byte { return []byte("tokend mail job " + jobID) }

// Seal encrypts p for the job jobID (bound as additional data).
func Seal(s *masterkey.Sealer, jobID string, p Payload) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode mail payload: %w", err)
	}
	return s.Seal(b, payloadAD(jobID)), nil
}

// Open decrypts a job's payload.
func Open(s *masterkey.Sealer, jobID string, sealed []byte) (Payload, error) {
	b, err := s.Open(sealed, payloadAD(jobID))
	if err != nil {
		return Payload{}, fmt.Errorf("open mail job %s: %w", jobID, err)
	}
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Payload{}, fmt.Errorf("mail job %s payload: %w", jobID, err)
	}
	return p, nil
}

// Message is a rendered mail.
type Message struct {
	From    string
	To      string
	Subject string
	Text    string
	HTML    string
	// Link is the action link of the mail, for the dev mailer only.
	Link string
}

// LogValue keeps the bodies (which carry links) out of logs.
func (m Message) LogValue() slog.Value { return slog.GroupValue(slog.String("subject", m.Subject)) }

//go:embed templates/*.tmpl
var templateFS embed.FS

var (
	textTemplates = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/*.txt.tmpl"))
	htmlTemplates = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/*.html.tmpl"))
	subjects      = map[string]string{
		KindPasswordReset:     "Reset your password",
		KindVerifyEmail:       "Confirm your email address",
		KindChangeEmail:       "Confirm your new email address",
		KindSignupExisting:    "You already have an account",
		KindEmailChangeNotice: "The email address of your account is being changed",
	}
)

// Render turns a payload into a message from `from`, at now.
func Render(p Payload, from string, now time.Time) (Message, error) {
	subject, ok := subjects[p.Kind]
	if !ok {
		return Message{}, fmt.Errorf("unknown mail kind %q", p.Kind)
	}
	data := struct {
		To, Link, ExpiresIn, LoginURL string
	}{p.To, p.Link, humanDuration(p.ExpiresAt.Sub(now)), p.LoginURL}
	var text, html bytes.Buffer
	if err := textTemplates.ExecuteTemplate(&text, p.Kind+".txt.tmpl", data); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", p.Kind, err)
	}
	if err := htmlTemplates.ExecuteTemplate(&html, p.Kind+".html.tmpl", data); err != nil {
		return Message{}, fmt.Errorf("render %s html: %w", p.Kind, err)
	}
	return Message{From: from, To: p.To, Subject: subject, Text: text.String(), HTML: html.String(), Link: p.Link}, nil
}

// humanDuration says "1 hour", "45 minutes".
func humanDuration(d time.Duration) string {
	switch m := int(d.Round(time.Minute) / time.Minute); {
	case m <= 1:
		return "1 minute"
	case m%60 == 0 && m/60 == 1:
		return "1 hour"
	case m%60 == 0:
		return fmt.Sprintf("%d hours", m/60)
	default:
		return fmt.Sprintf("%d minutes", m)
	}
}

// Bytes encodes m as an RFC 5322 message with text and HTML alternatives.
func (m Message) Bytes(now time.Time) ([]byte, error) {
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("to address: %w", err)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, errors.New("subject has a line break")
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := "tokend.local"
	if i := strings.LastIndexByte(from.Address, '@'); i >= 0 {
		domain = from.Address[i+1:]
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fmt.Fprintf(&buf, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n"+
		"Auto-Submitted: auto-generated\r\nContent-Type: multipart/alternative; boundary=%q\r\n\r\n",
		from.String(), to.String(), mime(m.Subject), now.UTC().Format(time.RFC1123Z), hex.EncodeToString(id[:]), domain, mw.Boundary())
	for _, part := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(strings.ReplaceAll(part.body, "\n", "\r\n"))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// mime encodes a header value that is not plain ASCII (RFC 2047).
func mime(s string) string {
	for _, r := range s {
		if r >= 0x80 {
			return "=?utf-8?q?" + strings.ReplaceAll(qEncode(s), " ", "_") + "?="
		}
	}
	return s
}

func qEncode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 0x80 || c == '=' || c == '?' || c == '_' {
			fmt.Fprintf(&b, "=%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
