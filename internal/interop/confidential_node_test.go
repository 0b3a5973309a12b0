package interop

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestNodeConfidentialClient: openid-client as a confidential client:
// clientCredentialsGrant with client_secret_basic, tokenIntrospection, and
// PrivateKeyJwt client authentication.
func TestNodeConfidentialClient(t *testing.T) {
	requireNode(t)
	s := tokendtest.Start(t, tokendtest.Options{Clock: clock.NewFake(time.Now())})
	ctx := context.Background()
	_, sec, err := s.Clients.Create(ctx, clients.Spec{ID: "reports", Kind: store.ClientServer, Grants: []string{"client_credentials"},
		Scopes: []string{"email"}}, s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubSet, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
	if _, _, err := s.Clients.Create(ctx, clients.Spec{ID: "signer", Kind: store.ClientServer, Grants: []string{"client_credentials"},
		JWKS: pubSet}, s.Clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	privJWK, _ := json.Marshal(jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"})
	lines := runNode(t, []string{"PRIVATE_JWK=" + string(privJWK)}, "confidential.mjs", s.URL, "reports", sec.Reveal(), "signer")
	done := map[string]bool{}
	for _, l := range lines {
		if l["ok"] == true {
			done[l["step"].(string)] = true
		}
	}
	for _, want := range []string{"client_credentials", "introspection", "private_key_jwt"} {
		if !done[want] {
			t.Fatalf("step %s did not pass: %v", want, lines)
		}
	}
}
