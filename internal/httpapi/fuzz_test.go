package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/tokend/tokend/internal/tokendtest"
)

// fuzzEndpoints are the endpoints that read a body, a cookie or a header.
var fuzzEndpoints = []struct{ method, path, ctype string }{
	{"POST", "/auth/signup", "application/json"},
	{"POST", "/auth/login", "application/json"},
	{"POST", "/auth/refresh", "application/json"},
	{"POST", "/auth/logout", ""},
	{"POST", "/auth/password/forgot", "application/json"},
	{"POST", "/auth/password/reset", "application/json"},
	{"POST", "/oauth/token", "application/x-www-form-urlencoded"},
	{"POST", "/oauth/revoke", "application/x-www-form-urlencoded"},
	{"GET", "/userinfo", ""},
	{"GET", "/auth/sessions", ""},
	{"DELETE", "/auth/sessions/x", ""},
	{"OPTIONS", "/auth/login", ""},
}

// FuzzEndpoints sends arbitrary bodies, cookies and Authorization headers to
// every endpoint of a real in-process tokend: nothing answers 5xx or
// panics, and every error is in the OAuth shape.
func FuzzEndpoints(f *testing.F) {
	s := tokendtest.Start(f, tokendtest.Options{Log: discardLog{}})
	for i := range fuzzEndpoints {
		f.Add(uint8(i), []byte(`{"email":"demo@example.com","password":"demo-password","client_id":"web"}`), "", "")
		f.Add(uint8(i), []byte("grant_type=password&username=a%40b.c&password=p&client_id=mobile"), "tokend_refresh=x", "Bearer x")
	}
	f.Add(uint8(6), []byte("grant_type=refresh_token&refresh_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&client_id=mobile"), "", "")
	f.Add(uint8(1), []byte(`{"email":"a@b.c","email":"x","password":{"a":[1,2]},"client_id":null}`), "", "")
	f.Add(uint8(5), []byte(`{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","password":"long enough"}`), "", "")
	f.Add(uint8(2), []byte{}, "tokend_refresh=a; tokend_refresh=b", "")
	f.Fuzz(func(t *testing.T, which uint8, body []byte, cookie, authz string) {
		ep := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		req := httptest.NewRequest(ep.method, ep.path, bytes.NewReader(body))
		if ep.ctype != "" {
			req.Header.Set("Content-Type", ep.ctype)
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s answered %d: %s", ep.method, ep.path, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct {
				Error string `json:"error"`
			}
			if rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%s %s: error %d not in the OAuth shape: %q", ep.method, ep.path, rec.Code, rec.Body)
			}
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatal("no nosniff")
		}
	})
}

type discardLog struct{}

func (discardLog) Write(p []byte) (int, error) { return len(p), nil }
