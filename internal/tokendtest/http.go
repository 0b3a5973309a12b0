package tokendtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tokend/tokend/api/apitest"
)

var (
	validatorOnce sync.Once
	validator     *apitest.Validator
)

// specValidator loads api/openapi.yaml once per test binary (it is
// read-only and safe for concurrent use).
func specValidator(t testing.TB) *apitest.Validator {
	validatorOnce.Do(func() { validator = apitest.NewValidator(t) })
	return validator
}

// Response is a read response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	raw    *http.Response
}

// Cookie returns the named Set-Cookie of the response, or nil.
func (r *Response) Cookie(name string) *http.Cookie {
	for _, c := range r.raw.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response body is not JSON (%v): %s", err, r.Body)
	}
}

// ErrorCode returns the OAuth error code of an error response.
func (r *Response) ErrorCode(t testing.TB) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.JSON(t, &e)
	return e.Error
}

// Do sends req and checks the response against the OpenAPI spec.
func (s *Server) Do(t testing.TB, req *http.Request) *Response {
	t.Helper()
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	specValidator(t).ValidateResponse(t, req, resp, body)
	s.scan.observe(req, reqBody, resp, body)
	checkSecurityHeaders(t, req, resp, body)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body, raw: resp}
}

// NewRequest builds a request to path on s.
func (s *Server) NewRequest(t testing.TB, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Get sends a GET with optional header pairs.
func (s *Server) Get(t testing.TB, path string, header ...string) *Response {
	t.Helper()
	req := s.NewRequest(t, http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return s.Do(t, req)
}

// AdminGet sends a GET to the admin listener.
func (s *Server) AdminGet(t testing.TB, path string) *Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.AdminTS.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.Do(t, req)
}

// PostJSON posts v (a string is sent verbatim) as JSON with optional header
// pairs.
func (s *Server) PostJSON(t testing.TB, path string, v any, header ...string) *Response {
	t.Helper()
	var body []byte
	switch b := v.(type) {
	case string:
		body = []byte(b)
	case nil:
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	req := s.NewRequest(t, http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return s.Do(t, req)
}

// PostForm posts form values to path.
func (s *Server) PostForm(t testing.TB, path string, v url.Values) *Response {
	t.Helper()
	req := s.NewRequest(t, http.MethodPost, path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return s.Do(t, req)
}

// checkSecurityHeaders holds every response to tokend's header promises:
// nosniff and no-referrer everywhere, no-store wherever a token appears.
func checkSecurityHeaders(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	h := resp.Header
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("%s %s → %d lacks X-Content-Type-Options: nosniff or Referrer-Policy: no-referrer", req.Method, req.URL.Path, resp.StatusCode)
	}
	carriesToken := bytes.Contains(body, []byte(`"access_token":`)) || bytes.Contains(body, []byte(`"refresh_token":`))
	for _, c := range resp.Cookies() {
		if c.Name == "tokend_refresh" {
			carriesToken = true
		}
	}
	if carriesToken && !strings.Contains(h.Get("Cache-Control"), "no-store") {
		t.Errorf("%s %s → %d carries a token without Cache-Control: no-store", req.Method, req.URL.Path, resp.StatusCode)
	}
}
