package interop

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestXOAuth2ClientCredentials: golang.org/x/oauth2/clientcredentials, as a
// Go service gets its tokens, with each of its auth styles.
func TestXOAuth2ClientCredentials(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Clock: clock.NewFake(time.Now())})
	ctx := context.Background()
	_, sec, err := s.Clients.Create(ctx, clients.Spec{ID: "billing", Kind: store.ClientServer, Grants: []string{"client_credentials"},
		Scopes: []string{"email"}, Audience: []string{"api"}}, s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, style := range map[string]oauth2.AuthStyle{"auto": oauth2.AuthStyleAutoDetect, "header": oauth2.AuthStyleInHeader,
		"params": oauth2.AuthStyleInParams} {
		conf := clientcredentials.Config{ClientID: "billing", ClientSecret: sec.Reveal(), TokenURL: s.URL + "/oauth/token",
			Scopes: []string{"email"}, AuthStyle: style}
		tok, err := conf.Token(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tok.AccessToken == "" || tok.RefreshToken != "" || tok.Extra("scope") != "email" {
			t.Fatalf("%s: %+v", name, tok)
		}
	}
	bad := clientcredentials.Config{ClientID: "billing", ClientSecret: "wrong", TokenURL: s.URL + "/oauth/token"}
	if _, err := bad.Token(ctx); err == nil {
		t.Fatal("a wrong secret got a token")
	} else if re, ok := err.(*oauth2.RetrieveError); !ok || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
		t.Fatalf("a wrong secret: %v", err)
	}
}

// TestXOAuth2AutoDetect: x/oauth2 with AuthStyleAutoDetect exchanges codes
// for a public client (it tries Basic with an empty secret first) and for a
// confidential one.
func TestXOAuth2AutoDetect(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Clock: clock.NewFake(time.Now())})
	ctx := context.Background()
	if _, err := s.Users.CreateVerified(ctx, "auto@example.com", "auto password", audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	_, sec, err := s.Clients.Create(ctx, clients.Spec{ID: "portal", Kind: store.ClientServer, RedirectURIs: []string{"https://portal.example.com/cb"}},
		s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, secret, redirect string
	}{{"mobile", "", "http://127.0.0.1:45454/callback"}, {"portal", sec.Reveal(), "https://portal.example.com/cb"}} {
		t.Run(tc.id, func(t *testing.T) {
			conf := oauth2.Config{ClientID: tc.id, ClientSecret: tc.secret, RedirectURL: tc.redirect, Scopes: []string{"openid"},
				Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/oauth/authorize", TokenURL: s.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleAutoDetect}}
			verifier := oauth2.GenerateVerifier()
			code := signInByForm(t, s, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "auto@example.com", "auto password")
			tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if tok.RefreshToken == "" || tok.Extra("id_token") == nil {
				t.Fatalf("token %+v", tok)
			}
			tok.Expiry = time.Now().Add(-time.Minute)
			if _, err := conf.TokenSource(ctx, tok).Token(); err != nil {
				t.Fatalf("refresh: %v", err)
			}
		})
	}
}

// signInByForm opens authURL in a fresh browser, signs in on the login
// page and returns the code the redirect carries.
func signInByForm(t *testing.T, s *tokendtest.Server, authURL, email, password string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	br := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := br.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(t, resp)
	form := url.Values{"email": {email}, "password": {password}, "action": {"login"}}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	resp, err = br.PostForm(s.URL+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Query().Get("code") == "" {
		t.Fatalf("login form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}
