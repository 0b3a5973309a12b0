package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	base := config{
		issuer: "http://127.0.0.1:8080", audience: "api", listen: "127.0.0.1:9090",
		leeway: 30 * time.Second, logLevel: slog.LevelInfo,
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config) // changes to base; nil with wantErr
		wantErr string          // substring of the usage error
	}{
		{
			name: "flags",
			args: []string{"--issuer", "http://127.0.0.1:8080", "--audience", "api"},
			want: func(*config) {},
		},
		{
			name: "environment",
			env: map[string]string{
				"RS_ISSUER": "http://127.0.0.1:8080", "RS_AUDIENCE": "api", "RS_JWKS_URL": "http://keys.test/jwks",
				"RS_LISTEN": ":0", "RS_LEEWAY": "5s", "RS_LOG_LEVEL": "debug",
			},
			want: func(c *config) {
				c.jwksURL, c.listen, c.leeway, c.logLevel = "http://keys.test/jwks", ":0", 5*time.Second, slog.LevelDebug
			},
		},
		{
			name: "flags win over the environment",
			args: []string{"-audience=api", "-leeway=0s", "-listen=127.0.0.1:1", "-log-level=warn"},
			env:  map[string]string{"RS_ISSUER": "http://127.0.0.1:8080", "RS_AUDIENCE": "other", "RS_LEEWAY": "5s", "RS_LISTEN": ":0"},
			want: func(c *config) { c.leeway, c.listen, c.logLevel = 0, "127.0.0.1:1", slog.LevelWarn },
		},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
		{name: "no issuer", args: []string{"--audience", "api"}, wantErr: "--issuer (or RS_ISSUER) is required"},
		{name: "no audience", args: []string{"--issuer", "http://127.0.0.1:8080"}, wantErr: "--audience (or RS_AUDIENCE) is required"},
		{name: "issuer not a URL", args: []string{"--issuer", "127.0.0.1:8080", "--audience", "api"}, wantErr: "--issuer"},
		{name: "JWKS URL relative", args: []string{"--issuer", "http://a.test", "--audience", "api", "--jwks-url", "/jwks"}, wantErr: "--jwks-url"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "flag provided but not defined: -nope"},
		{name: "bad leeway flag", args: []string{"--leeway", "soon"}, wantErr: "invalid value"},
		{name: "negative leeway", args: []string{"--issuer", "http://a.test", "--audience", "api", "--leeway", "-1s"}, wantErr: "--leeway"},
		{name: "bad RS_LEEWAY", env: map[string]string{"RS_LEEWAY": "soon"}, wantErr: "RS_LEEWAY"},
		{name: "bad RS_LOG_LEVEL", env: map[string]string{"RS_LOG_LEVEL": "loud"}, wantErr: "RS_LOG_LEVEL"},
		{name: "positional argument", args: []string{"--issuer", "http://a.test", "--audience", "api", "serve"}, wantErr: `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			got, err := parseConfig(tt.args, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(usageLine(err), "\n") {
					t.Errorf("usage error %q spans lines", usageLine(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			want := base
			tt.want(&want)
			if got != want {
				t.Errorf("config = %+v, want %+v", got, want)
			}
		})
	}
}

func TestPrintUsage(t *testing.T) {
	var b strings.Builder
	printUsage(&b)
	for _, name := range []string{"-issuer", "-audience", "-jwks-url", "-listen", "-leeway", "RS_ISSUER"} {
		if !strings.Contains(b.String(), name) {
			t.Errorf("usage lacks %s:\n%s", name, b.String())
		}
	}
}

// fakeIssuer serves a discovery document and, through jwks, the JWKS.
func fakeIssuer(t *testing.T, jwks *jwksServer, discovery func(issuer string) (int, string)) *httptest.Server {
	t.Helper()
	var iss *httptest.Server
	iss = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			status, body := discovery(iss.URL)
			w.WriteHeader(status)
			io.WriteString(w, body)
		case "/.well-known/jwks.json":
			jwks.serveHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(iss.Close)
	return iss
}

func discoveryDoc(issuer, jwksURI string) string {
	b, _ := json.Marshal(map[string]any{"issuer": issuer, "jwks_uri": jwksURI, "token_endpoint": issuer + "/oauth/token"})
	return string(b)
}

func TestDiscoverJWKSURL(t *testing.T) {
	tests := []struct {
		name      string
		discovery func(issuer string) (int, string)
		want      string // "" means an error; "ISSUER" is replaced by the issuer
	}{
		{"document", func(iss string) (int, string) { return 200, discoveryDoc(iss, "https://keys.test/jwks") }, "https://keys.test/jwks"},
		{"404", func(string) (int, string) { return 404, "not found" }, ""},
		{"not JSON", func(string) (int, string) { return 200, "<html>" }, ""},
		{"another issuer", func(string) (int, string) { return 200, discoveryDoc("https://evil.test", "https://evil.test/jwks") }, ""},
		{"no jwks_uri", func(iss string) (int, string) { return 200, discoveryDoc(iss, "") }, ""},
		{"relative jwks_uri", func(iss string) (int, string) { return 200, discoveryDoc(iss, "/jwks") }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := fakeIssuer(t, nil, tt.discovery)
			got, err := discoverJWKSURL(context.Background(), http.DefaultClient, iss.URL)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("discoverJWKSURL = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("discoverJWKSURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if got := defaultJWKSURL("http://127.0.0.1:8080/"); got != "http://127.0.0.1:8080/.well-known/jwks.json" {
		t.Errorf("defaultJWKSURL = %q", got)
	}
}

// TestServe runs the real program on 127.0.0.1:0 against a fake tokend, with
// and without a working discovery document, and stops it like SIGTERM would.
func TestServe(t *testing.T) {
	tests := []struct {
		name      string
		discovery func(issuer string) (int, string)
	}{
		{"discovered JWKS URL", func(iss string) (int, string) { return 200, discoveryDoc(iss, iss+"/.well-known/jwks.json") }},
		{"fallback JWKS URL", func(string) (int, string) { return 500, "down" }},
	}
	ks := testKeys()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwks := newJWKSServer(t, ks.ed1)
			iss := fakeIssuer(t, jwks, tt.discovery)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := config{issuer: iss.URL, audience: testAudience, leeway: 30 * time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			var serveErr error
			done := make(chan struct{})
			go func() {
				serveErr = serve(ctx, ln, cfg, testLogger(t))
				close(done)
			}()
			t.Cleanup(func() {
				cancel()
				<-done
			})

			// serve uses the real clock.
			claims := claimsAt(time.Now())
			claims["iss"] = iss.URL
			req, err := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/me", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+ks.ed1.sign(t, claims, nil))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var me meResponse
			err = json.NewDecoder(resp.Body).Decode(&me)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || me.Sub != "user-1" {
				t.Fatalf("GET /api/me = %d %+v (%v)", resp.StatusCode, me, err)
			}
			if got := jwks.requests.Load(); got != 1 {
				t.Errorf("JWKS requests = %d, want 1 (the warm-up)", got)
			}

			cancel()
			select {
			case <-done:
				if serveErr != nil {
					t.Fatalf("serve: %v", serveErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
	}
}

func TestRunReportsListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config{issuer: "http://127.0.0.1:1", audience: "api", listen: ln.Addr().String()}
	err = run(context.Background(), cfg, testLogger(t))
	if err == nil || !strings.HasPrefix(err.Error(), "listen:") {
		t.Fatalf("run = %v, want a listen error", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("run error %v does not wrap the net error", err)
	}
}
