package httpapi_test

import (
	"context"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestSignupEmailUnicode: an email with an invisible control or format
// character is refused with 400 invalid_request and creates nothing, and an
// email that differs from an account's only in how its characters are
// composed is that account, on both stores.
func TestSignupEmailUnicode(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name,
			Configure: func(c *configT) { c.RequireVerifiedEmail = false }}) // a sign-up signs in below
		before := snap(t, s)
		for _, tc := range []struct{ name, email string }{
			{"zero-width space", "ad\u200bmin@example.com"},
			{"right-to-left override", "admin\u202e@example.com"},
			{"zero-width space escaped in JSON", `ad\u200bmin@example.com`},
			{"right-to-left override escaped in JSON", `admin@example.com\u202e`},
			{"byte order mark", "\ufeffadmin@example.com"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := s.PostJSON(t, "/auth/signup", `{"email":"`+tc.email+`","password":"`+testPassword+`"}`)
				wantError(t, r, 400, "invalid_request")
			})
		}
		if after := snap(t, s); after.users != before.users {
			t.Fatalf("refused signups created users: before %+v after %+v", before, after)
		}

		composed := "\u00c5sa@example.com"    // Å as one code point
		decomposed := "A\u030asa@example.com" // A and a combining ring
		r := s.PostJSON(t, "/auth/signup", map[string]string{"email": decomposed, "password": testPassword})
		if r.Status != 202 {
			t.Fatalf("signup: %d %s", r.Status, r.Body)
		}
		created, err := s.Store.UserByEmail(context.Background(), composed)
		if err != nil || created.Email != composed {
			t.Fatalf("stored email %+q (%v), want the NFC form %+q", created.Email, err, composed)
		}
		// The other form is the same address: the same answer, no second account.
		if r := s.PostJSON(t, "/auth/signup", map[string]string{"email": composed, "password": testPassword}); r.Status != 202 {
			t.Fatalf("signup of the other form: %d %s", r.Status, r.Body)
		}
		if after := snap(t, s); after.users != before.users+1 {
			t.Fatalf("users before %d, after %d: want one more", before.users, after.users)
		}
		webLogin(t, s, composed, testPassword)
		webLogin(t, s, decomposed, testPassword)
	})
}
