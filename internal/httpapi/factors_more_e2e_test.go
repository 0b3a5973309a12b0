package httpapi_test

import (
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/totp"
)

// TestFactorsAtRest: what the database holds of a second factor is sealed
// or hashed: no form of the TOTP secret and no recovery code appears in any
// column of user_factors or recovery_codes.
func TestFactorsAtRest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "rest@example.com")
		br := newBrowser(t, s)
		br.signIn(t, wantLoginPage(t, br.get(t, "/account"), http.StatusOK), "rest@example.com", testPassword)
		secret, codes := enrolTOTP(t, s, br)

		forbidden := map[string]string{
			"secret (base32)":    base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret),
			"secret (hex)":       hex.EncodeToString(secret),
			"secret (base64)":    base64.StdEncoding.EncodeToString(secret),
			"secret (base64url)": base64.RawURLEncoding.EncodeToString(secret),
		}
		for i, c := range codes {
			forbidden["recovery code "+string(rune('0'+i))] = c
			forbidden["recovery code, bare "+string(rune('0'+i))] = strings.ReplaceAll(c, "-", "")
		}
		rows := 0
		for _, table := range []string{"user_factors", "recovery_codes"} {
			rs, err := s.Store.Writer().QueryxContext(context.Background(), "SELECT * FROM "+table+" WHERE user_id = "+
				s.Store.Writer().Rebind("?"), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			for rs.Next() {
				row := map[string]any{}
				if err := rs.MapScan(row); err != nil {
					t.Fatal(err)
				}
				rows++
				for col, v := range row {
					var text string
					switch v := v.(type) {
					case []byte:
						text = string(v) + " " + hex.EncodeToString(v)
					case string:
						text = v
					default:
						continue
					}
					for what, f := range forbidden {
						if strings.Contains(strings.ToLower(text), strings.ToLower(f)) {
							t.Errorf("%s.%s holds the %s in clear", table, col, what)
						}
					}
				}
			}
			if err := rs.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if rows != 1+len(codes) {
			t.Fatalf("%d rows read, want the factor and %d codes: the check above looked at nothing", rows, len(codes))
		}
	})
}

// TestFactorsOutliveReset: a password reset ends the sessions but keeps
// the second factor, and prompt=login or max_age=0 on a session asks for
// the password and the factor again.
func TestFactorsOutliveReset(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "keep@example.com")
		br := newBrowser(t, s)
		br.signIn(t, wantLoginPage(t, br.get(t, "/account"), http.StatusOK), "keep@example.com", testPassword)
		secret, _ := enrolTOTP(t, s, br)
		s.Clock.Advance(totp.Period)

		// A full sign-in with both factors.
		p := newPKCE()
		f := wantFactorPage(t, br.signIn(t, wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(p, "prompt", "login").Encode()),
			http.StatusOK), "keep@example.com", testPassword), http.StatusOK)
		f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
		redirected(t, br.post(t, "/login/factor", f), http.StatusSeeOther)
		s.Clock.Advance(totp.Period)

		// prompt=login and max_age=0 both ask for the password, then the code.
		for _, extra := range [][]string{{"prompt", "login"}, {"max_age", "0"}} {
			p := newPKCE()
			login := wantLoginPage(t, br.get(t, "/oauth/authorize?"+authParams(p, extra...).Encode()), http.StatusOK)
			f := wantFactorPage(t, br.signIn(t, login, "keep@example.com", testPassword), http.StatusOK)
			f.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
			q := redirected(t, br.post(t, "/login/factor", f), http.StatusSeeOther)
			_, c := jwtParts(t, exchanged(t, exchange(t, s, q.Get("code"), p.verifier)).IDToken)
			if c["acr"] != "aal2" {
				t.Fatalf("%v: acr %v", extra, c["acr"])
			}
			s.Clock.Advance(totp.Period)
		}

		// The reset: the factor stays; the new password alone opens nothing.
		resetNow(t, s, u.ID, "a-brand-new-password-1")
		b2 := newBrowser(t, s)
		login := wantLoginPage(t, b2.get(t, "/oauth/authorize?"+authParams(newPKCE()).Encode()), http.StatusOK)
		f2 := wantFactorPage(t, b2.signIn(t, login, "keep@example.com", "a-brand-new-password-1"), http.StatusOK)
		f2.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
		redirected(t, b2.post(t, "/login/factor", f2), http.StatusSeeOther)
		if fs, err := s.Store.Factors(context.Background(), u.ID); err != nil || len(fs) != 1 {
			t.Fatalf("factors after the reset: %v %v", fs, err)
		}
	})
}

// TestLoginHint: login_hint fills the login page's email field, escaped;
// it is only a hint: another account may sign in.
func TestLoginHint(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Backend: "sqlite"})
	createUser(t, s, "hinted@example.com")
	createUser(t, s, "other@example.com")
	br := newBrowser(t, s)
	p := newPKCE()
	page := br.get(t, "/oauth/authorize?"+authParams(p, "login_hint", `hinted@example.com"><script>`).Encode())
	wantLoginPage(t, page, http.StatusOK)
	if !strings.Contains(string(page.Body), `value="hinted@example.com&#34;&gt;&lt;script&gt;"`) ||
		strings.Contains(string(page.Body), `"><script>`) {
		t.Fatalf("the hint is not in the email field, escaped: %s", page.Body)
	}
	page = br.get(t, "/oauth/authorize?"+authParams(p, "login_hint", "hinted@example.com").Encode())
	if !strings.Contains(string(page.Body), `value="hinted@example.com"`) {
		t.Fatalf("the hint is not in the email field: %s", page.Body)
	}
	q := redirected(t, br.signIn(t, wantLoginPage(t, page, http.StatusOK), "other@example.com", testPassword), http.StatusSeeOther)
	if q.Get("code") == "" {
		t.Fatalf("another account than the hint's: %v", q)
	}
}

var removeButton = regexp.MustCompile(`<button type="submit" name="remove" value="([^"]+)"`)

// TestRemoveFactor: removing the authenticator app from the account page
// needs a sign-in session at aal2 (the one that enrolled it signed in with
// the password alone: it steps up first) and the account's password; a
// wrong one removes nothing, the right one removes it, and the password
// alone signs in again.
func TestRemoveFactor(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "remove@example.com")
		br := newBrowser(t, s)
		br.signIn(t, wantLoginPage(t, br.get(t, "/account"), http.StatusOK), "remove@example.com", testPassword)
		secret, _ := enrolTOTP(t, s, br)
		s.Clock.Advance(totp.Period)
		page := br.get(t, "/account")
		m := removeButton.FindSubmatch(page.Body)
		if page.Status != 200 || m == nil {
			t.Fatalf("no remove button: %d %s", page.Status, page.Body)
		}
		f := formFields(t, page.Body)
		f.Set("remove", string(m[1]))
		f.Set("password", testPassword)
		sf := wantFactorPage(t, br.post(t, "/account", f), http.StatusOK)
		if fs, err := s.Store.Factors(context.Background(), u.ID); err != nil || len(fs) != 1 {
			t.Fatalf("after a removal from a password-only session: %v %v", fs, err)
		}
		sf.Set("code", totp.Code(secret, totp.Step(s.Clock.Now())))
		if r := br.post(t, "/login/factor", sf); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account" {
			t.Fatalf("step-up: %d %s", r.Status, r.Body)
		}
		for _, pw := range []string{"", "not-the-password"} {
			f.Set("password", pw)
			if r := br.post(t, "/account", f); r.Status != http.StatusBadRequest && r.Status != http.StatusUnauthorized {
				t.Fatalf("removal with password %q: %d %s", pw, r.Status, r.Body)
			}
			if fs, err := s.Store.Factors(context.Background(), u.ID); err != nil || len(fs) != 1 {
				t.Fatalf("after a removal with password %q: %v %v", pw, fs, err)
			}
		}
		f.Set("password", testPassword)
		if r := br.post(t, "/account", f); r.Status != http.StatusSeeOther {
			t.Fatalf("removal: %d %s", r.Status, r.Body)
		}
		if fs, err := s.Store.Factors(context.Background(), u.ID); err != nil || len(fs) != 0 {
			t.Fatalf("after the removal: %v %v", fs, err)
		}
		nativeLogin(t, s, "remove@example.com", "")
	})
}

// TestClientAlgorithm: a client registered with its own algorithm gets
// its ID and access tokens signed with it, whatever the server's default.
func TestClientAlgorithm(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Backend: "sqlite"})
	createUser(t, s, "alg@example.com")
	for _, alg := range []string{"EdDSA", "RS256"} {
		id := "app-" + strings.ToLower(alg)
		if _, _, err := s.Clients.Create(context.Background(), clients.Spec{ID: id, Kind: store.ClientNative,
			RedirectURIs: []string{"http://127.0.0.1/callback"}, Alg: alg}, s.Clock.Now(), nil); err != nil {
			t.Fatal(err)
		}
		br := newBrowser(t, s)
		p := newPKCE()
		q := br.codeFlow(t, p, "alg@example.com", "client_id", id)
		ct := exchanged(t, exchange(t, s, q.Get("code"), p.verifier, "client_id", id))
		for name, tok := range map[string]string{"ID token": ct.IDToken, "access token": ct.AccessToken} {
			if h, c := jwtParts(t, tok); h["alg"] != alg || (name == "ID token" && c["aud"] != id) {
				t.Fatalf("%s's %s: header %v, claims %v", id, name, h, c)
			}
		}
	}
}
