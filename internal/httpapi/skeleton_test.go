package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func newSkeleton(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := New(Config{Log: testLogger(t)})
	s.route("/test/panic", func(w http.ResponseWriter, r *http.Request) error { panic("boom") }, http.MethodGet)
	s.route("/test/json", func(w http.ResponseWriter, r *http.Request) error {
		m, err := decodeJSON(r, "a", "b")
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, m)
		return nil
	}, http.MethodPost)
	s.route("/test/form", func(w http.ResponseWriter, r *http.Request) error {
		v, err := decodeForm(r)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}, http.MethodPost)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

type errResp struct {
	status int
	header http.Header
	Error  string `json:"error"`
	Desc   string `json:"error_description"`
}

func do(t *testing.T, req *http.Request) errResp {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e errResp
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("error response with Content-Type %q: %s", ct, b)
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Fatalf("error body is not the OAuth shape: %s", b)
		}
	}
	e.status, e.header = resp.StatusCode, resp.Header
	return e
}

func req(t *testing.T, method, u, ctype, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	return r
}

func TestSkeleton(t *testing.T) {
	_, ts := newSkeleton(t)
	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"unknown path", req(t, "GET", ts.URL+"/nope", "", ""), 404, "not_found"},
		{"wrong method", req(t, "DELETE", ts.URL+"/healthz", "", ""), 405, "method_not_allowed"},
		{"panic", req(t, "GET", ts.URL+"/test/panic", "", ""), 500, "server_error"},
		{"body too large", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"`+strings.Repeat("x", 70<<10)+`"}`), 413, "invalid_request"},
		{"json wrong content type", req(t, "POST", ts.URL+"/test/json", "text/plain", `{"a":"x"}`), 400, "invalid_request"},
		{"json no content type", req(t, "POST", ts.URL+"/test/json", "", `{"a":"x"}`), 400, "invalid_request"},
		{"json malformed content type", req(t, "POST", ts.URL+"/test/json", "application/json; ;;", `{"a":"x"}`), 400, "invalid_request"},
		{"json invalid", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":`), 400, "invalid_request"},
		{"json array", req(t, "POST", ts.URL+"/test/json", "application/json", `["a"]`), 400, "invalid_request"},
		{"json duplicate key", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"x","a":"y"}`), 400, "invalid_request"},
		{"json duplicate unknown key", req(t, "POST", ts.URL+"/test/json", "application/json", `{"z":1,"z":2}`), 400, "invalid_request"},
		{"json number for string", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":1}`), 400, "invalid_request"},
		{"json trailing data", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"x"} {}`), 400, "invalid_request"},
		{"json empty body", req(t, "POST", ts.URL+"/test/json", "application/json", ``), 400, "invalid_request"},
		{"json invalid utf-8 in a field", req(t, "POST", ts.URL+"/test/json", "application/json", "{\"a\":\"pass\xffword\"}"), 400, "invalid_request"},
		{"json invalid utf-8 in an ignored field", req(t, "POST", ts.URL+"/test/json", "application/json", "{\"a\":\"x\",\"z\":\"\xc3\"}"), 400, "invalid_request"},
		{"json invalid utf-8 in a key", req(t, "POST", ts.URL+"/test/json", "application/json", "{\"\xed\xa0\x80\":\"x\"}"), 400, "invalid_request"},
		{"json lone high surrogate", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"pass\ud800word"}`), 400, "invalid_request"},
		{"json lone high surrogate at the end", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"\uD800"}`), 400, "invalid_request"},
		{"json lone low surrogate", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"\udc00x"}`), 400, "invalid_request"},
		{"json high surrogate then a non-surrogate", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"\ud800\u0041"}`), 400, "invalid_request"},
		{"json two high surrogates", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"\ud800\ud800"}`), 400, "invalid_request"},
		{"json pair then a lone low surrogate", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"\ud83d\ude00\ude00"}`), 400, "invalid_request"},
		{"json lone surrogate in an ignored field", req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"x","z":["\udfff"]}`), 400, "invalid_request"},
		{"form query params", req(t, "POST", ts.URL+"/test/form?a=b", "application/x-www-form-urlencoded", "c=d"), 400, "invalid_request"},
		{"form duplicate", req(t, "POST", ts.URL+"/test/form", "application/x-www-form-urlencoded", "a=1&a=2"), 400, "invalid_request"},
		{"form bad escape", req(t, "POST", ts.URL+"/test/form", "application/x-www-form-urlencoded", "a=%zz"), 400, "invalid_request"},
		{"form as json", req(t, "POST", ts.URL+"/test/form", "application/json", `{"a":"b"}`), 400, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := do(t, tc.req)
			if got.status != tc.status || got.Error != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", got.status, got.Error, got.Desc, tc.status, tc.code)
			}
			for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
				if got.header.Get(h) != want {
					t.Fatalf("%s = %q", h, got.header.Get(h))
				}
			}
			if got.header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
		})
	}
	got := do(t, req(t, "POST", ts.URL+"/healthz", "", ""))
	if got.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("405 Allow = %q", got.header.Get("Allow"))
	}
}

func TestDecodeAccepted(t *testing.T) {
	_, ts := newSkeleton(t)
	resp, err := http.Post(ts.URL+"/test/json", "application/json; charset=utf-8", strings.NewReader(`{"a":"x","extra":{"n":[1,2]},"b":"y"}`))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 200 || m["a"] != "x" || m["b"] != "y" || len(m) != 2 {
		t.Fatalf("decodeJSON = %d %v", resp.StatusCode, m)
	}
	resp, err = http.PostForm(ts.URL+"/test/form", url.Values{"a": {"1"}, "b": {"x y"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("decodeForm = %d", resp.StatusCode)
	}
}

// TestDecodeText: what encoding/json decodes faithfully is accepted: escaped
// surrogate pairs, U+FFFD itself, and a backslash followed by "ud800" as
// text.
func TestDecodeText(t *testing.T) {
	_, ts := newSkeleton(t)
	for _, tc := range []struct{ body, want string }{
		{`{"a":"\ud83d\ude00"}`, "\U0001f600"},
		{`{"a":"\uD83D\uDE00\u00e9"}`, "\U0001f600\u00e9"},
		{`{"a":"\\ud800"}`, `\ud800`},
		{`{"a":"\\\ud83d\ude00"}`, "\\\U0001f600"},
		{`{"a":"\"\ud83d\ude00"}`, "\"\U0001f600"},
		{`{"a":"\ufffd"}`, "\ufffd"},
		{"{\"a\":\"\ufffd\"}", "\ufffd"},
	} {
		resp, err := http.Post(ts.URL+"/test/json", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 200 || m["a"] != tc.want {
			t.Errorf("%s: %d %+q, want %+q", tc.body, resp.StatusCode, m["a"], tc.want)
		}
	}
	// An escaped quote does not end the string the scan is in.
	if got := do(t, req(t, "POST", ts.URL+"/test/json", "application/json", `{"a":"x","z":"\u0022\"\ud800"}`)); got.status != 400 {
		t.Errorf("a lone surrogate after escaped quotes: %d", got.status)
	}
}

func TestRequestIDPropagation(t *testing.T) {
	_, ts := newSkeleton(t)
	r := req(t, "GET", ts.URL+"/healthz", "", "")
	r.Header.Set("X-Request-Id", "abc-123")
	if got := do(t, r); got.header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("request id not propagated: %q", got.header.Get("X-Request-Id"))
	}
	r = req(t, "GET", ts.URL+"/healthz", "", "")
	r.Header.Set("X-Request-Id", "<script>")
	if got := do(t, r); got.header.Get("X-Request-Id") == "<script>" {
		t.Fatal("unsafe request id echoed")
	}
}

func TestSanitize(t *testing.T) {
	if got := sanitize("a\"b\\c\nd\u00e9e"); got != "a'b'cde" {
		t.Fatalf("sanitize = %q", got)
	}
}
