package httpapi_test

import (
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestHSTS: with an https issuer every response, errors and 404s included,
// carries Strict-Transport-Security: max-age=31536000; with an http issuer
// none does.
func TestHSTS(t *testing.T) {
	for _, tc := range []struct {
		name, issuer, want string
	}{
		{"https issuer", "https://auth.example.com", "max-age=31536000"},
		{"https issuer with a path", "https://example.com/auth", "max-age=31536000"},
		{"http issuer", "", ""}, // tokendtest's own http://127.0.0.1:port
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tokendtest.Start(t, tokendtest.Options{Configure: func(c *config.Config) {
				if tc.issuer != "" {
					c.Issuer, c.Audience, c.ResetURL = tc.issuer, tc.issuer, tc.issuer+"/reset"
				}
			}})
			for _, rq := range []struct{ method, path, ctype, body string }{
				{"GET", "/healthz", "", ""},
				{"GET", "/.well-known/openid-configuration", "", ""},
				{"GET", "/.well-known/jwks.json", "", ""},
				{"GET", "/reset", "", ""},
				{"GET", "/nope", "", ""},
				{"DELETE", "/healthz", "", ""},
				{"POST", "/auth/login", "application/json", `{"email":"x@example.com","password":"wrong password","client_id":"web"}`},
				{"POST", "/oauth/token", "application/x-www-form-urlencoded", "grant_type=nope"},
				{"OPTIONS", "/auth/login", "", ""},
			} {
				req := s.NewRequest(t, rq.method, rq.path, strings.NewReader(rq.body))
				if rq.ctype != "" {
					req.Header.Set("Content-Type", rq.ctype)
				}
				r := s.Do(t, req)
				if got := r.Header.Get("Strict-Transport-Security"); got != tc.want {
					t.Errorf("%s %s → %d: Strict-Transport-Security %q, want %q", rq.method, rq.path, r.Status, got, tc.want)
				}
				if r.Status >= 500 {
					t.Errorf("%s %s → %d %s", rq.method, rq.path, r.Status, r.Body)
				}
			}
		})
	}
}
