package api_test

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tokend/tokend/api"
	"github.com/tokend/tokend/api/apitest"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	return doc
}

func TestSpecIsValidOpenAPI31(t *testing.T) {
	doc := loadSpec(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate openapi.yaml: %v", err)
	}
}

// TestSpecConventions checks the house rules of the document that a reader
// and the server's tests rely on.
func TestSpecConventions(t *testing.T) {
	doc := loadSpec(t)
	tags := []string{"discovery", "oidc", "web", "native", "sessions", "password-reset", "email-verification", "account", "operations"}
	for _, tag := range doc.Tags {
		if !slices.Contains(tags, tag.Name) {
			t.Errorf("tag %q is not one of %v", tag.Name, tags)
		}
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		ops := item.Operations()
		if strings.HasPrefix(path, "/auth/") && ops[http.MethodOptions] == nil {
			t.Errorf("%s: no OPTIONS (CORS preflight) operation", path)
		}
		for method, op := range ops {
			name := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", name)
			} else if other, ok := ids[op.OperationID]; ok {
				t.Errorf("%s: operationId %q already names %s", name, op.OperationID, other)
			}
			ids[op.OperationID] = name
			if len(op.Tags) != 1 || !slices.Contains(tags, op.Tags[0]) {
				t.Errorf("%s: tags %v, want one of %v", name, op.Tags, tags)
			}
			want := []int{500, 503}
			if method == http.MethodPost {
				want = append(want, 413)
				if op.RequestBody != nil {
					want = append(want, 400)
				}
			}
			if strings.HasPrefix(path, "/auth/") {
				want = append(want, 403)
			}
			for _, status := range want {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s: no %d response", name, status)
				}
			}
			for status, ref := range op.Responses.Map() {
				checkResponse(t, fmt.Sprintf("%s %s", name, status), ref.Value)
			}
		}
	}
	for name, ref := range doc.Components.Responses {
		checkResponse(t, "components/responses/"+name, ref.Value)
	}
}

func checkResponse(t *testing.T, name string, resp *openapi3.Response) {
	t.Helper()
	for _, h := range []string{"X-Content-Type-Options", "Referrer-Policy", "X-Request-Id"} {
		if ref := resp.Headers[h]; ref == nil || !ref.Value.Required {
			t.Errorf("%s: header %s is not documented as required", name, h)
		}
	}
}

func TestPaths(t *testing.T) {
	paths := apitest.NewValidator(t).Paths()
	for path, want := range map[string][]string{
		"/auth/sessions/{id}":       {"DELETE", "OPTIONS"},
		"/auth/sessions":            {"DELETE", "GET", "OPTIONS"},
		"/oauth/token":              {"POST"},
		"/.well-known/jwks.json":    {"GET"},
		"/docs/redoc.standalone.js": {"GET"},
		"/userinfo":                 {"GET", "POST"},
		"/oauth/authorize":          {"GET", "POST"},
		"/login":                    {"POST"},
		"/oauth/logout":             {"GET", "POST"},
		"/oauth/introspect":         {"POST"},
		"/login/factor":             {"POST"},
		"/account":                  {"GET", "POST"},
		"/account/totp":             {"GET", "POST"},
		"/login/passkey":            {"POST"},
		"/account/passkey":          {"POST"},
	} {
		if got := paths[path]; !slices.Equal(got, want) {
			t.Errorf("Paths()[%q] = %v, want %v", path, got, want)
		}
	}
	if len(paths) != 38 {
		t.Errorf("len(Paths()) = %d, want 38", len(paths))
	}
}

const (
	rsaN   = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	rsaJWK = `{"kid":"rs1","kty":"RSA","alg":"RS256","use":"sig","n":"` + rsaN + `","e":"AQAB"}`
	okpJWK = `{"kid":"ed1","kty":"OKP","alg":"EdDSA","use":"sig","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	jwt    = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzMSIsInR5cCI6ImF0K2p3dCJ9.e30.c2ln"
	idt    = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzMSIsInR5cCI6IkpXVCJ9.e30.c2ln"
	rt     = "Aj8smh5bfUwIpuHwssTW6PoAAAAAAAAABwAAAAGcHkeis18I1uTHoZsvXT5gcYqctNLm8wFae4ydDh8qOw"
	cookie = "tokend_refresh=" + rt + "; Path=/auth; Max-Age=2592000; HttpOnly; Secure; SameSite=Strict"
	signIn = "__Host-tokend_signin=3c9e1f7a-2b4d-4e6f-8a1c-5d7e9f0a2b4c.Zk3xq0m1Yd8pV2sR7tW9uA4bC6eF5gH0jK2lM8nP1qQ; Path=/; Max-Age=86400; HttpOnly; Secure; SameSite=Lax"
	csp    = "default-src 'none'; script-src 'none'; style-src 'sha256-abc='; img-src data:; connect-src 'none'; " +
		"form-action 'self' http://127.0.0.1:53117; base-uri 'none'; frame-ancestors 'none'"
)

// TestValidateSamples runs hand-written responses through the validator
// (openapi3filter.ValidateResponse on a gorillamux router), with cases that
// must fail so that the test can.
func TestValidateSamples(t *testing.T) {
	v := apitest.NewValidator(t)
	type sample struct {
		name    string
		method  string
		url     string
		status  int
		header  map[string]string // on top of the common headers; "" deletes
		body    string
		wantErr string // substring of the error; "" for none
	}
	jwks := sample{
		method: "GET", url: "http://127.0.0.1:41234/.well-known/jwks.json", status: 200,
		header: map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=300", "ETag": `"a1b2"`},
		body:   `{"keys":[` + rsaJWK + `,` + okpJWK + `]}`,
	}
	with := func(s sample, name string, edit func(*sample)) sample {
		s.name = name
		s.header = maps.Clone(s.header)
		edit(&s)
		return s
	}
	tokenOK := sample{
		method: "POST", url: "https://auth.example.com/oauth/token", status: 200,
		header: map[string]string{"Content-Type": "application/json;charset=UTF-8", "Cache-Control": "no-store", "Pragma": "no-cache"},
		body:   `{"access_token":"` + jwt + `","token_type":"Bearer","expires_in":900,"refresh_token":"` + rt + `","scope":"openid email"}`,
	}
	tokenErr := sample{
		method: "POST", url: "http://127.0.0.1:8080/oauth/token", status: 400,
		header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		body:   `{"error":"invalid_grant","error_description":"refresh token is invalid"}`,
	}
	discovery := `{"issuer":"http://127.0.0.1:8080","authorization_endpoint":"http://127.0.0.1:8080/oauth/authorize",` +
		`"token_endpoint":"http://127.0.0.1:8080/oauth/token","userinfo_endpoint":"http://127.0.0.1:8080/userinfo",` +
		`"jwks_uri":"http://127.0.0.1:8080/.well-known/jwks.json","revocation_endpoint":"http://127.0.0.1:8080/oauth/revoke",` +
		`"end_session_endpoint":"http://127.0.0.1:8080/oauth/logout","response_types_supported":["code"],` +
		`"response_modes_supported":["query"],"grant_types_supported":["authorization_code","refresh_token","password","client_credentials"],` +
		`"code_challenge_methods_supported":["S256"],` +
		`"token_endpoint_auth_methods_supported":["none","client_secret_basic","client_secret_post","private_key_jwt"],` +
		`"revocation_endpoint_auth_methods_supported":["none","client_secret_basic","client_secret_post","private_key_jwt"],` +
		`"introspection_endpoint":"http://127.0.0.1:8080/oauth/introspect",` +
		`"introspection_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","private_key_jwt"],` +
		`"token_endpoint_auth_signing_alg_values_supported":["RS256","ES256","EdDSA"],"id_token_signing_alg_values_supported":["RS256","EdDSA"],` +
		`"subject_types_supported":["public"],"scopes_supported":["openid","profile","email"],` +
		`"claims_supported":["iss","sub","aud","azp","exp","iat","auth_time","nonce","at_hash","sid","amr","email","email_verified"],` +
		`"authorization_response_iss_parameter_supported":true}`
	page := sample{
		method: "GET", url: "http://127.0.0.1:1/oauth/authorize?response_type=code&client_id=mobile", status: 200,
		header: map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": csp,
			"X-Frame-Options": "DENY", "Cache-Control": "no-store"},
		body: "<!doctype html><title>Sign in</title>",
	}
	codeRedirect := sample{
		method: "GET", url: "http://127.0.0.1:1/oauth/authorize?response_type=code&client_id=mobile", status: 302,
		header: map[string]string{"Content-Type": "text/html; charset=utf-8",
			"Location": "http://127.0.0.1:53117/callback?code=" + rt + "&iss=http%3A%2F%2F127.0.0.1%3A8080&state=st"},
		body: `<a href="http://127.0.0.1:53117/callback?code=x">Found</a>.`,
	}
	loginForm := sample{
		method: "POST", url: "http://127.0.0.1:1/login", status: 303,
		header: map[string]string{"Set-Cookie": signIn,
			"Location": "http://127.0.0.1:53117/callback?code=" + rt + "&iss=http%3A%2F%2F127.0.0.1%3A8080&state=st"},
	}
	login := sample{
		method: "POST", url: "http://127.0.0.1:1/auth/login", status: 200,
		header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Set-Cookie": cookie},
		body:   `{"access_token":"` + jwt + `","token_type":"Bearer","expires_in":900}`,
	}
	samples := []sample{
		with(jwks, "jwks", func(*sample) {}),
		with(jwks, "jwks with private member d", func(s *sample) {
			s.body = strings.Replace(s.body, `"e":"AQAB"`, `"e":"AQAB","d":"X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJo"`, 1)
			s.wantErr = "not"
		}),
		with(jwks, "jwks with an RSA key marked EdDSA", func(s *sample) {
			s.body = strings.Replace(s.body, `"alg":"RS256"`, `"alg":"EdDSA"`, 1)
			s.wantErr = "'/keys/0/alg'"
		}),
		with(jwks, "jwks with use enc", func(s *sample) {
			s.body = strings.Replace(s.body, `"use":"sig"`, `"use":"enc"`, 1)
			s.wantErr = "sig"
		}),
		with(jwks, "jwks without ETag", func(s *sample) { s.header["ETag"] = ""; s.wantErr = `"ETag" missing` }),
		with(jwks, "jwks with a weak ETag", func(s *sample) { s.header["ETag"] = `W/"a1b2"`; s.wantErr = "ETag" }),
		with(jwks, "jwks with Cache-Control no-cache", func(s *sample) { s.header["Cache-Control"] = "no-cache"; s.wantErr = "Cache-Control" }),
		with(jwks, "jwks 304", func(s *sample) { s.status = 304; s.body = ""; s.header["Content-Type"] = "" }),
		with(jwks, "jwks 304 without ETag", func(s *sample) {
			s.status, s.body, s.header["Content-Type"], s.header["ETag"] = 304, "", "", ""
			s.wantErr = `"ETag" missing`
		}),
		with(jwks, "jwks 304 with a body", func(s *sample) { s.status = 304; s.wantErr = "body" }),
		with(jwks, "HEAD jwks", func(s *sample) { s.method = "HEAD"; s.body = "" }),
		with(jwks, "without X-Request-Id", func(s *sample) { s.header["X-Request-Id"] = ""; s.wantErr = `"X-Request-Id" missing` }),
		with(jwks, "without nosniff", func(s *sample) { s.header["X-Content-Type-Options"] = ""; s.wantErr = "X-Content-Type-Options" }),

		with(tokenOK, "token", func(*sample) {}),
		with(tokenOK, "token without scope", func(s *sample) {
			s.body = strings.Replace(s.body, `,"scope":"openid email"`, "", 1)
		}),
		with(tokenOK, "token without Pragma", func(s *sample) { s.header["Pragma"] = ""; s.wantErr = `"Pragma" missing` }),
		with(tokenOK, "token with token_type bearer", func(s *sample) {
			s.body = strings.Replace(s.body, `"Bearer"`, `"bearer"`, 1)
			s.wantErr = "token_type"
		}),
		with(tokenOK, "token with an extra member", func(s *sample) {
			s.body = strings.Replace(s.body, `{`, `{"refresh_token_expires_in":3600,`, 1)
			s.wantErr = "refresh_token_expires_in"
		}),
		with(tokenOK, "token with an ID token", func(s *sample) {
			s.body = strings.Replace(s.body, `{`, `{"id_token":"`+idt+`",`, 1)
		}),
		with(tokenOK, "token with an ID token that is not a JWT", func(s *sample) {
			s.body = strings.Replace(s.body, `{`, `{"id_token":"x",`, 1)
			s.wantErr = "id_token"
		}),
		with(tokenOK, "token without refresh_token (client credentials)", func(s *sample) {
			s.body = strings.Replace(s.body, `"refresh_token":"`+rt+`",`, "", 1)
		}),
		with(tokenOK, "token without access_token", func(s *sample) {
			s.body = strings.Replace(s.body, `"access_token":`, `"not_access_token":`, 1)
			s.wantErr = "access_token"
		}),
		with(tokenOK, "token as text/plain", func(s *sample) { s.header["Content-Type"] = "text/plain"; s.wantErr = "Content-Type" }),
		with(tokenOK, "undocumented status", func(s *sample) { s.status = 418; s.wantErr = "status is not supported" }),
		with(tokenOK, "token with a query string in the request", func(s *sample) { s.url += "?x=1" }),

		with(tokenErr, "token error", func(*sample) {}),
		with(tokenErr, "error without error", func(s *sample) {
			s.body = `{"error_description":"refresh token is invalid"}`
			s.wantErr = "error"
		}),
		with(tokenErr, "error code not documented for the status", func(s *sample) {
			s.body = `{"error":"invalid_token"}`
			s.wantErr = "error"
		}),
		with(tokenErr, "error_description with a double quote", func(s *sample) {
			s.body = `{"error":"invalid_request","error_description":"parameter \"scope\" sent twice"}`
			s.wantErr = "error_description"
		}),
		with(tokenErr, "error that is HTML", func(s *sample) {
			s.header["Content-Type"] = "text/html; charset=utf-8"
			s.body = "<h1>Bad Request</h1>"
			s.wantErr = "Content-Type"
		}),
		with(tokenErr, "401 invalid_client", func(s *sample) { s.status = 401; s.body = `{"error":"invalid_client"}` }),
		with(tokenErr, "unauthorized_client", func(s *sample) {
			s.body = `{"error":"unauthorized_client","error_description":"this client is not registered for the password grant"}`
		}),
		with(tokenErr, "a redirect-only code in a token error", func(s *sample) {
			s.body = `{"error":"login_required"}`
			s.wantErr = "error"
		}),
		with(tokenErr, "429 without Retry-After", func(s *sample) {
			s.status, s.body = 429, `{"error":"rate_limited"}`
			s.wantErr = `"Retry-After" missing`
		}),
		with(tokenErr, "429", func(s *sample) {
			s.status, s.body, s.header["Retry-After"] = 429, `{"error":"rate_limited"}`, "30"
		}),
		with(tokenErr, "503", func(s *sample) {
			s.status, s.body, s.header["Retry-After"] = 503, `{"error":"temporarily_unavailable"}`, "5"
		}),
		with(tokenErr, "413", func(s *sample) { s.status, s.body = 413, `{"error":"invalid_request"}` }),

		with(page, "login page", func(*sample) {}),
		with(page, "login page setting the CSRF cookie", func(s *sample) {
			s.header["Set-Cookie"] = "__Host-tokend_csrf=q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c; Path=/; Max-Age=86400; HttpOnly; Secure; SameSite=Lax"
		}),
		with(page, "login page setting an unprefixed CSRF cookie", func(s *sample) {
			s.header["Set-Cookie"] = "tokend_csrf=q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c; Path=/; Max-Age=86400; HttpOnly; Secure; SameSite=Lax"
			s.wantErr = "Set-Cookie"
		}),
		with(page, "login page setting a CSRF cookie without Secure", func(s *sample) {
			s.header["Set-Cookie"] = "__Host-tokend_csrf=q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"
			s.wantErr = "Set-Cookie"
		}),
		with(page, "login page setting another cookie", func(s *sample) {
			s.header["Set-Cookie"] = cookie
			s.wantErr = "Set-Cookie"
		}),
		with(page, "page without X-Frame-Options", func(s *sample) { s.header["X-Frame-Options"] = ""; s.wantErr = `"X-Frame-Options" missing` }),
		with(page, "page that may be framed", func(s *sample) {
			s.header["Content-Security-Policy"] = strings.Replace(csp, "frame-ancestors 'none'", "frame-ancestors *", 1)
			s.wantErr = "Content-Security-Policy"
		}),
		with(page, "page that may be cached", func(s *sample) { s.header["Cache-Control"] = "private, max-age=60"; s.wantErr = "Cache-Control" }),
		with(page, "authorize error page", func(s *sample) { s.status = 400 }),
		with(page, "authorize error as JSON", func(s *sample) {
			s.status, s.header["Content-Type"], s.body = 400, "application/json", `{"error":"invalid_request"}`
			s.wantErr = "Content-Type"
		}),
		with(page, "authorize 503", func(s *sample) {
			s.status, s.header["Content-Type"], s.header["Retry-After"], s.body = 503, "application/json", "2", `{"error":"temporarily_unavailable"}`
		}),
		with(codeRedirect, "authorize redirect", func(*sample) {}),
		with(codeRedirect, "authorize redirect without Location", func(s *sample) { s.header["Location"] = ""; s.wantErr = `"Location" missing` }),
		with(codeRedirect, "authorize redirect by POST", func(s *sample) { s.method, s.body, s.header["Content-Type"] = "POST", "", "" }),
		with(codeRedirect, "authorize redirect by POST with a body", func(s *sample) { s.method = "POST"; s.wantErr = "without a body" }),
		with(loginForm, "login form", func(*sample) {}),
		with(loginForm, "login form without the sign-in cookie", func(s *sample) { s.header["Set-Cookie"] = ""; s.wantErr = `"Set-Cookie" missing` }),
		with(loginForm, "login form with a SameSite=None sign-in cookie", func(s *sample) {
			s.header["Set-Cookie"] = strings.Replace(signIn, "SameSite=Lax", "SameSite=None", 1)
			s.wantErr = "Set-Cookie"
		}),
		with(loginForm, "login form cancelled", func(s *sample) {
			s.status, s.header["Set-Cookie"] = 302, ""
			s.header["Location"] = "http://127.0.0.1:53117/callback?error=access_denied&iss=http%3A%2F%2F127.0.0.1%3A8080"
		}),
		with(loginForm, "login form throttled", func(s *sample) {
			s.status, s.body, s.header["Set-Cookie"], s.header["Location"] = 429, "<!doctype html><title>Sign in</title>", "", ""
			maps.Copy(s.header, page.header)
			s.header["Retry-After"] = "30"
		}),
		with(loginForm, "login form throttled without Retry-After", func(s *sample) {
			s.status, s.body, s.header["Set-Cookie"], s.header["Location"] = 429, "<!doctype html><title>Sign in</title>", "", ""
			maps.Copy(s.header, page.header)
			s.wantErr = `"Retry-After" missing`
		}),
		with(loginForm, "login form 413", func(s *sample) {
			s.status, s.body, s.header["Set-Cookie"], s.header["Location"] = 413, "<!doctype html><title>This form is too large</title>", "", ""
			maps.Copy(s.header, page.header)
		}),
		with(loginForm, "login form 413 in JSON", func(s *sample) {
			s.status, s.body, s.header["Set-Cookie"], s.header["Location"] = 413, `{"error":"invalid_request"}`, "", ""
			maps.Copy(s.header, page.header)
			s.header["Content-Type"] = "application/json"
			s.wantErr = "Content-Type"
		}),
		with(page, "logout confirmation page", func(s *sample) { s.url = "http://127.0.0.1:1/oauth/logout" }),
		with(codeRedirect, "logout redirect clearing the sign-in cookie", func(s *sample) {
			s.url = "http://127.0.0.1:1/oauth/logout?client_id=mobile&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%2Fout"
			s.header["Location"] = "http://127.0.0.1/out?state=st"
			s.header["Set-Cookie"] = "__Host-tokend_signin=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
		}),
		with(page, "sign-up closed", func(s *sample) { s.url, s.status = "http://127.0.0.1:1/signup?request=x", 403 }),
		with(page, "sign-up check your email", func(s *sample) { s.method, s.url = "POST", "http://127.0.0.1:1/signup" }),
		with(page, "sign-up email taken (no longer a 409)", func(s *sample) {
			s.method, s.url, s.status, s.wantErr = "POST", "http://127.0.0.1:1/signup", 409, "status"
		}),
		with(page, "resend page", func(s *sample) { s.url = "http://127.0.0.1:1/verify/resend?back=%2Foauth%2Fauthorize" }),
		with(page, "resend form", func(s *sample) { s.method, s.url = "POST", "http://127.0.0.1:1/verify/resend" }),
		with(page, "forgot page", func(s *sample) { s.url = "http://127.0.0.1:1/forgot?back=%2Foauth%2Fauthorize" }),

		with(login, "login", func(*sample) {}),
		with(login, "login cookie without HttpOnly", func(s *sample) {
			s.header["Set-Cookie"] = strings.Replace(cookie, "; HttpOnly", "", 1)
			s.wantErr = "Set-Cookie"
		}),
		with(login, "login cookie without Secure (dev mode)", func(s *sample) {
			s.header["Set-Cookie"] = strings.Replace(cookie, "; Secure", "", 1)
		}),
		with(login, "login without cookie", func(s *sample) { s.header["Set-Cookie"] = ""; s.wantErr = `"Set-Cookie" missing` }),
		with(login, "login 400", func(s *sample) { s.status, s.body, s.header["Set-Cookie"] = 400, `{"error":"invalid_grant"}`, "" }),
		with(login, "login 403", func(s *sample) { s.status, s.body, s.header["Set-Cookie"] = 403, `{"error":"forbidden_origin"}`, "" }),
		{
			name: "logout", method: "POST", url: "http://127.0.0.1:1/auth/logout", status: 204,
			header: map[string]string{"Set-Cookie": "tokend_refresh=; Path=/auth; Max-Age=0; HttpOnly; Secure; SameSite=Strict"},
		},
		{
			name: "preflight", method: "OPTIONS", url: "http://127.0.0.1:1/auth/refresh", status: 204,
			header: map[string]string{
				"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "POST, OPTIONS", "Access-Control-Allow-Headers": "Content-Type",
				"Access-Control-Max-Age": "600", "Vary": "Origin",
			},
		},

		{
			name: "sessions", method: "GET", url: "http://127.0.0.1:1/auth/sessions", status: 200,
			header: map[string]string{"Content-Type": "application/json"},
			body: `{"sessions":[{"id":"s1","type":"app","client_id":"web","created_at":"2026-11-02T09:15:00Z","last_used_at":"2026-11-02T10:02:13.5+01:00","user_agent":"","current":true},` +
				`{"id":"s2","type":"browser","client_id":"","created_at":"2026-11-01T09:15:00Z","last_used_at":"2026-11-02T10:02:13Z","user_agent":"Mozilla/5.0","current":false}]}`,
		},
		{
			name: "sessions: a browser session with a client", method: "GET", url: "http://127.0.0.1:1/auth/sessions", status: 200,
			header:  map[string]string{"Content-Type": "application/json"},
			body:    `{"sessions":[{"id":"s2","type":"browser","client_id":"web","created_at":"2026-11-01T09:15:00Z","last_used_at":"2026-11-02T10:02:13Z","user_agent":"","current":false}]}`,
			wantErr: "client_id",
		},
		{
			name: "sessions: an app session without a client", method: "GET", url: "http://127.0.0.1:1/auth/sessions", status: 200,
			header:  map[string]string{"Content-Type": "application/json"},
			body:    `{"sessions":[{"id":"s1","type":"app","client_id":"","created_at":"2026-11-01T09:15:00Z","last_used_at":"2026-11-02T10:02:13Z","user_agent":"","current":true}]}`,
			wantErr: "client_id",
		},
		{
			name: "sessions without type", method: "GET", url: "http://127.0.0.1:1/auth/sessions", status: 200,
			header:  map[string]string{"Content-Type": "application/json"},
			body:    `{"sessions":[{"id":"s1","client_id":"web","created_at":"2026-11-01T09:15:00Z","last_used_at":"2026-11-02T10:02:13Z","user_agent":"","current":true}]}`,
			wantErr: "type",
		},
		{
			name: "sessions with a bad time", method: "GET", url: "http://127.0.0.1:1/auth/sessions", status: 200,
			header:  map[string]string{"Content-Type": "application/json"},
			body:    `{"sessions":[{"id":"s1","type":"app","client_id":"web","created_at":"yesterday","last_used_at":"2026-11-02T10:02:13Z","user_agent":"","current":true}]}`,
			wantErr: "created_at",
		},
		{
			name: "sessions 401", method: "GET", url: "http://127.0.0.1:1/auth/sessions", status: 401,
			header: map[string]string{"Content-Type": "application/json", "WWW-Authenticate": `Bearer error="invalid_token"`},
			body:   `{"error":"invalid_token","error_description":"token expired"}`,
		},
		{
			name: "sessions 401 without WWW-Authenticate", method: "GET", url: "http://127.0.0.1:1/auth/sessions", status: 401,
			header:  map[string]string{"Content-Type": "application/json"},
			body:    `{"error":"invalid_token"}`,
			wantErr: `"WWW-Authenticate" missing`,
		},
		{
			name: "userinfo with email", method: "GET", url: "http://127.0.0.1:1/userinfo", status: 200,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
			body:   `{"sub":"u1","email":"ada@example.com","email_verified":true}`,
		},
		{
			name: "userinfo by POST, sub alone", method: "POST", url: "http://127.0.0.1:1/userinfo", status: 200,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
			body:   `{"sub":"u1"}`,
		},
		{
			name: "userinfo with email but not email_verified", method: "GET", url: "http://127.0.0.1:1/userinfo", status: 200,
			header:  map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
			body:    `{"sub":"u1","email":"ada@example.com"}`,
			wantErr: "email_verified",
		},
		{name: "revoke session", method: "DELETE", url: "http://127.0.0.1:1/auth/sessions/abc", status: 204},
		{
			name: "revoke session with a body", method: "DELETE", url: "http://127.0.0.1:1/auth/sessions/abc", status: 204,
			header: map[string]string{"Content-Type": "application/json"}, body: `{}`, wantErr: "without a body",
		},
		{
			name: "revoke session 404", method: "DELETE", url: "http://127.0.0.1:1/auth/sessions/abc", status: 404,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"error":"not_found"}`,
		},
		{name: "revoke token", method: "POST", url: "http://127.0.0.1:1/oauth/revoke", status: 200},
		{
			name: "signup", method: "POST", url: "http://127.0.0.1:1/auth/signup", status: 202,
			header: map[string]string{"Content-Type": "application/json"}, body: `{}`,
		},
		{
			name: "signup telling the account apart", method: "POST", url: "http://127.0.0.1:1/auth/signup", status: 202,
			header:  map[string]string{"Content-Type": "application/json"},
			body:    `{"id":"u1","email":"ada@example.com"}`,
			wantErr: "id",
		},
		{
			name: "signup 201 (no longer)", method: "POST", url: "http://127.0.0.1:1/auth/signup", status: 201,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"id":"u1","email":"ada@example.com"}`,
			wantErr: "status",
		},
		{
			name: "signup email taken (no longer)", method: "POST", url: "http://127.0.0.1:1/auth/signup", status: 409,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"error":"email_taken"}`, wantErr: "status",
		},
		{name: "verify", method: "POST", url: "http://127.0.0.1:1/auth/verify", status: 204},
		{
			name: "verify with a used link", method: "POST", url: "http://127.0.0.1:1/auth/verify", status: 400,
			header: map[string]string{"Content-Type": "application/json"},
			body:   `{"error":"invalid_grant","error_description":"the verification link is invalid, expired or already used"}`,
		},
		{name: "resend", method: "POST", url: "http://127.0.0.1:1/auth/verify/resend", status: 202},
		{name: "change email", method: "POST", url: "http://127.0.0.1:1/auth/email", status: 202},
		{
			name: "change email without a token", method: "POST", url: "http://127.0.0.1:1/auth/email", status: 401,
			header: map[string]string{"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
			body:   `{"error":"invalid_token","error_description":"missing bearer token"}`,
		},
		{
			name: "verification page", method: "GET", url: "http://127.0.0.1:1/verify", status: 200,
			header: map[string]string{"Content-Type": "text/html; charset=utf-8",
				"Content-Security-Policy": "default-src 'none'; script-src 'sha256-x'; style-src 'sha256-y'; connect-src 'self'; frame-ancestors 'none'"},
			body: "<!doctype html>",
		},
		{
			name: "discovery", method: "GET", url: "http://127.0.0.1:1/.well-known/openid-configuration", status: 200,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"},
			body:   discovery,
		},
		{
			name: "RFC 8414 metadata", method: "GET", url: "http://127.0.0.1:1/.well-known/oauth-authorization-server", status: 200,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"},
			body:   discovery,
		},
		{
			name: "discovery with introspection and private_key_jwt algorithms", method: "GET", url: "http://127.0.0.1:1/.well-known/openid-configuration", status: 200,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"},
			body: strings.Replace(discovery, `{`, `{"introspection_endpoint":"http://127.0.0.1:8080/oauth/introspect",`+
				`"token_endpoint_auth_signing_alg_values_supported":["RS256","EdDSA"],`, 1),
		},
		{
			name: "discovery advertising the implicit flow", method: "GET", url: "http://127.0.0.1:1/.well-known/openid-configuration", status: 200,
			header:  map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"},
			body:    strings.Replace(discovery, `"response_types_supported":["code"]`, `"response_types_supported":["code","token"]`, 1),
			wantErr: "response_types_supported",
		},
		{
			name: "discovery advertising plain PKCE", method: "GET", url: "http://127.0.0.1:1/.well-known/openid-configuration", status: 200,
			header:  map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"},
			body:    strings.Replace(discovery, `["S256"]`, `["S256","plain"]`, 1),
			wantErr: "code_challenge_methods_supported",
		},
		{
			name: "discovery without end_session_endpoint", method: "GET", url: "http://127.0.0.1:1/.well-known/openid-configuration", status: 200,
			header:  map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"},
			body:    strings.Replace(discovery, `"end_session_endpoint":"http://127.0.0.1:8080/oauth/logout",`, "", 1),
			wantErr: "end_session_endpoint",
		},
		{
			name: "discovery missing userinfo_endpoint", method: "GET", url: "http://127.0.0.1:1/.well-known/openid-configuration", status: 200,
			header:  map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600"},
			body:    `{"issuer":"http://127.0.0.1:8080"}`,
			wantErr: "userinfo_endpoint",
		},
		{
			name: "readyz 503", method: "GET", url: "http://127.0.0.1:1/readyz", status: 503,
			header: map[string]string{"Content-Type": "application/json", "Retry-After": "1"}, body: `{"error":"temporarily_unavailable"}`,
		},
		{
			name: "healthz", method: "GET", url: "http://127.0.0.1:1/healthz", status: 200,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"status":"ok"}`,
		},
		{
			name: "reset page", method: "GET", url: "http://127.0.0.1:1/reset", status: 200,
			header: map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": "default-src 'none'; script-src 'self'"},
			body:   "<!doctype html><title>Reset</title>",
		},
		{
			name: "docs", method: "GET", url: "http://127.0.0.1:1/docs", status: 200,
			header: map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": api.DocsCSP},
			body:   "<!doctype html><title>docs</title>",
		},
		{
			name: "docs without CSP", method: "GET", url: "http://127.0.0.1:1/docs", status: 200,
			header:  map[string]string{"Content-Type": "text/html; charset=utf-8"},
			body:    "<!doctype html><title>docs</title>",
			wantErr: `"Content-Security-Policy" missing`,
		},
		{
			name: "metrics", method: "GET", url: "http://127.0.0.1:1/metrics", status: 200,
			header: map[string]string{"Content-Type": "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"},
			body:   "# HELP up 1\nup 1\n",
		},
		{
			name: "openapi.yaml", method: "GET", url: "http://127.0.0.1:1/openapi.yaml", status: 200,
			header: map[string]string{"Content-Type": "application/yaml"}, body: string(api.Spec),
		},
		{
			name: "unknown path", method: "GET", url: "http://127.0.0.1:1/nope", status: 404,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"error":"not_found"}`,
		},
		{
			name: "unknown path answered 200", method: "GET", url: "http://127.0.0.1:1/nope", status: 200,
			header: map[string]string{"Content-Type": "text/plain"}, body: "hello", wantErr: "no path",
		},
		{
			name: "unknown path with an HTML 404", method: "GET", url: "http://127.0.0.1:1/nope", status: 404,
			header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, body: "404 page not found\n", wantErr: "Content-Type",
		},
		{
			name: "wrong method", method: "GET", url: "http://127.0.0.1:1/oauth/token", status: 405,
			header: map[string]string{"Content-Type": "application/json", "Allow": "POST"}, body: `{"error":"method_not_allowed"}`,
		},
		{
			name: "wrong method, Allow with HEAD", method: "POST", url: "http://127.0.0.1:1/auth/sessions", status: 405,
			header: map[string]string{"Content-Type": "application/json", "Allow": "DELETE, GET, HEAD, OPTIONS"}, body: `{"error":"method_not_allowed"}`,
		},
		{
			name: "wrong method, wrong Allow", method: "PUT", url: "http://127.0.0.1:1/oauth/token", status: 405,
			header:  map[string]string{"Content-Type": "application/json", "Allow": "GET, POST"},
			body:    `{"error":"method_not_allowed"}`,
			wantErr: "Allow",
		},
		{
			name: "wrong method on a page", method: "GET", url: "http://127.0.0.1:1/login", status: 405,
			header: map[string]string{"Content-Type": "text/html; charset=utf-8", "Allow": "POST"}, body: "<!doctype html><title>x</title>",
		},
		{
			name: "headers too large", method: "GET", url: "http://127.0.0.1:1/healthz", status: 431,
			header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
			body:   `{"error":"invalid_request","error_description":"request headers larger than 32 KiB"}`,
		},
		{
			name: "headers too large, from net/http", method: "GET", url: "http://127.0.0.1:1/healthz", status: 431,
			header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, body: "431 Request Header Fields Too Large", wantErr: "Content-Type",
		},
		{
			name: "wrong method answered 404", method: "PUT", url: "http://127.0.0.1:1/oauth/token", status: 404,
			header: map[string]string{"Content-Type": "application/json"}, body: `{"error":"not_found"}`, wantErr: "405",
		},
	}
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(s.method, s.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp := &http.Response{StatusCode: s.status, Header: http.Header{}, Request: req}
			resp.Header.Set("X-Content-Type-Options", "nosniff")
			resp.Header.Set("Referrer-Policy", "no-referrer")
			resp.Header.Set("X-Request-Id", "01JCZ3V9K2T4")
			for k, v := range s.header {
				if v == "" {
					resp.Header.Del(k)
				} else {
					resp.Header.Set(k, v)
				}
			}
			err = v.Check(nil, resp, []byte(s.body))
			switch {
			case s.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case s.wantErr != "" && err == nil:
				t.Errorf("Check: nil error, want one mentioning %q", s.wantErr)
			case s.wantErr != "" && !strings.Contains(err.Error(), s.wantErr):
				t.Errorf("Check: %v\nwant an error mentioning %q", err, s.wantErr)
			}
		})
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestValidateResponseFailsTheTest(t *testing.T) {
	v := apitest.NewValidator(t)
	req, err := http.NewRequest("GET", "http://127.0.0.1:1/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{
		"Content-Type":           {"application/json"},
		"X-Content-Type-Options": {"nosniff"},
		"Referrer-Policy":        {"no-referrer"},
		"X-Request-Id":           {"r1"},
		"Cache-Control":          {"no-store"},
	}}

	var rec recorder
	v.ValidateResponse(&rec, req, resp, []byte(`{"sub":"u1","email":"ada@example.com","email_verified":false}`))
	if len(rec.errors) != 0 {
		t.Fatalf("valid response: %q", rec.errors)
	}
	v.ValidateResponse(&rec, req, resp, []byte(`{"email":"ada@example.com"}`))
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "GET /userinfo → 200") || !strings.Contains(rec.errors[0], "sub") {
		t.Fatalf("response without sub: errors %q, want one naming the request and sub", rec.errors)
	}
}

func TestDocs(t *testing.T) {
	read := func(name string) string {
		t.Helper()
		b, err := fs.ReadFile(api.Docs, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	version := strings.TrimSpace(read("VERSION"))
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(version) {
		t.Errorf("VERSION = %q, want an exact release version", version)
	}
	if bundle := read("redoc.standalone.js"); !strings.Contains(bundle, `ReDoc Version: ","`+version+`"`) {
		t.Errorf("redoc.standalone.js is not Redoc %s: run api/docs/update.sh %s", version, version)
	}
	if license := read("LICENSE.redoc"); !strings.Contains(license, "MIT License") || !strings.Contains(license, "Redoc "+version) {
		t.Errorf("LICENSE.redoc does not carry Redoc %s's MIT licence", version)
	}
	if _, err := fs.Stat(api.Docs, "update.sh"); err == nil {
		t.Errorf("update.sh is embedded; the page does not need it")
	}

	page := read("index.html")
	for _, want := range []string{`<script src="/docs/redoc.standalone.js"></script>`, `spec-url="/openapi.yaml"`} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("index.html has %d script elements, want only Redoc's", n)
	}
	if regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`).MatchString(page) {
		t.Errorf("index.html loads something from another host")
	}
	if strings.Index(page, "<redoc ") > strings.Index(page, "<script") {
		t.Errorf("index.html: the <redoc> element must come before the script, which renders it on load")
	}

	for _, want := range []string{"default-src 'none'", "script-src 'self';", "worker-src blob:", "frame-ancestors 'none'"} {
		if !strings.Contains(api.DocsCSP, want) {
			t.Errorf("DocsCSP lacks %q", want)
		}
	}
	if strings.Contains(api.DocsCSP, "unsafe-eval") || strings.Contains(api.DocsCSP, "http") {
		t.Errorf("DocsCSP = %q allows eval or another host", api.DocsCSP)
	}
}

// TestValidateRequests checks that kin-openapi can validate requests against
// the document too, form bodies with a oneOf by grant_type included.
func TestValidateRequests(t *testing.T) {
	doc := loadSpec(t)
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	form, json := "application/x-www-form-urlencoded", "application/json"
	for _, c := range []struct {
		path, contentType, body string
		wantErr                 bool
	}{
		{"/oauth/token", form, "grant_type=password&username=ada%40example.com&password=pw&client_id=mobile&scope=openid+email", false},
		{"/oauth/token", form, "grant_type=refresh_token&refresh_token=" + rt + "&client_id=mobile", false},
		{"/oauth/token", form, "grant_type=authorization_code&code=" + rt + "&redirect_uri=http%3A%2F%2F127.0.0.1%3A53117%2Fcallback&client_id=mobile&code_verifier=" + rt, false},
		{"/oauth/token", form, "grant_type=authorization_code&code=" + rt + "&redirect_uri=http%3A%2F%2F127.0.0.1%3A53117%2Fcallback&client_id=mobile", false},
		{"/oauth/token", form, "grant_type=authorization_code&code=" + rt + "&client_id=mobile", true},
		{"/oauth/token", form, "grant_type=client_credentials&client_id=billing&client_secret=s3cret", false},
		{"/oauth/token", form, "grant_type=implicit&client_id=mobile", true},
		{"/oauth/introspect", form, "token=" + rt + "&token_type_hint=refresh_token&client_id=api&client_secret=s3cret", false},
		{"/oauth/introspect", form, "token_type_hint=refresh_token&client_id=api&client_secret=s3cret", true},
		{"/oauth/authorize", form, "response_type=code&client_id=mobile&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256", false},
		{"/oauth/authorize", form, "response_type=token&client_id=mobile&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb", true},
		{"/login", form, "email=ada%40example.com&password=pw&csrf=c&request=r&action=login", false},
		{"/login", form, "email=ada%40example.com&password=pw&csrf=c&request=r&action=register", true},
		{"/oauth/token", form, "grant_type=password&client_id=mobile", true},
		{"/oauth/revoke", form, "token=" + rt + "&token_type_hint=refresh_token&client_id=mobile", false},
		{"/oauth/revoke", form, "token=" + rt + "&token_type_hint=id_token&client_id=mobile", true},
		{"/auth/signup", json, `{"email":"ada@example.com","password":"correct horse"}`, false},
		{"/auth/signup", json, `{"email":"ada@example.com"}`, true},
		{"/auth/login", json, `{"email":"ada@example.com","password":"pw","client_id":"web"}`, false},
		{"/auth/password/reset", json, `{"token":"t","password":"` + strings.Repeat("x", 1025) + `"}`, true},
	} {
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1"+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", c.contentType)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		})
		if (err != nil) != c.wantErr {
			t.Errorf("%s %s: error %v, want error: %t", c.path, c.body, err, c.wantErr)
		}
	}
}
