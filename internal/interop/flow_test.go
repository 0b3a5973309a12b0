package interop

import (
	"context"
	"testing"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestNodeFlow: a Node client with jose logs in against a running tokend,
// verifies the access token from the JWKS, refreshes and calls userinfo.
func TestNodeFlow(t *testing.T) {
	requireNode(t)
	for _, alg := range []string{"RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			s := tokendtest.Start(t, tokendtest.Options{Configure: func(c *configT) { c.SigningAlg = alg }})
			if _, err := s.Users.CreateVerified(context.Background(), "node@example.com", "node password 1", audit.Meta{}); err != nil {
				t.Fatal(err)
			}
			lines := runNode(t, nowEnv(s.Clock.Now()), "flow.mjs", s.URL, "node@example.com", "node password 1", "mobile")
			steps := map[string]bool{}
			for _, l := range lines {
				if l["ok"] == true {
					steps[l["step"].(string)] = true
				}
			}
			for _, want := range []string{"login", "refresh", "userinfo"} {
				if !steps[want] {
					t.Fatalf("step %s did not pass: %v", want, lines)
				}
			}
		})
	}
}
