package users

import (
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// FuzzValidateEmail: an accepted email is trimmed, in NFC, has one @ with
// text on both sides, and no space, control or format character (it goes
// into mail headers and terminals).
func FuzzValidateEmail(f *testing.F) {
	for _, s := range []string{"a@example.com", " A@B.c ", "Alice <a@b.c>", "a@b\r\nBcc: x@y", `"a b"@c.d`, "@", "", "a@[1.2.3.4]", "A\u030a@b.c", "a\u200b@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ValidateEmail(s)
		if err != nil {
			return
		}
		local, domain, ok := strings.Cut(e, "@")
		if !ok || local == "" || domain == "" || e != strings.TrimSpace(e) || !norm.NFC.IsNormalString(e) ||
			strings.IndexFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.In(r, unicode.Cc, unicode.Cf) }) >= 0 {
			t.Fatalf("ValidateEmail(%q) accepted %q", s, e)
		}
	})
}
