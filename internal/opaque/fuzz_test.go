package opaque

import (
	"bytes"
	"testing"
)

// FuzzParse: a presented token (refresh cookie, refresh_token parameter,
// reset token) parses only if it is exactly 256 bits in canonical
// base64url, and then re-encodes to itself.
func FuzzParse(f *testing.F) {
	f.Add(string(Encode(bytes.Repeat([]byte{0xab}, RawLen))))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB")
	f.Add("tokend_refresh=abc; Path=/auth")
	f.Fuzz(func(t *testing.T, s string) {
		raw, ok := Parse(s)
		if !ok {
			return
		}
		if len(raw) != RawLen || string(Encode(raw)) != s {
			t.Fatalf("Parse(%q) accepted a non-canonical token", s)
		}
		if Hash(raw) == s {
			t.Fatal("hash equals the token")
		}
	})
}
