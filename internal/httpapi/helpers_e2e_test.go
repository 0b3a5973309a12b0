package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

const testPassword = "correct horse battery"

func createUser(t *testing.T, s *tokendtest.Server, email string) store.User {
	t.Helper()
	u, err := s.Users.CreateVerified(context.Background(), email, testPassword, audit.Meta{Address: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type tokenResp struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// webLogin logs in through /auth/login and returns the access token and
// the refresh cookie's value.
func webLogin(t *testing.T, s *tokendtest.Server, email, password string, header ...string) (string, string) {
	t.Helper()
	r := s.PostJSON(t, "/auth/login", map[string]string{"email": email, "password": password, "client_id": "web"}, header...)
	if r.Status != 200 {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	var tr tokenResp
	r.JSON(t, &tr)
	c := r.Cookie("tokend_refresh")
	if c == nil || c.Value == "" {
		t.Fatal("login set no refresh cookie")
	}
	return tr.AccessToken, c.Value
}

// webRefresh posts /auth/refresh with the cookie.
func webRefresh(t *testing.T, s *tokendtest.Server, cookie string) *tokendtest.Response {
	t.Helper()
	req := s.NewRequest(t, http.MethodPost, "/auth/refresh", nil)
	req.Header.Set("Cookie", "tokend_refresh="+cookie)
	return s.Do(t, req)
}

// nativeLogin runs the password grant for the mobile client.
func nativeLogin(t *testing.T, s *tokendtest.Server, email, scope string) tokenResp {
	t.Helper()
	v := url.Values{"grant_type": {"password"}, "username": {email}, "password": {testPassword}, "client_id": {"mobile"}}
	if scope != "" {
		v.Set("scope", scope)
	}
	r := s.PostForm(t, "/oauth/token", v)
	if r.Status != 200 {
		t.Fatalf("password grant: %d %s", r.Status, r.Body)
	}
	var tr tokenResp
	r.JSON(t, &tr)
	return tr
}

// nativeRefresh runs the refresh grant.
func nativeRefresh(t *testing.T, s *tokendtest.Server, token string) *tokendtest.Response {
	t.Helper()
	return s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"mobile"}})
}

func refreshed(t *testing.T, r *tokendtest.Response) tokenResp {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	var tr tokenResp
	r.JSON(t, &tr)
	return tr
}

func bearerGet(t *testing.T, s *tokendtest.Server, path, access string) *tokendtest.Response {
	t.Helper()
	return s.Get(t, path, "Authorization", "Bearer "+access)
}

func bearerDelete(t *testing.T, s *tokendtest.Server, path, access string) *tokendtest.Response {
	t.Helper()
	req := s.NewRequest(t, http.MethodDelete, path, nil)
	req.Header.Set("Authorization", "Bearer "+access)
	return s.Do(t, req)
}

// wantError checks an OAuth error response.
func wantError(t *testing.T, r *tokendtest.Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.ErrorCode(t) != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
}

type configT = config.Config

var metaTest = audit.Meta{Address: "test"}

var fmtSscan = fmt.Sscan
