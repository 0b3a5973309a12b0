package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// browser is a user agent for the browser flow: a cookie jar and no
// redirect following, so tests see every hop.
type browser struct {
	s   *tokendtest.Server
	jar http.CookieJar
}

func newBrowser(t *testing.T, s *tokendtest.Server) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{s: s, jar: jar}
}

// do sends req with the jar's cookies, stores the response's, and checks
// the response against the spec (through the server's Do).
func (b *browser) do(t *testing.T, req *http.Request) *tokendtest.Response {
	t.Helper()
	for _, c := range b.jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	r := b.s.Do(t, req)
	u, _ := url.Parse(b.s.URL)
	b.jar.SetCookies(u, (&http.Response{Header: r.Header}).Cookies())
	return r
}

func (b *browser) get(t *testing.T, pathAndQuery string) *tokendtest.Response {
	t.Helper()
	return b.do(t, b.s.NewRequest(t, http.MethodGet, pathAndQuery, nil))
}

func (b *browser) post(t *testing.T, path string, form url.Values) *tokendtest.Response {
	t.Helper()
	req := b.s.NewRequest(t, http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(t, req)
}

// pkce is a verifier and its S256 challenge.
type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := opaque.Encode(opaque.New()).Reveal() + "-pkce"
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authParams are the parameters of a typical request of the mobile client.
func authParams(p pkce, extra ...string) url.Values {
	v := url.Values{"response_type": {"code"}, "client_id": {"mobile"}, "redirect_uri": {"http://127.0.0.1:53117/callback"},
		"scope": {"openid email"}, "state": {"st-123"}, "nonce": {"n-0S6_WzA2Mj"}, "code_challenge": {p.challenge},
		"code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			v.Del(extra[i])
		} else {
			v.Set(extra[i], extra[i+1])
		}
	}
	return v
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// formFields returns the hidden inputs of a page.
func formFields(t *testing.T, body []byte) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenInput.FindAllSubmatch(body, -1) {
		v.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	return v
}

// wantLoginPage checks that r is the login page and returns its fields.
func wantLoginPage(t *testing.T, r *tokendtest.Response, status int) url.Values {
	t.Helper()
	if r.Status != status || !strings.Contains(string(r.Body), `name="password"`) {
		t.Fatalf("want the login page (%d), got %d %s", status, r.Status, r.Body)
	}
	f := formFields(t, r.Body)
	if f.Get("csrf") == "" || f.Get("request") == "" {
		t.Fatalf("the login page has no CSRF token or request: %s", r.Body)
	}
	return f
}

// signIn submits the login page's form.
func (b *browser) signIn(t *testing.T, page url.Values, email, password string) *tokendtest.Response {
	t.Helper()
	f := url.Values{"csrf": {page.Get("csrf")}, "request": {page.Get("request")}, "email": {email}, "password": {password},
		"action": {"login"}}
	return b.post(t, "/login", f)
}

// redirected returns the query of a redirect to the mobile client's
// callback.
func redirected(t *testing.T, r *tokendtest.Response, status int) url.Values {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want a %d redirect, got %d %s", status, r.Status, r.Body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || loc.Host != "127.0.0.1:53117" || loc.Path != "/callback" {
		t.Fatalf("redirected to %q", r.Header.Get("Location"))
	}
	return loc.Query()
}

// codeFlow runs a whole sign-in and returns the code's query.
func (b *browser) codeFlow(t *testing.T, p pkce, email string, extra ...string) url.Values {
	t.Helper()
	page := wantLoginPage(t, b.get(t, "/oauth/authorize?"+authParams(p, extra...).Encode()), http.StatusOK)
	return redirected(t, b.signIn(t, page, email, testPassword), http.StatusSeeOther)
}

// exchange posts the code to the token endpoint.
func exchange(t *testing.T, s *tokendtest.Server, code, verifier string, extra ...string) *tokendtest.Response {
	t.Helper()
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:53117/callback"},
		"client_id": {"mobile"}, "code_verifier": {verifier}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return s.PostForm(t, "/oauth/token", v)
}

type codeTokens struct {
	tokenResp
	IDToken string `json:"id_token"`
}

func exchanged(t *testing.T, r *tokendtest.Response) codeTokens {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("code exchange: %d %s", r.Status, r.Body)
	}
	var ct codeTokens
	r.JSON(t, &ct)
	return ct
}

// jwtParts decodes a JWT's header and claims without verifying it (the
// interop tests verify with independent libraries).
func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	for i, into := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func clientsSpecNative(id string) clients.Spec {
	return clients.Spec{ID: id, Kind: store.ClientNative, RedirectURIs: []string{"http://127.0.0.1/callback"}}
}

func clientsSpecPasswordOnly(id string) clients.Spec {
	return clients.Spec{ID: id, Kind: store.ClientNative, Grants: []string{"password", "refresh_token"}}
}
