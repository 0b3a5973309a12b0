package httpapi_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// assertionKey is a client's key pair for private_key_jwt.
type assertionKey struct {
	kid    string
	alg    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func newAssertionKeys(t *testing.T) []assertionKey {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []assertionKey{{"ed", "EdDSA", jwt.SigningMethodEdDSA, ed}, {"rsa", "RS256", jwt.SigningMethodRS256, rk},
		{"ec", "ES256", jwt.SigningMethodES256, ek}}
}

// jwksOf is the public JWK Set of keys.
func jwksOf(t *testing.T, keys []assertionKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertion signs a client assertion; edit changes its claims.
func assertion(t *testing.T, k assertionKey, clientID, aud string, now time.Time, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": clientID, "sub": clientID, "aud": aud, "exp": now.Add(2 * time.Minute).Unix(), "iat": now.Unix(),
		"jti": base64.RawURLEncoding.EncodeToString([]byte(now.String() + k.kid + randomString(t)))}
	if edit != nil {
		edit(c)
	}
	tok := jwt.NewWithClaims(k.method, c)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomString(t *testing.T) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// confidentialSetup registers a server client with a secret ("svc"), one
// with keys ("keys"), a resource server ("api") and a native client whose
// tokens are for it ("app2").
type confidential struct {
	s      *tokendtest.Server
	secret string
	keys   []assertionKey
	apiSec string
}

func startConfidential(t *testing.T, backend string) *confidential {
	t.Helper()
	s := tokendtest.Start(t, tokendtest.Options{Backend: backend})
	ctx := context.Background()
	c := &confidential{s: s, keys: newAssertionKeys(t)}
	_, sec, err := s.Clients.Create(ctx, clients.Spec{ID: "svc.1", Kind: store.ClientServer, RedirectURIs: []string{"https://app.example.com/cb"},
		Grants: []string{"authorization_code", "refresh_token", "client_credentials"}, Scopes: []string{"openid", "email", "invoices:read"},
		Audience: []string{"api"}}, s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.secret = sec.Reveal()
	if _, _, err := s.Clients.Create(ctx, clients.Spec{ID: "keys", Kind: store.ClientServer, Grants: []string{"client_credentials"},
		JWKS: jwksOf(t, c.keys)}, s.Clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	_, apiSec, err := s.Clients.Create(ctx, clients.Spec{ID: "api", Kind: store.ClientServer, Grants: []string{"client_credentials"}},
		s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.apiSec = apiSec.Reveal()
	if _, _, err := s.Clients.Create(ctx, clients.Spec{ID: "app2", Kind: store.ClientNative, Grants: []string{"password", "refresh_token"},
		Audience: []string{"api", s.URL}}, s.Clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// post sends form to path with optional Basic credentials.
func (c *confidential) post(t *testing.T, path string, form url.Values, basicUser, basicPass string) *tokendtest.Response {
	t.Helper()
	req := c.s.NewRequest(t, http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" || basicPass != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	return c.s.Do(t, req)
}

// TestClientAuthentication: each client authentication method at the
// token endpoint, and each way it fails, on both stores: 401
// invalid_client (with WWW-Authenticate: Basic when Basic was tried) and
// nothing written.
func TestClientAuthentication(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		c := startConfidential(t, b.Name)
		s := c.s
		tokenURL := s.URL + "/oauth/token"
		cc := url.Values{"grant_type": {"client_credentials"}}
		withForm := func(extra ...string) url.Values {
			v := url.Values{"grant_type": {"client_credentials"}}
			for i := 0; i+1 < len(extra); i += 2 {
				v.Set(extra[i], extra[i+1])
			}
			return v
		}
		ok := []struct {
			name       string
			form       url.Values
			user, pass string
		}{
			{"client_secret_basic", cc, "svc.1", c.secret},
			{"client_secret_basic, id form-encoded", cc, "svc%2E1", c.secret},
			{"client_secret_post", withForm("client_id", "svc.1", "client_secret", c.secret), "", ""},
		}
		for _, k := range c.keys {
			ok = append(ok, struct {
				name       string
				form       url.Values
				user, pass string
			}{"private_key_jwt " + k.alg, withForm("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
				"client_assertion", assertion(t, k, "keys", tokenURL, s.Clock.Now(), nil)), "", ""})
		}
		ok = append(ok, struct {
			name       string
			form       url.Values
			user, pass string
		}{"private_key_jwt, aud the issuer", withForm("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
			"client_assertion", assertion(t, c.keys[0], "keys", s.URL, s.Clock.Now(), nil)), "", ""})
		for _, tc := range ok {
			t.Run(tc.name, func(t *testing.T) {
				form := tc.form
				if tc.name == "client_secret_basic, id form-encoded" {
					req := s.NewRequest(t, http.MethodPost, "/oauth/token", strings.NewReader(cc.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("svc%2E1:"+c.secret)))
					if r := s.Do(t, req); r.Status != 200 {
						t.Fatalf("%d %s", r.Status, r.Body)
					}
					return
				}
				r := c.post(t, "/oauth/token", form, tc.user, tc.pass)
				if r.Status != 200 {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
			})
		}

		used := assertion(t, c.keys[0], "keys", tokenURL, s.Clock.Now(), nil)
		if r := c.post(t, "/oauth/token", withForm("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
			"client_assertion", used), "", ""); r.Status != 200 {
			t.Fatalf("an assertion: %d %s", r.Status, r.Body)
		}
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		stranger := assertionKey{"ed", "EdDSA", jwt.SigningMethodEdDSA, other}
		none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "keys", "sub": "keys", "aud": tokenURL,
			"exp": s.Clock.Now().Add(time.Minute).Unix(), "jti": "none-1"})
		noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
		assert := func(a string) url.Values {
			return withForm("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", a)
		}
		bad := []struct {
			name       string
			form       url.Values
			user, pass string
			status     int
			code       string
			basic      bool
		}{
			{"wrong secret, Basic", cc, "svc.1", "wrong-secret", 401, "invalid_client", true},
			{"wrong secret, post", withForm("client_id", "svc.1", "client_secret", "wrong-secret"), "", "", 401, "invalid_client", false},
			{"unknown client, Basic", cc, "nobody", "x", 401, "invalid_client", true},
			{"unknown client, post", withForm("client_id", "nobody", "client_secret", "x"), "", "", 401, "invalid_client", false},
			{"a confidential client without credentials", withForm("client_id", "svc.1"), "", "", 401, "invalid_client", false},
			{"a public client's secret", withForm("client_id", "mobile", "client_secret", "x"), "", "", 401, "invalid_client", false},
			{"a public client trying client_credentials", withForm("client_id", "mobile"), "", "", 401, "invalid_client", false},
			{"a client_id that disagrees", withForm("client_id", "api"), "svc.1", c.secret, 400, "invalid_request", false},
			{"two methods", withForm("client_id", "svc.1", "client_secret", c.secret), "svc.1", c.secret, 400, "invalid_request", false},
			{"replayed assertion", assert(used), "", "", 401, "invalid_client", false},
			{"expired assertion", assert(assertion(t, c.keys[0], "keys", tokenURL, s.Clock.Now(), func(m jwt.MapClaims) {
				m["exp"] = s.Clock.Now().Add(-2 * time.Minute).Unix()
			})), "", "", 401, "invalid_client", false},
			{"assertion expiring in an hour", assert(assertion(t, c.keys[0], "keys", tokenURL, s.Clock.Now(), func(m jwt.MapClaims) {
				m["exp"] = s.Clock.Now().Add(time.Hour).Unix()
			})), "", "", 401, "invalid_client", false},
			{"assertion without jti", assert(assertion(t, c.keys[0], "keys", tokenURL, s.Clock.Now(), func(m jwt.MapClaims) { delete(m, "jti") })),
				"", "", 401, "invalid_client", false},
			{"assertion for another audience", assert(assertion(t, c.keys[0], "keys", "https://evil.example/token", s.Clock.Now(), nil)),
				"", "", 401, "invalid_client", false},
			{"assertion signed by an unregistered key", assert(assertion(t, stranger, "keys", tokenURL, s.Clock.Now(), nil)),
				"", "", 401, "invalid_client", false},
			{"assertion with alg none", assert(noneTok), "", "", 401, "invalid_client", false},
			{"assertion of a client without keys", assert(assertion(t, c.keys[0], "svc.1", tokenURL, s.Clock.Now(), nil)),
				"", "", 401, "invalid_client", false},
			{"assertion of another type", withForm("client_assertion_type", "urn:x", "client_assertion", used), "", "", 401, "invalid_client", false},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				// Each case on its own: the brute-force limits have a test
				// of their own.
				if _, err := s.Store.Writer().Exec(`DELETE FROM throttles`); err != nil {
					t.Fatal(err)
				}
				before := rowCounts(t, s)
				r := c.post(t, "/oauth/token", tc.form, tc.user, tc.pass)
				wantError(t, r, tc.status, tc.code)
				if got := r.Header.Get("WWW-Authenticate"); tc.basic != strings.HasPrefix(got, "Basic") {
					t.Fatalf("WWW-Authenticate %q (Basic tried: %v)", got, tc.basic)
				}
				if after := rowCounts(t, s); after != before {
					t.Fatalf("rows written: %+v → %+v", before, after)
				}
			})
		}

		// The same failures at revocation and introspection, which
		// authenticate clients the same way.
		for _, endpoint := range []string{"/oauth/revoke", "/oauth/introspect"} {
			for _, tc := range bad {
				if tc.status != 401 || strings.Contains(tc.name, "public client") {
					continue // a public client may revoke; the rest are token-endpoint requests
				}
				t.Run(endpoint+" "+tc.name, func(t *testing.T) {
					if _, err := s.Store.Writer().Exec(`DELETE FROM throttles`); err != nil {
						t.Fatal(err)
					}
					form := url.Values{"token": {"some-token"}}
					for k, v := range tc.form {
						if k != "grant_type" {
							form[k] = v
						}
					}
					before := rowCounts(t, s)
					r := c.post(t, endpoint, form, tc.user, tc.pass)
					wantError(t, r, tc.status, tc.code)
					if got := r.Header.Get("WWW-Authenticate"); tc.basic != strings.HasPrefix(got, "Basic") {
						t.Fatalf("WWW-Authenticate %q (Basic tried: %v)", got, tc.basic)
					}
					if after := rowCounts(t, s); after != before {
						t.Fatalf("rows written: %+v → %+v", before, after)
					}
				})
			}
		}

		// Golang's x/oauth2 tries Basic with an empty secret for a public
		// client.
		req := s.NewRequest(t, http.MethodPost, "/oauth/revoke", strings.NewReader(url.Values{"token": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("mobile", "")
		if r := s.Do(t, req); r.Status != 200 {
			t.Fatalf("a public client with an empty Basic secret: %d %s", r.Status, r.Body)
		}
	})
}

// TestClientBruteForce: wrong secrets count against the client's limits,
// per client and address like an account's: past 5 the address's guesses
// are refused with 429 and Retry-After; the right secret still works, from
// there and from elsewhere.
func TestClientBruteForce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		c := startConfidential(t, b.Name)
		form := url.Values{"grant_type": {"client_credentials"}}
		for i := range 5 {
			wantError(t, c.post(t, "/oauth/token", form, "svc.1", "guess-"+randomString(t)), 401, "invalid_client")
			_ = i
		}
		r := c.post(t, "/oauth/token", form, "svc.1", "one more guess")
		wantError(t, r, 429, "rate_limited")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		// The guesses do not lock the client out: its own secret, even
		// from the locked address, is no guess.
		if r := c.post(t, "/oauth/token", form, "svc.1", c.secret); r.Status != 200 {
			t.Fatalf("the right secret from the locked address: %d %s", r.Status, r.Body)
		}
		wantError(t, c.post(t, "/oauth/token", form, "svc.1", "and another guess"), 429, "rate_limited")
		if _, err := c.s.ClientAuth.Authenticate(context.Background(), &clients.Credentials{Form: url.Values{}, Basic: true,
			BasicID: "svc.1", BasicSecret: secretOf(c.secret), Address: "198.51.100.9"}); err != nil {
			t.Fatalf("the right secret from another address: %v", err)
		}
	})
}

// TestClientCredentialsToken: the token of client_credentials is the
// client's own: sub and client_id the client, no sid, no refresh token, the
// scope at most what it was registered with, its registered audience.
func TestClientCredentialsToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		c := startConfidential(t, b.Name)
		r := c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}, "svc.1", c.secret)
		var tr tokenResp
		r.JSON(t, &tr)
		if r.Status != 200 || tr.RefreshToken != "" || tr.Scope != "openid" || tr.AccessToken == "" {
			t.Fatalf("client_credentials: %d %s", r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "id_token") || strings.Contains(string(r.Body), "refresh_token") {
			t.Fatalf("client_credentials returned more than an access token: %s", r.Body)
		}
		_, claims := jwtParts(t, tr.AccessToken)
		if claims["sub"] != "svc.1" || claims["client_id"] != "svc.1" || claims["aud"] != "api" || claims["sid"] != nil {
			t.Fatalf("claims %v", claims)
		}
		wantError(t, c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"profile"}}, "svc.1", c.secret),
			400, "invalid_scope")
		// An API scope of the client's registration is granted as registered.
		r = c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"invoices:read"}}, "svc.1", c.secret)
		var api tokenResp
		r.JSON(t, &api)
		if _, cl := jwtParts(t, api.AccessToken); r.Status != 200 || api.Scope != "invoices:read" || cl["scope"] != "invoices:read" {
			t.Fatalf("an API scope: %d %s", r.Status, r.Body)
		}
		for _, bad := range []string{"invoices:write", "a\\b", `"q"`} {
			wantError(t, c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {bad}}, "svc.1", c.secret),
				400, "invalid_scope")
		}
		// Without a scope parameter, every scope of the registration.
		r = c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "svc.1", c.secret)
		var all tokenResp
		r.JSON(t, &all)
		if r.Status != 200 || all.Scope != "email invoices:read openid" {
			t.Fatalf("no scope asked: %d %s", r.Status, r.Body)
		}
		// A client registered without scopes gets none.
		r = c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "api", c.apiSec)
		var none tokenResp
		r.JSON(t, &none)
		if r.Status != 200 || none.Scope != "" {
			t.Fatalf("a client without scopes: %d %s", r.Status, r.Body)
		}
		wantError(t, c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}, "api", c.apiSec),
			400, "invalid_scope")
	})
}

// TestIntrospection: RFC 7662 at /oauth/introspect, for authenticated
// clients: active tokens with their claims, and inactive ones — revoked
// session, disabled user, revoked key, expired, foreign, garbage — as
// {"active":false}.
func TestIntrospection(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		c := startConfidential(t, b.Name)
		s := c.s
		ctx := context.Background()
		u := createUser(t, s, "intro@example.com")
		createUser(t, s, "other@example.com")
		login := func(email string) tokenResp {
			r := s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {email}, "password": {testPassword},
				"client_id": {"app2"}})
			var tr tokenResp
			r.JSON(t, &tr)
			if r.Status != 200 {
				t.Fatalf("login: %d %s", r.Status, r.Body)
			}
			return tr
		}
		intro := func(token, hint string) map[string]any {
			t.Helper()
			form := url.Values{"token": {token}}
			if hint != "" {
				form.Set("token_type_hint", hint)
			}
			r := c.post(t, "/oauth/introspect", form, "api", c.apiSec)
			if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("introspect: %d %s", r.Status, r.Body)
			}
			var m map[string]any
			r.JSON(t, &m)
			return m
		}
		active := func(m map[string]any) bool { return m["active"] == true }

		tr := login("intro@example.com")
		m := intro(tr.AccessToken, "")
		if !active(m) || m["sub"] != u.ID || m["client_id"] != "app2" || m["token_type"] != "Bearer" || m["sid"] == nil ||
			m["iss"] != s.URL || m["exp"] == nil || m["iat"] == nil {
			t.Fatalf("an active access token: %v", m)
		}
		if aud, _ := m["aud"].([]any); len(aud) != 2 {
			t.Fatalf("aud %v", m["aud"])
		}
		// Another server client that is neither the client nor in aud sees
		// nothing.
		r := c.post(t, "/oauth/introspect", url.Values{"token": {tr.AccessToken}}, "svc.1", c.secret)
		if r.Status != 200 || string(r.Body) != "{\"active\":false}\n" {
			t.Fatalf("a foreign client's view: %d %s", r.Status, r.Body)
		}
		// A resource server's client (no grant) registered with the API's
		// audience sees the tokens for that API; svc.1, registered with the
		// same --audience for its own tokens, did not.
		_, rsSec, err := s.Clients.Create(context.Background(), clients.Spec{ID: "rs", Kind: store.ClientServer, Audience: []string{"api"}},
			s.Clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		r = c.post(t, "/oauth/introspect", url.Values{"token": {tr.AccessToken}}, "rs", rsSec.Reveal())
		var rsView map[string]any
		r.JSON(t, &rsView)
		if r.Status != 200 || !active(rsView) || rsView["sub"] != u.ID {
			t.Fatalf("the API's resource server: %d %s", r.Status, r.Body)
		}
		// A public client may not introspect at all.
		wantError(t, s.PostForm(t, "/oauth/introspect", url.Values{"token": {tr.AccessToken}, "client_id": {"mobile"}}), 401, "invalid_client")

		// Refresh tokens: only their own client may introspect them, and
		// app2 is public; through the store, its client sees it.
		if m := intro(tr.RefreshToken, "refresh_token"); active(m) {
			t.Fatalf("a refresh token introspected by a client it was not issued to: %v", m)
		}
		res, err := s.Introspection.Introspect(ctx, store.Client{ID: "app2"}, tr.RefreshToken, "")
		if err != nil || !res.Active || res.TokenType != "refresh_token" || res.Sub != u.ID {
			t.Fatalf("a refresh token by its client: %+v %v", res, err)
		}

		// Revoked session.
		if _, err := s.Sessions.RevokeOthers(ctx, u.ID, "", audit.Meta{}); err != nil {
			t.Fatal(err)
		}
		if m := intro(tr.AccessToken, ""); active(m) {
			t.Fatalf("the token of a revoked session: %v", m)
		}
		// Disabled user.
		tr2 := login("other@example.com")
		if !active(intro(tr2.AccessToken, "access_token")) {
			t.Fatal("a live token is inactive")
		}
		if _, err := s.Users.Disable(ctx, "other@example.com", audit.CLI); err != nil {
			t.Fatal(err)
		}
		if m := intro(tr2.AccessToken, ""); active(m) {
			t.Fatalf("the token of a disabled user: %v", m)
		}
		// client_credentials: the client's own token, until it is deleted.
		r = c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "api", c.apiSec)
		var own tokenResp
		r.JSON(t, &own)
		if m := intro(own.AccessToken, ""); !active(m) || m["sub"] != "api" || m["sid"] != nil {
			t.Fatalf("a client's own token: %v", m)
		}
		// Expired.
		s.Clock.Advance(16 * time.Minute)
		if m := intro(own.AccessToken, ""); active(m) {
			t.Fatalf("an expired token: %v", m)
		}
		// Revoked key: a token signed with it is inactive at once.
		r = c.post(t, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, "api", c.apiSec)
		r.JSON(t, &own)
		h, _ := jwtParts(t, own.AccessToken)
		if !active(intro(own.AccessToken, "")) {
			t.Fatal("fresh token inactive")
		}
		if err := s.Keys.Revoke(ctx, h["kid"].(string), audit.CLI); err != nil {
			t.Fatal(err)
		}
		if m := intro(own.AccessToken, ""); active(m) {
			t.Fatalf("a token of a revoked key: %v", m)
		}
		for _, junk := range []string{"junk", strings.Repeat("A", 43), tr.AccessToken + "x", ""} {
			if junk == "" {
				wantError(t, c.post(t, "/oauth/introspect", url.Values{}, "api", c.apiSec), 400, "invalid_request")
				continue
			}
			if m := intro(junk, ""); active(m) || len(m) != 1 {
				t.Fatalf("garbage %q: %v", junk, m)
			}
		}
	})
}

// TestServerClientCodeFlow: a confidential relying party runs the
// authorization code flow authenticating at the token endpoint, with or
// without PKCE; a public client's code cannot be redeemed by it.
func TestServerClientCodeFlow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		c := startConfidential(t, b.Name)
		s := c.s
		createUser(t, s, "rp@example.com")
		br := newBrowser(t, s)
		params := url.Values{"response_type": {"code"}, "client_id": {"svc.1"}, "redirect_uri": {"https://app.example.com/cb"},
			"scope": {"openid email"}, "state": {"s"}, "nonce": {"n"}}
		page := wantLoginPage(t, br.get(t, "/oauth/authorize?"+params.Encode()), http.StatusOK)
		r := br.signIn(t, page, "rp@example.com", testPassword)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.Status != http.StatusSeeOther || loc.Host != "app.example.com" {
			t.Fatalf("sign-in: %d %q", r.Status, r.Header.Get("Location"))
		}
		code := loc.Query().Get("code")
		exch := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.example.com/cb"}}
		wantError(t, c.post(t, "/oauth/token", exch, "svc.1", "wrong"), 401, "invalid_client")
		got := c.post(t, "/oauth/token", exch, "svc.1", c.secret)
		var ct codeTokens
		got.JSON(t, &ct)
		if got.Status != 200 || ct.IDToken == "" || ct.RefreshToken == "" {
			t.Fatalf("exchange: %d %s", got.Status, got.Body)
		}
		// The refresh token is bound to the confidential client: it needs
		// the client's authentication too.
		wantError(t, s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ct.RefreshToken},
			"client_id": {"svc.1"}}), 401, "invalid_client")
		if r := c.post(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ct.RefreshToken}}, "svc.1", c.secret); r.Status != 200 {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
		// With PKCE, the verifier is checked too.
		p := newPKCE()
		params.Set("code_challenge", p.challenge)
		params.Set("code_challenge_method", "S256")
		r = br.get(t, "/oauth/authorize?"+params.Encode())
		loc, _ = url.Parse(r.Header.Get("Location"))
		exch.Set("code", loc.Query().Get("code"))
		wantError(t, c.post(t, "/oauth/token", exch, "svc.1", c.secret), 400, "invalid_grant")
		exch.Set("code_verifier", p.verifier)
		if r := c.post(t, "/oauth/token", exch, "svc.1", c.secret); r.Status != 200 {
			t.Fatalf("exchange with PKCE: %d %s", r.Status, r.Body)
		}
	})
}

// TestClientSecretRotation: a rotated secret keeps working for the grace,
// then stops; the new one works at once.
func TestClientSecretRotation(t *testing.T) {
	c := startConfidential(t, "")
	s := c.s
	newSec, err := s.Clients.RotateSecret(context.Background(), "svc.1", time.Hour, s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	for _, sec := range []string{c.secret, newSec.Reveal()} {
		if r := c.post(t, "/oauth/token", form, "svc.1", sec); r.Status != 200 {
			t.Fatalf("during the grace: %d %s", r.Status, r.Body)
		}
	}
	s.Clock.Advance(time.Hour + time.Second)
	wantError(t, c.post(t, "/oauth/token", form, "svc.1", c.secret), 401, "invalid_client")
	if r := c.post(t, "/oauth/token", form, "svc.1", newSec.Reveal()); r.Status != 200 {
		t.Fatalf("the new secret: %d %s", r.Status, r.Body)
	}
}

func secretOf(s string) secret.String { return secret.String(s) }

// TestPublicClientBasic: a public client may identify itself with
// Authorization: Basic base64(client_id:) and an empty secret (API.md,
// what golang.org/x/oauth2 tries first), with or without the same client_id
// in the body, at the token and revocation endpoints. A Basic id and a body
// client_id that differ are a malformed request (400 invalid_request)
// whatever the secret, and write nothing.
func TestPublicClientBasic(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "basic@example.com")
		if _, _, err := s.Clients.Create(context.Background(), clientsSpecNative("other-app"), s.Clock.Now(), nil); err != nil {
			t.Fatal(err)
		}
		post := func(t *testing.T, path string, form url.Values, user, pass string) *tokendtest.Response {
			t.Helper()
			req := s.NewRequest(t, http.MethodPost, path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
			return s.Do(t, req)
		}
		login := url.Values{"grant_type": {"password"}, "username": {"basic@example.com"}, "password": {testPassword}}
		r := post(t, "/oauth/token", login, "mobile", "")
		if r.Status != 200 {
			t.Fatalf("password grant with Basic mobile: only: %d %s", r.Status, r.Body)
		}
		var tr tokenResp
		r.JSON(t, &tr)
		// The refresh grant, with Basic alone and with the same client_id.
		for _, withID := range []bool{false, true} {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}
			if withID {
				form.Set("client_id", "mobile")
			}
			tr = refreshed(t, post(t, "/oauth/token", form, "mobile", ""))
		}
		// The authorization code grant with Basic alone.
		br := newBrowser(t, s)
		p := newPKCE()
		q := br.codeFlow(t, p, "basic@example.com")
		exchanged(t, post(t, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
			"redirect_uri": {"http://127.0.0.1:53117/callback"}, "code_verifier": {p.verifier}}, "mobile", ""))

		// Differing ids: invalid_request, nothing written, the token
		// untouched.
		for _, tc := range []struct{ name, user, pass, bodyID string }{
			{"public Basic, another public client_id", "mobile", "", "other-app"},
			{"public Basic, an unknown client_id", "mobile", "", "nobody"},
			{"unknown Basic, a public client_id", "nobody", "", "mobile"},
			{"Basic with a secret, another client_id", "other-app", "a-secret", "mobile"},
		} {
			before := rowCounts(t, s)
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {tc.bodyID}}
			r := post(t, "/oauth/token", form, tc.user, tc.pass)
			wantError(t, r, 400, "invalid_request")
			if r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("%s: WWW-Authenticate %q on a malformed request", tc.name, r.Header.Get("WWW-Authenticate"))
			}
			wantError(t, post(t, "/oauth/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {tc.bodyID}}, tc.user, tc.pass),
				400, "invalid_request")
			if after := rowCounts(t, s); after != before {
				t.Fatalf("%s: rows written: %+v → %+v", tc.name, before, after)
			}
		}
		tr = refreshed(t, post(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}, "mobile", ""))
		// Revocation with Basic alone.
		if r := post(t, "/oauth/revoke", url.Values{"token": {tr.RefreshToken}}, "mobile", ""); r.Status != 200 {
			t.Fatalf("revoke with Basic mobile: %d %s", r.Status, r.Body)
		}
		wantError(t, nativeRefresh(t, s, tr.RefreshToken), 400, "invalid_grant")
	})
}
