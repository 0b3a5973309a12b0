package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// every endpoint of a real in-process tokend on SQLite: nothing answers 5xx
// or panics, and every error is in the OAuth shape.
func FuzzEndpoints(f *testing.F) { fuzzEndpointsOn(f, "sqlite") }

// FuzzEndpointsPostgres is FuzzEndpoints on a Postgres-backed tokend (it
// skips without TOKEND_TEST_POSTGRES_URL). Postgres refuses text that SQLite
// stores as given (NUL, invalid UTF-8), so some inputs fail on it only.
// Each fuzzing worker runs on a fresh schema of its own.
func FuzzEndpointsPostgres(f *testing.F) { fuzzEndpointsOn(f, "postgres") }

// fuzzTargets are the FuzzEndpoints* targets. Each one also replays the
// inputs saved under the others' testdata/fuzz directories, so that a
// finding on one backend is a regression case on both.
var fuzzTargets = map[string]string{"sqlite": "FuzzEndpoints", "postgres": "FuzzEndpointsPostgres"}

func fuzzEndpointsOn(f *testing.F, backend string) {
	s := tokendtest.Start(f, tokendtest.Options{Log: discardLog{}, Backend: backend})
	for b, target := range fuzzTargets {
		if b != backend {
			addCorpus(f, filepath.Join("testdata", "fuzz", target))
		}
	}
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

// addCorpus adds the inputs saved in dir, a testdata/fuzz directory of
// another FuzzEndpoints* target, as seeds.
func addCorpus(f *testing.F, dir string) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		vals, err := parseCorpusFile(data)
		if err != nil {
			f.Fatalf("%s: %v", path, err)
		}
		if len(vals) != 4 {
			f.Fatalf("%s: %d inputs, want FuzzEndpoints' 4", path, len(vals))
		}
		which, ok0 := vals[0].(uint8)
		body, ok1 := vals[1].([]byte)
		cookie, ok2 := vals[2].(string)
		authz, ok3 := vals[3].(string)
		if !ok0 || !ok1 || !ok2 || !ok3 {
			f.Fatalf("%s: not the inputs of FuzzEndpoints (uint8, []byte, string, string)", path)
		}
		f.Add(which, body, cookie, authz)
	}
}

// parseCorpusFile decodes a file in go test's corpus format ("go test fuzz
// v1", then one Go conversion per line) holding the types FuzzEndpoints
// takes: uint8 (also written byte), []byte and string.
func parseCorpusFile(data []byte) ([]any, error) {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != "go test fuzz v1" {
		return nil, errors.New("not a go test fuzz v1 file")
	}
	var vals []any
	for _, line := range lines[1:] {
		expr, err := parser.ParseExpr(line)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		call, ok := expr.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return nil, fmt.Errorf("%q: not a conversion", line)
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok {
			return nil, fmt.Errorf("%q: not a literal", line)
		}
		var v any
		switch typ := types.ExprString(call.Fun); {
		case (typ == "uint8" || typ == "byte") && lit.Kind == token.INT:
			n, err := strconv.ParseUint(lit.Value, 0, 8)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", line, err)
			}
			v = uint8(n)
		case (typ == "uint8" || typ == "byte") && lit.Kind == token.CHAR:
			r, _, tail, err := strconv.UnquoteChar(lit.Value[1:len(lit.Value)-1], '\'')
			if err != nil || tail != "" || r > 0xff {
				return nil, fmt.Errorf("%q: not a byte", line)
			}
			v = uint8(r)
		case (typ == "[]byte" || typ == "string") && lit.Kind == token.STRING:
			str, err := strconv.Unquote(lit.Value)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", line, err)
			}
			v = str
			if typ == "[]byte" {
				v = []byte(str)
			}
		default:
			return nil, fmt.Errorf("%q: unsupported type", line)
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func TestParseCorpusFile(t *testing.T) {
	// The forms go test writes (byte('…') since Go 1.18) and the ones
	// written by hand in testdata (uint8(n)).
	got, err := parseCorpusFile([]byte("go test fuzz v1\nbyte('\\x80')\nuint8(7)\n[]byte(\"a\\x00\\xff\")\nstring(\"\\u00e9\")\n"))
	want := []any{uint8(0x80), uint8(7), []byte("a\x00\xff"), "é"}
	if err != nil || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Fatalf("got %#v, %v; want %#v", got, err, want)
	}
	for _, bad := range []string{"", "go test fuzz v1\nint(1)", "go test fuzz v1\nbyte('\\u0100')", "go test fuzz v1\nstring(x)"} {
		if _, err := parseCorpusFile([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}
