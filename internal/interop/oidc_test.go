package interop

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestNodeOpenIDClient: openid-client, the Node relying-party library,
// signs in through tokend's authorization endpoint (discovery, PKCE, the
// login form, the code exchange with ID-token validation, userinfo, a
// refresh, single sign-on, RP-initiated logout), with each algorithm.
func TestNodeOpenIDClient(t *testing.T) {
	requireNode(t)
	for _, alg := range []string{"RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			// openid-client checks iat and exp against its own clock.
			s := tokendtest.Start(t, tokendtest.Options{Clock: clock.NewFake(time.Now()), Configure: func(c *configT) { c.SigningAlg = alg }})
			if _, err := s.Users.CreateVerified(context.Background(), "rp@example.com", "rp password 123", audit.Meta{}); err != nil {
				t.Fatal(err)
			}
			lines := runNode(t, nil, "oidc.mjs", s.URL, "mobile", "rp@example.com", "rp password 123",
				"http://127.0.0.1:47123/callback", "http://127.0.0.1/signed-out", alg)
			done := map[string]bool{}
			for _, l := range lines {
				if l["ok"] == true {
					done[l["step"].(string)] = true
				}
			}
			for _, want := range []string{"discovery", "login_form", "code_exchange", "userinfo", "refresh", "single_sign_on", "logout"} {
				if !done[want] {
					t.Fatalf("step %s did not pass: %v", want, lines)
				}
			}
		})
	}
}
