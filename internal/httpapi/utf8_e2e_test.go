package httpapi_test

import (
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestJSONInvalidText: encoding/json turns bytes that are not UTF-8 and
// escaped lone surrogates into U+FFFD, so "pass\xffword" and "pass\xfeword"
// would be one password. Every JSON endpoint refuses them with 400
// invalid_request instead, and writes nothing, on both stores.
func TestJSONInvalidText(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name,
			Configure: func(c *configT) { c.RequireVerifiedEmail = false }}) // a sign-up signs in below
		u := createUser(t, s, "u@example.com")
		before := snap(t, s, u.ID)
		bad := []struct{ name, text string }{
			{"invalid utf-8", "correct horse\xff battery"},
			{"truncated sequence", "correct horse \xc3"},
			{"encoded surrogate", "correct horse \xed\xa0\x80"},
			{"lone high surrogate escape", `correct horse \ud800 battery`},
			{"lone low surrogate escape", `correct horse \udfff`},
		}
		for _, tc := range bad {
			for _, ep := range []struct{ path, body string }{
				{"/auth/signup", `{"email":"new@example.com","password":"` + tc.text + `"}`},
				{"/auth/login", `{"email":"u@example.com","password":"` + tc.text + `","client_id":"web"}`},
				{"/auth/login", `{"email":"u@example.com","password":"x","client_id":"web","note":"` + tc.text + `"}`},
				{"/auth/password/forgot", `{"email":"u@example.com` + tc.text + `"}`},
				{"/auth/password/reset", `{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","password":"` + tc.text + `"}`},
			} {
				t.Run(tc.name+" "+ep.path, func(t *testing.T) {
					wantError(t, s.PostJSON(t, ep.path, ep.body), 400, "invalid_request")
				})
			}
		}
		if after := snap(t, s, u.ID); after != before {
			t.Fatalf("refused requests wrote something: before %+v after %+v", before, after)
		}
		// A password spelled with an escaped surrogate pair is the same
		// password as the character itself.
		r := s.PostJSON(t, "/auth/signup", `{"email":"emoji@example.com","password":"correct horse \ud83d\udc0e"}`)
		if r.Status != 202 {
			t.Fatalf("signup with an escaped pair: %d %s", r.Status, r.Body)
		}
		webLogin(t, s, "emoji@example.com", "correct horse \U0001f40e")
	})
}
