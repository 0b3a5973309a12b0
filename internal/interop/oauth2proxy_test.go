//go:build unix

package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// TestOAuth2Proxy: oauth2-proxy, built from its Go module, as a generic OIDC
// relying party of tokend (a server client with a secret, PKCE S256) in
// front of an upstream. A browser opens the proxy, is sent to tokend's
// login page, is kept there by a wrong password, signs in and reaches the
// upstream, which sees the user's sub in X-Forwarded-User and the ID token
// in Authorization; /oauth2/auth answers with X-Auth-Request-User.
func TestOAuth2Proxy(t *testing.T) {
	bin := requireOAuth2Proxy(t)
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		// oauth2-proxy checks the ID token's exp against the wall clock.
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name, Clock: clock.NewFake(time.Now())})
		ctx := context.Background()
		const email, password = "proxy-user@example.com", "proxy user password"
		user, err := s.Users.CreateVerified(ctx, email, password, audit.Meta{})
		if err != nil {
			t.Fatal(err)
		}

		up := newEchoUpstream(t)
		addr := freeAddr(t)
		proxyURL := "http://" + addr
		_, sec, err := s.Clients.Create(ctx, clients.Spec{ID: "oauth2-proxy", Kind: store.ClientServer,
			RedirectURIs: []string{proxyURL + "/oauth2/callback"}}, s.Clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		startOAuth2Proxy(t, bin, []string{
			"--provider=oidc",
			"--oidc-issuer-url=" + s.URL,
			"--client-id=oauth2-proxy",
			"--redirect-url=" + proxyURL + "/oauth2/callback",
			"--upstream=" + up.URL,
			"--http-address=" + addr,
			"--email-domain=*",
			"--cookie-secure=false",
			"--code-challenge-method=S256",
			"--skip-provider-button",
			"--set-xauthrequest",
			"--pass-authorization-header",
			"--request-logging=false",
		}, []string{
			// Secrets by environment, not on the command line.
			"OAUTH2_PROXY_CLIENT_SECRET=" + sec.Reveal(),
			"OAUTH2_PROXY_COOKIE_SECRET=" + randomHex(t, 16), // 32 bytes
		}, proxyURL)

		jar, _ := cookiejar.New(nil)
		br := &http.Client{Jar: jar, Timeout: 30 * time.Second}

		// Opening the proxy lands on tokend's login page.
		resp, err := br.Get(proxyURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		page := readAll(t, resp)
		login := loginForm(t, resp.Request.URL, page)
		if !strings.HasPrefix(login.action, s.URL+"/") {
			t.Fatalf("the proxy sent the browser to %s (form %s), not to tokend's login page", resp.Request.URL, login.action)
		}

		// A wrong password keeps the browser on tokend's login page.
		resp, err = br.PostForm(login.action, login.with(email, "not the password"))
		if err != nil {
			t.Fatal(err)
		}
		page = readAll(t, resp)
		if !strings.HasPrefix(resp.Request.URL.String(), s.URL+"/") || up.count() != 0 {
			t.Fatalf("a wrong password left tokend: %d at %s, upstream hit %d times", resp.StatusCode, resp.Request.URL, up.count())
		}
		login = loginForm(t, resp.Request.URL, page)

		// The right one goes through the callback to the upstream.
		resp, err = br.PostForm(login.action, login.with(email, password))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != proxyURL+"/" || body != "upstream" {
			t.Fatalf("signed in, the browser got %d at %s: %.300s", resp.StatusCode, resp.Request.URL, body)
		}
		h := up.last()
		if got := h.Get("X-Forwarded-User"); got != user.ID {
			t.Fatalf("X-Forwarded-User %q, want the sub %q", got, user.ID)
		}
		if got := h.Get("X-Forwarded-Email"); got != email {
			t.Fatalf("X-Forwarded-Email %q", got)
		}
		if got := resp.Header.Get("Gap-Auth"); got != email {
			t.Fatalf("Gap-Auth %q", got)
		}

		// The ID token the proxy holds (and passes on) is tokend's, for it.
		raw, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
		if !ok {
			t.Fatalf("no ID token in Authorization: %q", h.Get("Authorization"))
		}
		provider, err := oidc.NewProvider(ctx, s.URL)
		if err != nil {
			t.Fatal(err)
		}
		idt, err := provider.Verifier(&oidc.Config{ClientID: "oauth2-proxy"}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("the ID token the proxy holds: %v", err)
		}
		var claims struct {
			Email         string `json:"email"`
			EmailVerified bool   `json:"email_verified"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != user.ID || idt.Issuer != s.URL || claims.Email != email || !claims.EmailVerified {
			t.Fatalf("ID token sub %q iss %q claims %+v", idt.Subject, idt.Issuer, claims)
		}

		// The auth_request endpoint names the user by sub.
		resp, err = br.Get(proxyURL + "/oauth2/auth")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Auth-Request-User") != user.ID ||
			resp.Header.Get("X-Auth-Request-Email") != email {
			t.Fatalf("/oauth2/auth: %d X-Auth-Request-User %q X-Auth-Request-Email %q", resp.StatusCode,
				resp.Header.Get("X-Auth-Request-User"), resp.Header.Get("X-Auth-Request-Email"))
		}
		// A browser without the proxy's cookie is not let through.
		resp, err = http.Get(proxyURL + "/oauth2/auth")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("/oauth2/auth without a session: %d", resp.StatusCode)
		}
	})
}

// startOAuth2Proxy runs oauth2-proxy until the test ends and waits for its
// /ping. Its output goes to the test log only when the test fails.
func startOAuth2Proxy(t *testing.T, bin string, args, env []string, proxyURL string) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting oauth2-proxy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("oauth2-proxy output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("oauth2-proxy exited before it was ready: %v", err)
		default:
		}
		if resp, err := c.Get(proxyURL + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("oauth2-proxy did not answer /ping within 60s")
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// echoUpstream records the headers of each request it serves.
type echoUpstream struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	u := &echoUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		fmt.Fprint(w, "upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *echoUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.headers)
}

func (u *echoUpstream) last() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.headers) == 0 {
		return http.Header{}
	}
	return u.headers[len(u.headers)-1]
}

// form is an HTML form: where it posts and its hidden fields.
type form struct {
	action string
	hidden url.Values
}

func (f form) with(email, password string) url.Values {
	v := url.Values{"email": {email}, "password": {password}, "action": {"login"}}
	for k, vs := range f.hidden {
		v[k] = vs
	}
	return v
}

var formAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)

// loginForm finds the form with the password field on page (at base).
func loginForm(t *testing.T, base *url.URL, page string) form {
	t.Helper()
	for _, part := range strings.Split(page, "<form ")[1:] {
		part = "<form " + part
		if !strings.Contains(part, `name="password"`) {
			continue
		}
		m := formAction.FindStringSubmatch(part)
		if m == nil {
			break
		}
		action, err := base.Parse(htmlUnescape(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		f := form{action: action.String(), hidden: url.Values{}}
		for _, h := range hiddenField.FindAllStringSubmatch(part, -1) {
			f.hidden.Set(h[1], htmlUnescape(h[2]))
		}
		if f.hidden.Get("csrf") == "" {
			t.Fatalf("the login form at %s has no csrf field", base)
		}
		return f
	}
	t.Fatalf("no login form at %s: %.500s", base, page)
	return form{}
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
