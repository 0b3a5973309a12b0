package interop

import (
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/tokens"
)

// TestNodeJoseVerifies: jose, knowing only the JWKS URL, verifies RS256 and
// EdDSA tokens and rejects a tampered one, an expired one and one for
// another audience.
func TestNodeJoseVerifies(t *testing.T) {
	requireNode(t)
	s := tokendtest.Start(t, tokendtest.Options{})
	var raws []string
	for _, alg := range keys.Algs {
		tok, err := s.Issuer.Issue(tokens.Grant{Subject: "user-" + alg, ClientID: "mobile", SessionID: "s1", Alg: alg})
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, tok.Raw)
	}
	parts := strings.Split(raws[0], ".")
	tampered := parts[0] + "." + strings.Replace(parts[1], parts[1][:4], "eyJz", 1) + "." + parts[2]
	other, _ := s.Issuer.Issue(tokens.Grant{Subject: "u", ClientID: "mobile", Audience: []string{"https://elsewhere.example"}})
	lines := runNode(t, nowEnv(s.Clock.Now()), "verify.mjs", s.URL+"/.well-known/jwks.json", s.URL, s.URL,
		raws[0], raws[1], tampered, other.Raw)
	if len(lines) != 4 {
		t.Fatalf("jose printed %d results, want 4: %v", len(lines), lines)
	}
	for i, alg := range keys.Algs {
		if lines[i]["ok"] != true || lines[i]["alg"] != alg || lines[i]["sub"] != "user-"+alg {
			t.Fatalf("jose on the %s token: %v", alg, lines[i])
		}
	}
	if lines[2]["ok"] != false || lines[3]["ok"] != false {
		t.Fatalf("jose accepted a tampered or foreign-audience token: %v %v", lines[2], lines[3])
	}
	expired := runNode(t, nowEnv(s.Clock.Now().Add(s.Config.AccessTokenTTL+time.Minute)), "verify.mjs",
		s.URL+"/.well-known/jwks.json", s.URL, s.URL, raws[1])
	if expired[0]["ok"] != false || expired[0]["error"] != "ERR_JWT_EXPIRED" {
		t.Fatalf("jose on an expired token: %v", expired[0])
	}
}
