package mail

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzMessage: whatever the recipient, an encoded message has exactly the
// headers tokend writes: no header injection.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{"a@example.com", "a@example.com\r\nBcc: victim@example.com", "\"x\r\nBcc: y@z\"@example.com", "=?utf-8?q?x?=@example.com", ""} {
		f.Add(s, "https://a.example/reset#token=abc")
	}
	f.Fuzz(func(t *testing.T, to, link string) {
		m := Message{From: "tokend@localhost", To: to, Subject: "Reset your password", Text: link, HTML: "<p>x</p>", Link: link}
		b, err := m.Bytes(time.Unix(0, 0))
		if err != nil {
			return
		}
		header, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
		for _, line := range strings.Split(string(header), "\r\n") {
			name, _, ok := strings.Cut(line, ":")
			if !ok && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
				t.Fatalf("header line without a name: %q", line)
			}
			switch strings.ToLower(name) {
			case "from", "to", "subject", "date", "message-id", "mime-version", "auto-submitted", "content-type":
			default:
				if ok && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
					t.Fatalf("injected header %q from recipient %q", line, to)
				}
			}
		}
	})
}
