package httpapi_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/tokend/tokend/api"
	"github.com/tokend/tokend/api/apitest"
	"github.com/tokend/tokend/internal/httpapi"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestRoutesMatchSpec walks the router and the OpenAPI document: a route
// missing from either fails.
func TestRoutesMatchSpec(t *testing.T) {
	ms := mailtest.Start(t, mailtest.Options{})
	s := tokendtest.Start(t, tokendtest.Options{SMTPURL: ms.URL()})
	routes := map[string][]string{}
	walk := func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := r.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, _ := r.GetMethods()
		for _, m := range methods {
			if m == "HEAD" {
				continue // served wherever GET is; the spec lists GET
			}
			if !slices.Contains(routes[path], m) {
				routes[path] = append(routes[path], m)
			}
		}
		return nil
	}
	for _, srv := range []*httpapi.Server{s.HTTP, s.Admin} {
		if err := srv.Router().Walk(walk); err != nil {
			t.Fatal(err)
		}
	}
	spec := apitest.NewValidator(t).Paths()
	for path, methods := range routes {
		slices.Sort(methods)
		if got := spec[path]; !slices.Equal(got, methods) {
			t.Errorf("%s: router serves %v, the spec documents %v", path, methods, got)
		}
	}
	for path, methods := range spec {
		if _, ok := routes[path]; !ok {
			t.Errorf("%s %v is in the spec but not served", path, methods)
		}
	}
	if len(routes) < 20 {
		t.Fatalf("only %d routes: the walk is broken", len(routes))
	}
}

func TestDocsEndpoints(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	r := s.Get(t, "/openapi.yaml")
	if r.Status != 200 || string(r.Body) != string(api.Spec) || r.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("/openapi.yaml: %d %v", r.Status, r.Header)
	}
	r = s.Get(t, "/docs")
	if r.Status != 200 || r.Header.Get("Content-Security-Policy") != api.DocsCSP || !strings.Contains(string(r.Body), "/docs/redoc.standalone.js") {
		t.Fatalf("/docs: %d %v", r.Status, r.Header)
	}
	if strings.Contains(string(r.Body), "https://") {
		t.Fatal("/docs refers to another host")
	}
	if r := s.Get(t, "/docs/redoc.standalone.js"); r.Status != 200 || len(r.Body) < 100000 {
		t.Fatalf("redoc bundle: %d, %d bytes", r.Status, len(r.Body))
	}
	if r := s.Get(t, "/docs/LICENSE.redoc"); r.Status != 200 || !strings.Contains(string(r.Body), "MIT") {
		t.Fatalf("redoc license: %d", r.Status)
	}
}

// metricValue returns the sum of a metric's samples whose labels contain
// every given label pair.
func metricValue(t *testing.T, body, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	found := false
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue // another metric with this prefix
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		f := strings.Fields(line)
		if _, err := fmtSscan(f[len(f)-1], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return -1
	}
	return sum
}

func TestMetrics(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{})
	// The counters tell real accounts from unknown ones: they are served on
	// the admin listener only.
	wantError(t, s.Get(t, "/metrics"), 404, "not_found")
	before := string(s.AdminGet(t, "/metrics").Body)
	createUser(t, s, "metrics@example.com")
	tr := nativeLogin(t, s, "metrics@example.com", "")
	t1 := refreshed(t, nativeRefresh(t, s, tr.RefreshToken)).RefreshToken
	_ = t1
	s.Clock.Advance(time.Minute)
	wantError(t, nativeRefresh(t, s, tr.RefreshToken), 400, "invalid_grant") // reuse
	wantError(t, s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"metrics@example.com"},
		"password": {"wrong password"}, "client_id": {"mobile"}}), 400, "invalid_grant")
	after := string(s.AdminGet(t, "/metrics").Body)
	checks := []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"tokend_tokens_issued_total", []string{`grant="password"`, `alg="RS256"`}, 1},
		{"tokend_tokens_issued_total", []string{`grant="refresh_token"`}, 1},
		{"tokend_refresh_reuse_detected_total", nil, 1},
		{"tokend_login_failures_total", []string{`reason="wrong_password"`}, 1},
		{"tokend_http_requests_total", []string{`route="/oauth/token"`, `code="200"`}, 2},
		{"tokend_http_requests_total", []string{`route="/oauth/token"`, `code="400"`}, 2},
		{"tokend_http_request_duration_seconds_count", []string{`route="/oauth/token"`}, 4},
	}
	for _, c := range checks {
		b, a := metricValue(t, before, c.name, c.labels...), metricValue(t, after, c.name, c.labels...)
		if b < 0 {
			b = 0
		}
		if a-b != c.delta {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, a-b, c.delta)
		}
	}
	for _, present := range []string{"tokend_signing_key_age_seconds", "tokend_mail_outbox_pending", "go_sql_open_connections",
		"tokend_build_info", "tokend_login_throttled_total", "tokend_mail_sent_total", "process_resident_memory_bytes"} {
		if !strings.Contains(after, present) {
			t.Errorf("/metrics lacks %s", present)
		}
	}
	if !strings.Contains(after, `tokend_signing_key_age_seconds{alg="EdDSA"}`) {
		t.Error("no key age per algorithm")
	}
}
