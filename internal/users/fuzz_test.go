package users

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzValidateEmail: an accepted email is trimmed, has one @ with text on
// both sides, and no space or control character (it goes into mail
// headers).
func FuzzValidateEmail(f *testing.F) {
	for _, s := range []string{"a@example.com", " A@B.c ", "Alice <a@b.c>", "a@b\r\nBcc: x@y", `"a b"@c.d`, "@", "", "a@[1.2.3.4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ValidateEmail(s)
		if err != nil {
			return
		}
		local, domain, ok := strings.Cut(e, "@")
		if !ok || local == "" || domain == "" || e != strings.TrimSpace(e) ||
			strings.IndexFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			t.Fatalf("ValidateEmail(%q) accepted %q", s, e)
		}
	})
}
