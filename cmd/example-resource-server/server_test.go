package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// newTestAPI serves the example API with a verifier on the fake clock.
func newTestAPI(t *testing.T, jwksURL string, clock *fakeClock) *httptest.Server {
	t.Helper()
	s := &server{verifier: newTestVerifier(t, jwksURL, clock), logger: testLogger(t)}
	api := httptest.NewServer(s.routes())
	t.Cleanup(api.Close)
	return api
}

func TestAPI(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1, ks.ed1)
	clock := newFakeClock()
	api := newTestAPI(t, jwks.URL, clock)

	now := clock.Now()
	valid := ks.rsa1.sign(t, claimsAt(now), nil)
	expired := ks.rsa1.sign(t, with(now, map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-time.Minute).Unix()}), nil)
	otherAudience := ks.ed1.sign(t, with(now, map[string]any{"aud": "https://other.test"}), nil)

	const (
		invalidChallenge   = `Bearer error="invalid_token", error_description="the access token is invalid"`
		expiredChallenge   = `Bearer error="invalid_token", error_description="the access token expired"`
		malformedChallenge = `Bearer error="invalid_token", error_description="the access token is malformed"`
	)
	tests := []struct {
		name          string
		method, path  string
		authorization []string
		wantStatus    int
		wantChallenge string            // WWW-Authenticate, "" for none
		wantBody      map[string]any    // compared field by field
		wantHeaders   map[string]string // other headers
	}{
		{
			name: "valid token", method: "GET", path: "/api/me",
			authorization: []string{"Bearer " + valid},
			wantStatus:    200,
			wantBody: map[string]any{
				"sub": "user-1", "client_id": "mobile", "scope": "openid profile",
				"aud": []any{testAudience},
			},
			wantHeaders: map[string]string{"Cache-Control": "no-store", "Content-Type": "application/json"},
		},
		{
			name: "scheme in lower case", method: "GET", path: "/api/me",
			authorization: []string{"bearer " + valid},
			wantStatus:    200,
			wantBody:      map[string]any{"sub": "user-1"},
		},
		{
			name: "HEAD", method: "HEAD", path: "/api/me",
			authorization: []string{"Bearer " + valid},
			wantStatus:    200,
		},
		{
			name: "no Authorization header", method: "GET", path: "/api/me",
			wantStatus:    401,
			wantChallenge: "Bearer",
			wantBody:      map[string]any{"error": "invalid_token", "error_description": "missing bearer token"},
			wantHeaders:   map[string]string{"Cache-Control": "no-store"},
		},
		{
			name: "Basic credentials", method: "GET", path: "/api/me",
			authorization: []string{"Basic dXNlcjpwYXNz"},
			wantStatus:    401,
			wantChallenge: "Bearer",
		},
		{
			name: "token for another audience", method: "GET", path: "/api/me",
			authorization: []string{"Bearer " + otherAudience},
			wantStatus:    401,
			wantChallenge: invalidChallenge,
			wantBody:      map[string]any{"error": "invalid_token", "error_description": "the access token is invalid"},
			wantHeaders:   map[string]string{"Cache-Control": "no-store", "Content-Type": "application/json"},
		},
		{
			name: "tampered token", method: "GET", path: "/api/me",
			authorization: []string{"Bearer " + replacePayload(t, valid, with(now, map[string]any{"sub": "admin"}))},
			wantStatus:    401,
			wantChallenge: invalidChallenge,
		},
		{
			name: "expired token", method: "GET", path: "/api/me",
			authorization: []string{"Bearer " + expired},
			wantStatus:    401,
			wantChallenge: expiredChallenge,
			wantBody:      map[string]any{"error": "invalid_token", "error_description": "the access token expired"},
		},
		{
			name: "garbage", method: "GET", path: "/api/me",
			authorization: []string{"Bearer abc"},
			wantStatus:    401,
			wantChallenge: malformedChallenge,
		},
		{
			name: "empty bearer token", method: "GET", path: "/api/me",
			authorization: []string{"Bearer "},
			wantStatus:    401,
			wantChallenge: malformedChallenge,
		},
		{
			name: "two Authorization headers", method: "GET", path: "/api/me",
			authorization: []string{"Bearer " + valid, "Bearer " + valid},
			wantStatus:    400,
			wantChallenge: `Bearer error="invalid_request", error_description="more than one Authorization header"`,
			wantBody:      map[string]any{"error": "invalid_request"},
		},
		{
			name: "POST", method: "POST", path: "/api/me",
			authorization: []string{"Bearer " + valid},
			wantStatus:    405,
			wantBody:      map[string]any{"error": "method_not_allowed"},
			wantHeaders:   map[string]string{"Allow": "GET, HEAD", "Content-Type": "application/json"},
		},
		{
			name: "unknown path", method: "GET", path: "/api/you",
			wantStatus:  404,
			wantBody:    map[string]any{"error": "not_found"},
			wantHeaders: map[string]string{"Content-Type": "application/json"},
		},
		{
			name: "healthz", method: "GET", path: "/healthz",
			wantStatus: 200,
			wantBody:   map[string]any{"status": "ok"},
		},
		{
			name: "healthz DELETE", method: "DELETE", path: "/healthz",
			wantStatus: 405,
			wantBody:   map[string]any{"error": "method_not_allowed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, api.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tt.authorization {
				req.Header.Add("Authorization", a)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}

			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
			for name, want := range tt.wantHeaders {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tt.wantBody == nil {
				return
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			for k, want := range tt.wantBody {
				if g, _ := json.Marshal(got[k]); string(g) != mustJSON(t, want) {
					t.Errorf("body[%q] = %s, want %s", k, g, mustJSON(t, want))
				}
			}
			for _, part := range strings.Split(strings.TrimPrefix(strings.Join(tt.authorization, " "), "Bearer "), ".") {
				if len(part) >= 16 && strings.Contains(string(body), part) {
					t.Errorf("body echoes the token")
				}
			}
		})
	}
}

func TestAPIWithoutKeysIs503(t *testing.T) {
	ks := testKeys()
	jwks := newJWKSServer(t, ks.rsa1)
	jwks.set(func(s *jwksServer) { s.status = http.StatusBadGateway })
	clock := newFakeClock()
	api := newTestAPI(t, jwks.URL, clock)

	req, err := http.NewRequest("GET", api.URL+"/api/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ks.rsa1.sign(t, claimsAt(clock.Now()), nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body errorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error != "temporarily_unavailable" ||
		resp.Header.Get("Retry-After") == "" || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("got %d %+v, Retry-After %q, WWW-Authenticate %q", resp.StatusCode, body,
			resp.Header.Get("Retry-After"), resp.Header.Get("WWW-Authenticate"))
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		values []string
		token  string
		ok     bool
	}{
		{nil, "", false},
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"BEARER abc"}, "abc", true},
		{[]string{"Bearer   abc  "}, "abc", true},
		{[]string{"Bearer"}, "", true},
		{[]string{"Bearerabc"}, "", false},
		{[]string{"Basic abc"}, "", false},
		{[]string{""}, "", false},
		{[]string{"Bearer a", "Bearer b"}, "", false},
	}
	for _, tt := range tests {
		token, ok := bearerToken(tt.values)
		if token != tt.token || ok != tt.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tt.values, token, ok, tt.token, tt.ok)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
