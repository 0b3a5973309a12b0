package interop

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/tokendtest"
)

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// TestGoOIDC: go-oidc and golang.org/x/oauth2, as a Go relying party uses
// them: discovery, AuthCodeURL with oauth2.S256ChallengeOption, the login
// form, Exchange with oauth2.VerifierOption, IDTokenVerifier.Verify with
// the nonce and at_hash, UserInfo, and a refresh through the TokenSource.
func TestGoOIDC(t *testing.T) {
	for _, alg := range []string{"RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			s := tokendtest.Start(t, tokendtest.Options{Clock: clock.NewFake(time.Now()), Configure: func(c *configT) { c.SigningAlg = alg }})
			ctx := context.Background()
			if _, err := s.Users.CreateVerified(ctx, "gopher@example.com", "gopher password", audit.Meta{}); err != nil {
				t.Fatal(err)
			}
			provider, err := oidc.NewProvider(ctx, s.URL)
			if err != nil {
				t.Fatal(err)
			}
			if provider.Endpoint().AuthURL != s.URL+"/oauth/authorize" {
				t.Fatalf("AuthURL %q", provider.Endpoint().AuthURL)
			}
			conf := oauth2.Config{ClientID: "mobile", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:40404/callback",
				Scopes: []string{oidc.ScopeOpenID, "email"}}
			verifier := oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL("the-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("the-nonce"))

			// A browser follows the login form.
			jar, _ := cookiejar.New(nil)
			br := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := br.Get(authURL)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			form := url.Values{"email": {"gopher@example.com"}, "password": {"gopher password"}, "action": {"login"}}
			for _, m := range hiddenField.FindAllStringSubmatch(string(page), -1) {
				form.Set(m[1], html.UnescapeString(m[2]))
			}
			resp, err = br.PostForm(s.URL+"/login", form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Query().Get("state") != "the-state" {
				t.Fatalf("login form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}

			tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			rawID, _ := tok.Extra("id_token").(string)
			v := provider.Verifier(&oidc.Config{ClientID: "mobile", SupportedSigningAlgs: []string{alg}})
			idt, err := v.Verify(ctx, rawID)
			if err != nil {
				t.Fatalf("go-oidc refuses the ID token: %v", err)
			}
			if idt.Nonce != "the-nonce" {
				t.Fatalf("nonce %q", idt.Nonce)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Fatalf("at_hash: %v", err)
			}
			var claims struct {
				Email string   `json:"email"`
				AMR   []string `json:"amr"`
				SID   string   `json:"sid"`
			}
			if err := idt.Claims(&claims); err != nil || claims.Email != "gopher@example.com" || claims.SID == "" || len(claims.AMR) != 1 {
				t.Fatalf("claims %+v %v", claims, err)
			}
			ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil || ui.Subject != idt.Subject || ui.Email != "gopher@example.com" {
				t.Fatalf("userinfo %+v %v", ui, err)
			}
			// Expire the access token locally: the TokenSource refreshes.
			tok.Expiry = time.Now().Add(-time.Minute)
			fresh, err := conf.TokenSource(ctx, tok).Token()
			if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
				t.Fatalf("refresh through x/oauth2: %v", err)
			}
			if raw, _ := fresh.Extra("id_token").(string); raw == "" {
				t.Fatal("no ID token on refresh")
			} else if again, err := v.Verify(ctx, raw); err != nil || again.Subject != idt.Subject {
				t.Fatalf("the refreshed ID token: %v", err)
			}
			if !strings.HasPrefix(rawID, "ey") {
				t.Fatal("not a JWT")
			}
		})
	}
}
