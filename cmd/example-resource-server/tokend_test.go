package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	tokendconfig "github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// These tests run the example resource server's verifier against a real
// tokend (the same wiring as `tokend serve`, behind httptest), sharing
// tokend's fake clock.

func startTokend(t *testing.T, configure func(*tokendconfig.Config)) (*tokendtest.Server, *Verifier) {
	t.Helper()
	s := tokendtest.Start(t, tokendtest.Options{Configure: configure})
	v, err := NewVerifier(VerifierConfig{Issuer: s.URL, Audience: s.URL, JWKSURL: s.URL + "/.well-known/jwks.json",
		Now: s.Clock.Now, HTTPClient: s.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, v
}

func login(t *testing.T, s *tokendtest.Server, clientID string, kind store.ClientKind) string {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Users.CreateVerified(ctx, "rs-"+clientID+"@example.com", "correct horse battery", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	_ = kind
	res, err := s.PasswordLogin(ctx, clientID, "rs-"+clientID+"@example.com", "correct horse battery", audit.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Access.Raw
}

func TestAgainstTokend(t *testing.T) {
	for _, alg := range keys.Algs {
		t.Run(alg, func(t *testing.T) {
			s, v := startTokend(t, func(c *tokendconfig.Config) { c.SigningAlg = alg })
			ctx := context.Background()
			tok := login(t, s, "web", store.ClientWeb)
			c, err := v.Verify(ctx, tok)
			if err != nil {
				t.Fatalf("a fresh %s token was rejected: %v", alg, err)
			}
			if c.ClientID != "web" || c.SessionID == "" || c.Subject == "" {
				t.Fatalf("claims %+v", c)
			}
			// Expired, by the injected clock.
			s.Clock.Advance(s.Config.AccessTokenTTL + time.Minute)
			if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrExpired) {
				t.Fatalf("an expired token: %v", err)
			}
		})
	}
}

func TestRevokedKeyAfterCacheRefresh(t *testing.T) {
	s, v := startTokend(t, func(c *tokendconfig.Config) { c.SigningAlg = keys.EdDSA })
	ctx := context.Background()
	tok := login(t, s, "web", store.ClientWeb)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	signer, _ := s.Keys.Signer(keys.EdDSA)
	if err := s.Keys.Revoke(ctx, signer.KID, audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	// Until its cache expires the resource server still holds the key
	// (that is what max-age promises); after the refresh it is gone.
	s.Clock.Advance(s.Config.JWKSMaxAge + time.Second)
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Fatal("a token signed by a revoked key verified after the JWKS refresh")
	}
	// Tokens of the promoted key verify.
	if _, err := v.Verify(ctx, login(t, s, "mobile", store.ClientNative)); err != nil {
		t.Fatalf("a token of the promoted key: %v", err)
	}
}

func TestOtherAudience(t *testing.T) {
	s, v := startTokend(t, nil)
	ctx := context.Background()
	if err := s.Store.CreateClient(ctx, store.Client{ID: "other-api-client", Kind: store.ClientWeb,
		Audience: []string{"https://other-api.example"}, CreatedAt: tokendtest.T0}, nil); err != nil {
		t.Fatal(err)
	}
	tok := login(t, s, "other-api-client", store.ClientWeb)
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Fatal("a token for another audience verified")
	}
}

func TestTokendDown(t *testing.T) {
	s, v := startTokend(t, nil)
	ctx := context.Background()
	tok := login(t, s, "web", store.ClientWeb)
	s.Close() // the JWKS endpoint is gone
	s.Clock.Advance(s.Config.JWKSMaxAge + time.Minute)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("with tokend down, the cached keys no longer verify: %v", err)
	}
}

// TestIntrospectionMode: in --introspect mode the server asks tokend about
// each token, so a token whose session was revoked stops working at once,
// where the offline verifier keeps accepting it until it expires.
func TestIntrospectionMode(t *testing.T) {
	s, offline := startTokend(t, nil)
	ctx := context.Background()
	_, sec, err := s.Clients.Create(ctx, clients.Spec{ID: "api", Kind: store.ClientServer, Grants: []string{"client_credentials"}},
		s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Clients.Create(ctx, clients.Spec{ID: "app", Kind: store.ClientNative, Grants: []string{"password", "refresh_token"},
		Audience: []string{"api"}}, s.Clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	in, err := NewIntrospector(IntrospectorConfig{Endpoint: s.URL + "/oauth/introspect", ClientID: "api", ClientSecret: sec.Reveal(),
		Audience: "api", HTTPClient: s.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users.CreateVerified(ctx, "intro@example.com", "correct horse battery", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	res, err := s.PasswordLogin(ctx, "app", "intro@example.com", "correct horse battery", audit.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := in.Verify(ctx, res.Access.Raw)
	if err != nil || c.ClientID != "app" || c.SessionID == "" {
		t.Fatalf("introspection of a live token: %+v %v", c, err)
	}
	// The offline verifier is for another audience here; the point is the
	// revocation: the session ends, introspection says so at once.
	_ = offline
	u, _ := s.Users.ByEmail(ctx, "intro@example.com")
	if _, err := s.Sessions.RevokeOthers(ctx, u.ID, "", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Verify(ctx, res.Access.Raw); !errors.Is(err, ErrInactive) {
		t.Fatalf("a revoked session's token: %v", err)
	}
	// A token for another audience is refused even when active.
	own, err := s.PasswordLogin(ctx, "mobile", "intro@example.com", "correct horse battery", audit.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Verify(ctx, own.Access.Raw); !errors.Is(err, ErrInvalid) {
		t.Fatalf("another audience's token: %v", err)
	}
	// tokend unreachable: the server's problem.
	broken, _ := NewIntrospector(IntrospectorConfig{Endpoint: "http://127.0.0.1:1/oauth/introspect", ClientID: "api", ClientSecret: "x",
		Audience: "api"})
	if _, err := broken.Verify(ctx, res.Access.Raw); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("tokend unreachable: %v", err)
	}
}
