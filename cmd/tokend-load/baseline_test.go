package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSignBaseline runs the client-credentials loop against the
// serve-and-sign floor and checks its answers are what the scenario takes
// for a token: signed EdDSA at+jwt with the client's claims, and that a
// request the scenario would not make is refused.
func TestSignBaseline(t *testing.T) {
	h := signHandler("http://baseline.test")
	srv := httptest.NewServer(h)
	defer srv.Close()

	cfg := Config{Targets: []string{srv.URL}, Scenario: scClientCredentials, Workers: 4, Duration: 300 * time.Millisecond,
		Warmup: 50 * time.Millisecond, ClientID: loadServerClient, ClientSecret: newSecretRef("not-checked")}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK == 0 || len(res.Errors) > 0 {
		t.Fatalf("client-credentials against the floor: %d answers, errors %v", res.OK, res.Errors)
	}

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", "x")
	h.ServeHTTP(rec, req)
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil || rec.Code != http.StatusOK || tr.TokenType != "Bearer" {
		t.Fatalf("answer %d %q", rec.Code, rec.Body)
	}
	parts := strings.Split(tr.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tr.AccessToken)
	}
	head, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	var c edClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Sub != "svc" || c.ClientID != "svc" || c.Iss != "http://baseline.test" ||
		len(c.Jti) != 22 || !strings.Contains(string(head), `"typ":"at+jwt"`) || len(sig) != ed25519.SignatureSize {
		t.Fatalf("token header %s claims %s (%v)", head, payload, err)
	}

	for _, bad := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=password")),
		httptest.NewRequest(http.MethodPut, "/oauth/token", nil),
	} {
		bad.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		bad.SetBasicAuth("svc", "x")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, bad)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s %s: %d, want 400", bad.Method, bad.URL, rec.Code)
		}
	}
}

// TestStockSize: the code-exchange stock covers the run at the ceiling
// rate, and never falls under the minimum.
func TestStockSize(t *testing.T) {
	for _, tc := range []struct {
		workers          int
		warmup, duration time.Duration
		want             int
	}{
		{64, time.Second, 10 * time.Second, 1032},
		{64, 2 * time.Second, 10 * time.Second, 1125},
		{6000, 0, time.Second, codeStockMin},
		{1, 0, time.Second, 6000},
	} {
		if got := stockSize(Config{Workers: tc.workers, Warmup: tc.warmup, Duration: tc.duration}); got != tc.want {
			t.Errorf("%d workers, %s + %s: %d codes each, want %d", tc.workers, tc.warmup, tc.duration, got, tc.want)
		}
	}
}
