package tokens_test

import (
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/tokens"
)

// FuzzVerify: tokend's own verifier (used by /userinfo and /auth/sessions)
// never panics, and accepts only tokens it signed itself.
func FuzzVerify(f *testing.F) {
	_, _, iss, v := setup(f)
	good, err := iss.Issue(tokens.Grant{Subject: "u", ClientID: "web", SessionID: "s"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.Raw)
	parts := strings.Split(good.Raw, ".")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(raw, "")
		if err != nil {
			return
		}
		if raw != good.Raw || c.Subject != "u" {
			t.Fatalf("the verifier accepted a token it did not issue: %q", raw)
		}
	})
}
