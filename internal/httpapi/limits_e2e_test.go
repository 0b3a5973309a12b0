package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/tokendtest"
)

// TestHeaderLimit: request headers over tokend's limit (32 KiB, the request
// line included) get 431 in the OAuth error shape, with the usual security
// headers, on every route (net/http's own limit, above tokend's, would
// answer text/plain). Headers under it are served as usual.
func TestHeaderLimit(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	for _, tc := range []struct {
		name, method, path string
		header             http.Header
		want               int
	}{
		{"one big header", "GET", "/healthz", http.Header{"X-Big": {strings.Repeat("a", 33<<10)}}, 431},
		{"many headers", "GET", "/.well-known/openid-configuration", manyHeaders(40, 1<<10), 431},
		{"a big cookie on a page", "GET", "/oauth/authorize?client_id=mobile", http.Header{"Cookie": {"x=" + strings.Repeat("a", 40<<10)}}, 431},
		{"a big Authorization at the token endpoint", "POST", "/oauth/token", http.Header{"Authorization": {"Basic " + strings.Repeat("A", 40<<10)},
			"Content-Type": {"application/x-www-form-urlencoded"}}, 431},
		{"a long URL", "GET", "/oauth/authorize?state=" + strings.Repeat("s", 33<<10), nil, 431},
		{"under the limit", "GET", "/healthz", http.Header{"X-Big": {strings.Repeat("a", 30<<10)}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := s.NewRequest(t, tc.method, tc.path, strings.NewReader("grant_type=password"))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			r := s.Do(t, req)
			if r.Status != tc.want {
				t.Fatalf("got %d %s, want %d", r.Status, r.Body, tc.want)
			}
			if tc.want == 431 {
				if r.ErrorCode(t) != "invalid_request" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") ||
					r.Header.Get("X-Request-Id") == "" || r.Header.Get("Cache-Control") != "no-store" {
					t.Fatalf("431 %v %s", r.Header, r.Body)
				}
			}
		})
	}
}

func manyHeaders(n, size int) http.Header {
	h := http.Header{}
	for i := range n {
		h.Set("X-Pad-"+strings.Repeat("p", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", size))
	}
	return h
}

// chunked hides a body's length, so the server learns it is too large only
// while reading it.
type chunked struct{ io.Reader }

// TestBrowserPageErrors: on the pages a person looks at (the login,
// sign-up, forgot and reset pages, the authorization and logout endpoints),
// a body over 64 KiB and a method the route does not take are HTML message
// pages (413, 405 with Allow) under the pages' CSP; the API routes keep the
// JSON error.
func TestBrowserPageErrors(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	big := "csrf=x&email=" + strings.Repeat("x", 70<<10)
	for _, tc := range []struct {
		name, method, path string
		body               string
		hide               bool // send the body chunked
		status             int
		allow              string
		page               bool
	}{
		{"login, large body", "POST", "/login", big, false, 413, "", true},
		{"login, large chunked body", "POST", "/login", big, true, 413, "", true},
		{"signup, large body", "POST", "/signup", big, false, 413, "", true},
		{"forgot, large chunked body", "POST", "/forgot", big, true, 413, "", true},
		{"authorize, large body", "POST", "/oauth/authorize", big, false, 413, "", true},
		{"authorize, large chunked body", "POST", "/oauth/authorize", big, true, 413, "", true},
		{"logout, large body", "POST", "/oauth/logout", big, false, 413, "", true},
		{"logout, large chunked body", "POST", "/oauth/logout", big, true, 413, "", true},
		{"login by GET", "GET", "/login", "", false, 405, "POST", true},
		{"authorize by PUT", "PUT", "/oauth/authorize", "", false, 405, "GET, POST", true},
		{"logout by DELETE", "DELETE", "/oauth/logout", "", false, 405, "GET, POST", true},
		{"signup by PATCH", "PATCH", "/signup", "", false, 405, "GET, POST", true},
		{"reset page by POST", "POST", "/reset", "", false, 405, "GET, HEAD", true},
		{"token, large body", "POST", "/oauth/token", big, false, 413, "", false},
		{"token by GET", "GET", "/oauth/token", "", false, 405, "POST", false},
		{"auth login by GET", "GET", "/auth/login", "", false, 405, "OPTIONS, POST", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.hide {
					body = chunked{body}
				}
			}
			req := s.NewRequest(t, tc.method, tc.path, body)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			r := s.Do(t, req)
			if r.Status != tc.status || r.Header.Get("Allow") != tc.allow {
				t.Fatalf("got %d (Allow %q) %s, want %d (Allow %q)", r.Status, r.Header.Get("Allow"), r.Body, tc.status, tc.allow)
			}
			ct := r.Header.Get("Content-Type")
			if tc.page {
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(r.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
					!strings.Contains(string(r.Body), "<h1>") {
					t.Fatalf("want an HTML page, got %q %s", ct, r.Body)
				}
			} else if !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("want JSON, got %q %s", ct, r.Body)
			}
		})
	}
}
