package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// snapshot counts what requests could write.
type snapshot struct{ users, audit, sessions, throttles int }

func snap(t *testing.T, s *tokendtest.Server, userIDs ...string) snapshot {
	t.Helper()
	ctx := context.Background()
	us, _ := s.Store.ListUsers(ctx, store.ListOptions{Limit: 1000})
	ev, _ := s.Store.ListAudit(ctx, store.AuditFilter{Limit: 10000})
	n := 0
	for _, id := range userIDs {
		l, _ := s.Store.ListSessions(ctx, id, s.Clock.Now())
		n += len(l)
	}
	var th int
	_ = s.Store.Reader().GetContext(ctx, &th, "SELECT COUNT(*) FROM throttles")
	return snapshot{len(us), len(ev), n, th}
}

func TestMalformedRequests(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "m@example.com")
		_, webCookie := webLogin(t, s, "m@example.com", testPassword)
		nat := nativeLogin(t, s, "m@example.com", "")
		before := snap(t, s, u.ID)

		type row struct {
			name, method, path, ctype, body string
			header                          map[string]string
			status                          int
			code                            string
		}
		json := "application/json"
		form := "application/x-www-form-urlencoded"
		big := strings.Repeat("x", 70<<10)
		rows := []row{
			{"login text/plain", "POST", "/auth/login", "text/plain", `{"email":"m@example.com"}`, nil, 400, "invalid_request"},
			{"login no content type", "POST", "/auth/login", "", `{}`, nil, 400, "invalid_request"},
			{"login form body", "POST", "/auth/login", form, "email=m@example.com", nil, 400, "invalid_request"},
			{"login invalid json", "POST", "/auth/login", json, `{"email":`, nil, 400, "invalid_request"},
			{"login json array", "POST", "/auth/login", json, `[]`, nil, 400, "invalid_request"},
			{"login json string", "POST", "/auth/login", json, `"x"`, nil, 400, "invalid_request"},
			{"login missing password", "POST", "/auth/login", json, `{"email":"m@example.com","client_id":"web"}`, nil, 400, "invalid_request"},
			{"login missing client_id", "POST", "/auth/login", json, `{"email":"m@example.com","password":"x"}`, nil, 400, "invalid_request"},
			{"login duplicated email", "POST", "/auth/login", json, `{"email":"a@x.io","email":"m@example.com","password":"p","client_id":"web"}`, nil, 400, "invalid_request"},
			{"login email as number", "POST", "/auth/login", json, `{"email":1,"password":"p","client_id":"web"}`, nil, 400, "invalid_request"},
			{"login password as object", "POST", "/auth/login", json, `{"email":"m@example.com","password":{},"client_id":"web"}`, nil, 400, "invalid_request"},
			{"login trailing data", "POST", "/auth/login", json, `{"email":"m@example.com"}{}`, nil, 400, "invalid_request"},
			{"login oversized body", "POST", "/auth/login", json, `{"email":"` + big + `"}`, nil, 413, "invalid_request"},
			{"login unknown client", "POST", "/auth/login", json, `{"email":"m@example.com","password":"p","client_id":"nope"}`, nil, 401, "invalid_client"},
			{"login native client id", "POST", "/auth/login", json, `{"email":"m@example.com","password":"p","client_id":"mobile"}`, nil, 401, "invalid_client"},
			{"login foreign origin", "POST", "/auth/login", json, `{"email":"m@example.com","password":"p","client_id":"web"}`, map[string]string{"Origin": "https://evil.example"}, 403, "forbidden_origin"},
			{"login wrong method", "GET", "/auth/login", "", "", nil, 405, "method_not_allowed"},
			{"signup text/plain", "POST", "/auth/signup", "text/plain", `{}`, nil, 400, "invalid_request"},
			{"signup not an email", "POST", "/auth/signup", json, `{"email":"nope","password":"long enough pw"}`, nil, 400, "invalid_request"},
			{"signup short password", "POST", "/auth/signup", json, `{"email":"n@example.com","password":"short"}`, nil, 400, "invalid_request"},
			{"signup long password", "POST", "/auth/signup", json, `{"email":"n@example.com","password":"` + strings.Repeat("p", 1025) + `"}`, nil, 400, "invalid_request"},
			{"signup missing email", "POST", "/auth/signup", json, `{"password":"long enough pw"}`, nil, 400, "invalid_request"},
			{"refresh no cookie", "POST", "/auth/refresh", "", "", nil, 400, "invalid_request"},
			{"refresh garbage cookie", "POST", "/auth/refresh", "", "", map[string]string{"Cookie": "tokend_refresh=garbage"}, 400, "invalid_grant"},
			{"refresh oversized cookie", "POST", "/auth/refresh", "", "", map[string]string{"Cookie": "tokend_refresh=" + strings.Repeat("A", 8<<10)}, 400, "invalid_grant"},
			{"refresh two cookies", "POST", "/auth/refresh", "", "", map[string]string{"Cookie": "tokend_refresh=" + webCookie + "; tokend_refresh=x"}, 400, "invalid_request"},
			{"refresh with a native token", "POST", "/auth/refresh", "", "", map[string]string{"Cookie": "tokend_refresh=" + nat.RefreshToken}, 400, "invalid_grant"},
			{"refresh oversized body", "POST", "/auth/refresh", json, big, map[string]string{"Cookie": "tokend_refresh=" + webCookie}, 413, "invalid_request"},
			{"token json body", "POST", "/oauth/token", json, `{"grant_type":"password"}`, nil, 400, "invalid_request"},
			{"token query parameters", "POST", "/oauth/token?client_id=mobile", form, "grant_type=password&username=m@example.com&password=p", nil, 400, "invalid_request"},
			{"token duplicated grant_type", "POST", "/oauth/token", form, "grant_type=password&grant_type=refresh_token&client_id=mobile", nil, 400, "invalid_request"},
			{"token duplicated client_id", "POST", "/oauth/token", form, "grant_type=password&client_id=mobile&client_id=mobile&username=a&password=b", nil, 400, "invalid_request"},
			{"token missing grant_type", "POST", "/oauth/token", form, "client_id=mobile", nil, 400, "invalid_request"},
			{"token unsupported grant", "POST", "/oauth/token", form, "grant_type=client_credentials&client_id=mobile", nil, 400, "unsupported_grant_type"},
			{"token missing client_id", "POST", "/oauth/token", form, "grant_type=password&username=m@example.com&password=p", nil, 401, "invalid_client"},
			{"token web client id", "POST", "/oauth/token", form, "grant_type=password&username=m@example.com&password=p&client_id=web", nil, 401, "invalid_client"},
			{"token missing password", "POST", "/oauth/token", form, "grant_type=password&username=m@example.com&client_id=mobile", nil, 400, "invalid_request"},
			{"token missing refresh_token", "POST", "/oauth/token", form, "grant_type=refresh_token&client_id=mobile", nil, 400, "invalid_request"},
			{"token web client's refresh token", "POST", "/oauth/token", form, "grant_type=refresh_token&client_id=mobile&refresh_token=" + webCookie, nil, 400, "invalid_grant"},
			{"token malformed refresh token", "POST", "/oauth/token", form, "grant_type=refresh_token&client_id=mobile&refresh_token=%00%01", nil, 400, "invalid_grant"},
			{"token unknown scope", "POST", "/oauth/token", form, "grant_type=password&username=m@example.com&password=p&client_id=mobile&scope=admin", nil, 400, "invalid_scope"},
			{"token bad escape", "POST", "/oauth/token", form, "grant_type=%zz", nil, 400, "invalid_request"},
			{"token oversized body", "POST", "/oauth/token", form, "x=" + big, nil, 413, "invalid_request"},
			{"revoke missing token", "POST", "/oauth/revoke", form, "client_id=mobile", nil, 400, "invalid_request"},
			{"revoke unknown client", "POST", "/oauth/revoke", form, "token=x&client_id=nope", nil, 401, "invalid_client"},
			{"revoke query parameters", "POST", "/oauth/revoke?token=x", form, "client_id=mobile", nil, 400, "invalid_request"},
			{"userinfo no token", "GET", "/userinfo", "", "", nil, 401, "invalid_token"},
			{"userinfo basic auth", "GET", "/userinfo", "", "", map[string]string{"Authorization": "Basic bTpw"}, 401, "invalid_token"},
			{"userinfo garbage bearer", "GET", "/userinfo", "", "", map[string]string{"Authorization": "Bearer garbage"}, 401, "invalid_token"},
			{"userinfo refresh token as bearer", "GET", "/userinfo", "", "", map[string]string{"Authorization": "Bearer " + nat.RefreshToken}, 401, "invalid_token"},
			{"sessions no token", "GET", "/auth/sessions", "", "", nil, 401, "invalid_token"},
			{"delete session no token", "DELETE", "/auth/sessions/x", "", "", nil, 401, "invalid_token"},
			{"unknown endpoint", "GET", "/auth/nope", "", "", nil, 404, "not_found"},
		}
		if len(rows) < 30 {
			t.Fatalf("only %d rows", len(rows))
		}
		for _, tc := range rows {
			t.Run(tc.name, func(t *testing.T) {
				req := s.NewRequest(t, tc.method, tc.path, strings.NewReader(tc.body))
				if tc.ctype != "" {
					req.Header.Set("Content-Type", tc.ctype)
				}
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				r := s.Do(t, req)
				if r.Status >= 500 {
					t.Fatalf("5xx: %d %s", r.Status, r.Body)
				}
				wantError(t, r, tc.status, tc.code)
			})
		}
		if after := snap(t, s, u.ID); after != before {
			t.Fatalf("malformed requests wrote something: before %+v after %+v", before, after)
		}
		// Tokens presented to the wrong endpoint were not consumed.
		if r := webRefresh(t, s, webCookie); r.Status != 200 {
			t.Fatalf("the web token was consumed by a refused request: %d %s", r.Status, r.Body)
		}
		if r := nativeRefresh(t, s, nat.RefreshToken); r.Status != 200 {
			t.Fatalf("the native token was consumed by a refused request: %d %s", r.Status, r.Body)
		}
		_ = http.MethodGet
	})
}

// TestUnstorableText: text PostgreSQL cannot hold (NUL, invalid UTF-8) in a
// client id, an email, a session id or the User-Agent gets the answer any
// other unknown value gets, never a 500, on both stores.
func TestUnstorableText(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "u@example.com")
		access, _ := webLogin(t, s, "u@example.com", testPassword)
		form := func(body string) *tokendtest.Response {
			req := s.NewRequest(t, http.MethodPost, "/oauth/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return s.Do(t, req)
		}
		wantError(t, form("grant_type=password&client_id=%FF&username=u@example.com&password=x"), 401, "invalid_client")
		wantError(t, form("grant_type=refresh_token&client_id=mo%00bile&refresh_token="+strings.Repeat("A", 43)), 401, "invalid_client")
		wantError(t, form("grant_type=password&client_id=mobile&username=u%00@example.com&password=x"), 400, "invalid_grant")
		wantError(t, form("grant_type=password&client_id=mobile&username=u%FF@example.com&password=x"), 400, "invalid_grant")
		wantError(t, s.PostForm(t, "/oauth/revoke", url.Values{"client_id": {"\x00"}, "token": {"x"}}), 401, "invalid_client")
		wantError(t, s.PostJSON(t, "/auth/login", map[string]string{"email": "u@example.com", "password": "x", "client_id": "we\x00b"}), 401, "invalid_client")
		wantError(t, s.PostJSON(t, "/auth/login", map[string]string{"email": "u\x00@example.com", "password": "x", "client_id": "web"}), 400, "invalid_grant")
		for _, id := range []string{"%00", "%FF", "a%C3"} {
			wantError(t, bearerDelete(t, s, "/auth/sessions/"+id, access), 404, "not_found")
		}
		// A Latin-1 User-Agent, and one cut at 256 bytes inside a
		// character, still log in; the session lists the text as stored.
		for _, ua := range []string{"Widget/1.0 (caf\xe9)", strings.Repeat("a", 255) + "é"} {
			access, _ := webLogin(t, s, "u@example.com", testPassword, "User-Agent", ua)
			r := bearerGet(t, s, "/auth/sessions", access)
			if r.Status != 200 {
				t.Fatalf("sessions after a login with User-Agent %q: %d %s", ua, r.Status, r.Body)
			}
		}
	})
}
