package httpapi_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/users"
)

// observedHasher counts password verifications (one per evaluated login
// attempt) and, when gated, holds every verification that succeeded until
// the test opens the gate: the window in which a login has checked the
// password but not yet written its session.
type observedHasher struct {
	users.Hasher
	verified atomic.Int64
	mu       sync.Mutex
	gate     chan struct{} // nil: no gate
	waiting  chan struct{} // one send per held verification
}

func (h *observedHasher) Verify(ctx context.Context, encoded string, pw []byte) (password.Result, error) {
	res, err := h.Hasher.Verify(ctx, encoded, pw)
	h.verified.Add(1)
	h.mu.Lock()
	gate, waiting := h.gate, h.waiting
	h.mu.Unlock()
	if err == nil && res.OK && gate != nil {
		waiting <- struct{}{}
		<-gate
	}
	return res, err
}

// hold makes the next n successful verifications wait for the returned
// release function (which t's cleanup also calls).
func (h *observedHasher) hold(t *testing.T, n int) (waitAll func(t *testing.T), release func()) {
	h.mu.Lock()
	h.gate, h.waiting = make(chan struct{}), make(chan struct{}, n)
	gate, waiting := h.gate, h.waiting
	h.mu.Unlock()
	waitAll = func(t *testing.T) {
		t.Helper()
		for i := range n {
			select {
			case <-waiting:
			case <-time.After(2 * time.Minute):
				t.Fatalf("only %d of %d logins reached the password check", i, n)
			}
		}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			h.mu.Lock()
			h.gate, h.waiting = nil, nil
			h.mu.Unlock()
			close(gate)
		})
	}
	t.Cleanup(release)
	return waitAll, release
}

func startObserved(t *testing.T, backend string, configure func(*config.Config)) (*tokendtest.Server, *observedHasher) {
	t.Helper()
	h := &observedHasher{}
	s := tokendtest.Start(t, tokendtest.Options{Backend: backend, Configure: configure,
		WrapHasher: func(inner users.Hasher) users.Hasher { h.Hasher = inner; return h }})
	return s, h
}

// liveSessions counts the user's sessions that can still be refreshed.
func liveSessions(t *testing.T, s *tokendtest.Server, userID string) int {
	t.Helper()
	list, err := s.Store.ListSessions(context.Background(), userID, s.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// passwordGrant runs the password grant over plain HTTP (safe from any
// goroutine) and returns the status and the body.
func passwordGrant(s *tokendtest.Server, email, pw string) (int, string, error) {
	form := url.Values{"grant_type": {"password"}, "username": {email}, "password": {pw}, "client_id": {"mobile"}}
	resp, err := http.Post(s.URL+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String() + " Retry-After=" + resp.Header.Get("Retry-After"), nil
}

// resetNow resets the user's password through POST /auth/password/reset
// with a token written to the store (the mail is not the point here).
func resetNow(t *testing.T, s *tokendtest.Server, userID, newPassword string) {
	t.Helper()
	raw := opaque.New()
	now := s.Clock.Now()
	u, err := s.Store.UserByID(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.IssueOneTime(context.Background(), store.NewOneTime{UserEmail: u.Email,
		Token: store.OneTimeToken{Hash: opaque.Hash(raw), Purpose: store.PurposePasswordReset, UserID: userID, CreatedAt: now,
			ExpiresAt: now.Add(time.Hour)},
		Mail: store.MailJob{ID: "reset-" + base64.RawURLEncoding.EncodeToString(raw[:6]), Kind: "password_reset", UserID: userID,
			Payload: []byte{1}, CreatedAt: now, NextAttemptAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	// A reset that keeps losing to concurrent logins (under SERIALIZABLE
	// on a busy machine) is answered 503 temporarily_unavailable, the
	// answer API.md tells clients to retry, and nothing changed: retry it
	// as a client would, with a generous deadline.
	body := map[string]string{"token": string(opaque.Encode(raw)), "password": newPassword}
	r := s.PostJSON(t, "/auth/password/reset", body)
	for deadline := time.Now().Add(2 * time.Minute); r.Status == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		t.Logf("reset answered 503 (%s); retrying", r.Body)
		time.Sleep(100 * time.Millisecond)
		r = s.PostJSON(t, "/auth/password/reset", body)
	}
	if r.Status != 204 {
		t.Fatalf("reset: %d %s", r.Status, r.Body)
	}
}

// TestLoginRacesReset: six logins with the current password have checked
// it and wait to write their sessions while the owner resets the password
// (then, in a second round, while an operator disables the account). When
// they resume, none may leave a session behind: the write checks that the
// credential it verified is still the current one.
func TestLoginRacesReset(t *testing.T) {
	const logins = 6
	for _, change := range []string{"reset", "disable"} {
		dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
			s, h := startObserved(t, b.Name, nil)
			u := createUser(t, s, "race@example.com")
			waitAll, release := h.hold(t, logins)
			errs := make([]error, logins)
			var wg sync.WaitGroup
			for i := range logins {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Six devices of the owner, each from its own address.
					_, errs[i] = s.PasswordLogin(context.Background(), "mobile", "race@example.com", testPassword,
						audit.Meta{Address: fmt.Sprintf("192.0.2.%d", i+1)})
				}()
			}
			waitAll(t)
			switch change {
			case "reset":
				resetNow(t, s, u.ID, "a brand new password")
			case "disable":
				if _, err := s.Users.Disable(context.Background(), "race@example.com", audit.CLI); err != nil {
					t.Fatal(err)
				}
			}
			release()
			wg.Wait()
			for i, err := range errs {
				if !errors.Is(err, oauth.ErrInvalidGrant) {
					t.Errorf("login %d held across the %s: %v, want invalid_grant", i, change, err)
				}
			}
			if n := liveSessions(t, s, u.ID); n != 0 {
				t.Fatalf("%d sessions created with the old credential survived the %s", n, change)
			}
			t.Logf("%s: %d logins held across it all refused, 0 sessions survive", change, logins)
		})
	}
}

// TestLoginRacesResetFree: the same race without a gate, as an outsider
// runs it: rounds of six concurrent logins and a reset. Every session
// created before the reset's commit is revoked by it, and none after.
func TestLoginRacesResetFree(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name,
			Configure: func(c *config.Config) { c.HashMaxConcurrent = 16 }})
		u := createUser(t, s, "free@example.com")
		pw := testPassword
		survivors, ok := 0, 0
		for round := range 8 {
			next := fmt.Sprintf("password of round %d", round)
			var wg sync.WaitGroup
			var okRound atomic.Int64
			for range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if code, _, err := passwordGrant(s, "free@example.com", pw); err == nil && code == 200 {
						okRound.Add(1)
					}
				}()
			}
			resetNow(t, s, u.ID, next)
			wg.Wait()
			ok += int(okRound.Load())
			survivors += liveSessions(t, s, u.ID)
			pw = next
			// The pair counter of this test's address would lock the next
			// round: each round is the owner at a fresh reset.
			s.Clock.Advance(time.Hour)
		}
		if survivors != 0 {
			t.Fatalf("%d sessions survived the resets that followed them", survivors)
		}
		t.Logf("8 rounds: %d logins answered 200 before their reset, 0 sessions survive", ok)
	})
}

// TestDisabledUserCannotRotate: a session of a user disabled behind
// tokend's back (an operator's SQL, a restored backup) does not rotate: the
// refresh is invalid_grant and the session is revoked.
func TestDisabledUserCannotRotate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "quiet@example.com")
		tok := nativeLogin(t, s, "quiet@example.com", "")
		if _, err := s.Store.Writer().Exec(s.Store.Writer().Rebind(`UPDATE users SET disabled_at = ? WHERE id = ?`),
			s.Clock.Now().UnixMicro(), u.ID); err != nil {
			t.Fatal(err)
		}
		wantError(t, nativeRefresh(t, s, tok.RefreshToken), 400, "invalid_grant")
		fams, err := s.Store.Family(context.Background(), firstFamily(t, s, u.ID))
		if err != nil {
			t.Fatal(err)
		}
		if !fams.Revoked() {
			t.Fatal("the disabled user's session was not revoked")
		}
	})
}

func firstFamily(t *testing.T, s *tokendtest.Server, userID string) string {
	t.Helper()
	var id string
	if err := s.Store.Reader().Get(&id, s.Store.Reader().Rebind(`SELECT id FROM refresh_families WHERE user_id = ?`), userID); err != nil {
		t.Fatal(err)
	}
	return id
}

// burst sends n password grants at once and returns their statuses.
func burst(t *testing.T, s *tokendtest.Server, n int, email func(i int) string, pw func(i int) string) []int {
	t.Helper()
	out := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, body, err := passwordGrant(s, email(i), pw(i))
			if err != nil {
				t.Error(err)
				return
			}
			out[i] = code
			if code == 429 && !strings.Contains(body, "Retry-After=") || code == 429 && strings.HasSuffix(body, "Retry-After=") {
				t.Errorf("429 without Retry-After: %s", body)
			}
			if code >= 500 {
				t.Errorf("burst: %d %s", code, body)
			}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func count(statuses []int, code int) int {
	n := 0
	for _, c := range statuses {
		if c == code {
			n++
		}
	}
	return n
}

// TestBruteForceBurst: concurrent attempts are counted before any password
// is hashed, so a burst evaluates at most the free allowance and the rest
// get 429 with Retry-After.
func TestBruteForceBurst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s, h := startObserved(t, b.Name, func(c *config.Config) { c.HashMaxConcurrent = 32 })
		createUser(t, s, "target@example.com")

		st := burst(t, s, 20, func(int) string { return "target@example.com" }, func(int) string { return "wrong guess!" })
		evaluated := h.verified.Load()
		if evaluated > 5 || count(st, 400) != int(evaluated) || count(st, 429) != 20-int(evaluated) {
			t.Fatalf("20 concurrent wrong passwords: %d evaluated, statuses %v; want at most 5 evaluated, the rest 429", evaluated, st)
		}
		t.Logf("20 concurrent wrong passwords: %d evaluated, %d refused with 429", evaluated, count(st, 429))

		// 11 wrong and the right one, from the same address after the
		// lock: nothing more is evaluated.
		h.verified.Store(0)
		st = burst(t, s, 12, func(int) string { return "target@example.com" }, func(i int) string {
			if i == 11 {
				return testPassword
			}
			return "wrong guess!"
		})
		if n := h.verified.Load(); n != 0 || count(st, 429) != 12 {
			t.Fatalf("12 more attempts while locked: %d evaluated, statuses %v", n, st)
		}

		// 80 wrong logins for 80 accounts from one address: the address
		// limit (50 per 15 min) holds under concurrency too.
		s.Clock.Advance(time.Hour)
		h.verified.Store(0)
		st = burst(t, s, 80, func(i int) string { return fmt.Sprintf("stuffed%d@example.com", i) }, func(int) string { return "wrong guess!" })
		if n := h.verified.Load(); n > 50 || count(st, 429) != 80-int(n) {
			t.Fatalf("80 concurrent logins from one address: %d evaluated, statuses %v; want at most 50", n, st)
		}
		t.Logf("80 concurrent logins from one address: %d evaluated", h.verified.Load())
	})
}

// TestLockoutIsNotDenialOfService: an attacker guessing a victim's password
// — from one address, then from a hundred, then one guess every 30 s for
// ever, then from behind the victim's own office address — locks
// themself out and slows the guessing, but never keeps the owner out of an
// address or a browser they signed in from before.
func TestLockoutIsNotDenialOfService(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		createUser(t, s, "victim@example.com")
		ctx := context.Background()
		const (
			home    = "198.51.100.7" // the owner signs in from here
			office  = "192.0.2.50"   // and from here, in a browser
			browser = "owner-browser-device-cookie-value-00000000"
		)
		attempt := func(addr, device, pw string) error {
			_, err := s.PasswordLogin(ctx, "mobile", "victim@example.com", pw, audit.Meta{Address: addr, Device: device})
			return err
		}
		throttled := func(err error) time.Duration {
			var te *login.ThrottledError
			if errors.As(err, &te) {
				return te.RetryAfter
			}
			return 0
		}
		for _, src := range []struct{ addr, device string }{{home, ""}, {office, browser}} {
			if err := attempt(src.addr, src.device, testPassword); err != nil {
				t.Fatalf("the owner's first sign-in from %s: %v", src.addr, err)
			}
		}
		// The attacker locks themself out.
		for i := range 12 {
			err := attempt("203.0.113.66", "", "guess "+strconv.Itoa(i))
			if i >= 5 && throttled(err) == 0 {
				t.Fatalf("attempt %d from the attacker's address was not throttled: %v", i, err)
			}
		}
		// The owner, elsewhere, is not.
		if err := attempt(home, "", testPassword); err != nil {
			t.Fatalf("the owner could not sign in from their address: %v", err)
		}
		// Many addresses, one guess each, up to the account's ceiling of 100
		// attempts an hour (the attacker's first 5 count; the owner's
		// successes do not).
		for i := range 95 {
			if err := attempt(fmt.Sprintf("10.0.%d.%d", i/250, i%250), "", "guess"); throttled(err) != 0 {
				t.Fatalf("distributed guess %d throttled below the ceiling: %v", i, err)
			}
		}
		// Past the ceiling, guessing slows to one per 30 s, and the attacker
		// uses every slot.
		for i := range 4 {
			err := attempt(fmt.Sprintf("10.9.9.%d", i), "", "one more guess")
			wait := throttled(err)
			if wait <= 0 || wait > 30*time.Second {
				t.Fatalf("past the ceiling, slot %d: %v, want a wait of at most 30 s", i, err)
			}
			s.Clock.Advance(wait)
			if err := attempt(fmt.Sprintf("10.8.8.%d", i), "", "slot guess"); err == nil || throttled(err) != 0 {
				t.Fatalf("the attacker's guess after the wait: %v, want it evaluated (and wrong)", err)
			}
		}
		// The owner gets in at once from the address and from the browser
		// they signed in from (the browser from anywhere); a new address
		// of theirs is slowed like the attacker's.
		if err := attempt(home, "", testPassword); err != nil {
			t.Fatalf("the owner from their address, under attack: %v", err)
		}
		if err := attempt("100.64.0.1", browser, testPassword); err != nil {
			t.Fatalf("the owner's browser from a new address, under attack: %v", err)
		}
		if err := attempt("100.64.0.2", "", testPassword); throttled(err) == 0 {
			t.Fatalf("an unknown address past the ceiling: %v, want it slowed", err)
		}
		// Behind the owner's office address, the attacker exhausts both the
		// pair limit and the address's limit (other accounts too); the
		// owner's browser there still gets in, a stranger's does not.
		for i := range 60 {
			_, _ = s.PasswordLogin(ctx, "mobile", fmt.Sprintf("other%d@example.com", i), "guess", audit.Meta{Address: office})
		}
		for range 6 {
			_ = attempt(office, "", "guess")
		}
		if err := attempt(office, "", "guess"); throttled(err) == 0 {
			t.Fatalf("the attacker behind the office address: %v, want throttled", err)
		}
		if err := attempt(office, browser, testPassword); err != nil {
			t.Fatalf("the owner's browser behind an attacked address: %v", err)
		}
		if err := attempt(office, "a-stranger's-device-cookie-value-000000000", testPassword); throttled(err) == 0 {
			t.Fatalf("an unknown browser behind an attacked address: %v, want throttled", err)
		}
	})
}

// TestDeviceCookie: a sign-in through /auth/login gives the browser a
// device cookie, and that browser then signs in while its address is locked.
func TestDeviceCookie(t *testing.T) {
	s := tokendtest.Start(t, tokendtest.Options{Backend: "sqlite"})
	createUser(t, s, "dev@example.com")
	r := s.PostJSON(t, "/auth/login", map[string]string{"email": "dev@example.com", "password": testPassword, "client_id": "web"})
	c := r.Cookie("__Host-tokend_device")
	if r.Status != 200 || c == nil || !c.HttpOnly || c.MaxAge < 300*24*3600 {
		t.Fatalf("login: %d, device cookie %+v", r.Status, c)
	}
	again := s.PostJSON(t, "/auth/login", map[string]string{"email": "dev@example.com", "password": testPassword, "client_id": "web"},
		"Cookie", "__Host-tokend_device="+c.Value)
	if again.Status != 200 || again.Cookie("__Host-tokend_device") != nil {
		t.Fatalf("login with the cookie: %d, new cookie %v", again.Status, again.Cookie("__Host-tokend_device"))
	}
	// Lock this (test client's) address out of the account.
	for range 8 {
		s.PostJSON(t, "/auth/login", map[string]string{"email": "dev@example.com", "password": "wrong", "client_id": "web"})
	}
	if r := s.PostJSON(t, "/auth/login", map[string]string{"email": "dev@example.com", "password": testPassword, "client_id": "web"}); r.Status != 429 {
		t.Fatalf("without the cookie: %d %s, want 429", r.Status, r.Body)
	}
	if r := s.PostJSON(t, "/auth/login", map[string]string{"email": "dev@example.com", "password": testPassword, "client_id": "web"},
		"Cookie", "__Host-tokend_device="+c.Value); r.Status != 200 {
		t.Fatalf("with the cookie: %d %s", r.Status, r.Body)
	}
}

// TestForeignAudienceRefused: an access token minted for another API (its
// client's audience) does not read /userinfo nor end sessions (RFC 9068 §4).
func TestForeignAudienceRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		if err := s.Store.CreateClient(context.Background(), store.Client{ID: "api-app", Kind: store.ClientNative,
			Audience: []string{"https://api.example.com"}, Grants: []string{"password"}, Scopes: []string{"openid", "email"},
			CreatedAt: tokendtest.T0}, nil); err != nil {
			t.Fatal(err)
		}
		u := createUser(t, s, "aud@example.com")
		own := nativeLogin(t, s, "aud@example.com", "").AccessToken
		r := s.PostForm(t, "/oauth/token", url.Values{"grant_type": {"password"}, "username": {"aud@example.com"},
			"password": {testPassword}, "client_id": {"api-app"}, "scope": {"openid email"}})
		if r.Status != 200 {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		var tr tokenResp
		r.JSON(t, &tr)
		for _, req := range []struct{ method, path string }{{"GET", "/userinfo"}, {"GET", "/auth/sessions"}, {"DELETE", "/auth/sessions"}} {
			hr := s.NewRequest(t, req.method, req.path, nil)
			hr.Header.Set("Authorization", "Bearer "+tr.AccessToken)
			wantError(t, s.Do(t, hr), 401, "invalid_token")
		}
		if n := liveSessions(t, s, u.ID); n != 2 {
			t.Fatalf("%d sessions live, want both", n)
		}
		if r := bearerGet(t, s, "/userinfo", own); r.Status != 200 {
			t.Fatalf("a token for tokend itself: %d %s", r.Status, r.Body)
		}
	})
}

// TestLogoutWithTwoCookies: a sibling subdomain can toss its own
// tokend_refresh cookie; logout revokes every session a presented cookie
// names rather than answering 204 and revoking nothing.
func TestLogoutWithTwoCookies(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name})
		u := createUser(t, s, "two@example.com")
		_, c1 := webLogin(t, s, "two@example.com", testPassword)
		_, c2 := webLogin(t, s, "two@example.com", testPassword)
		req := s.NewRequest(t, http.MethodPost, "/auth/logout", nil)
		req.Header.Set("Cookie", "tokend_refresh="+c1+"; tokend_refresh=junk; tokend_refresh="+c2)
		if r := s.Do(t, req); r.Status != 204 {
			t.Fatalf("logout: %d %s", r.Status, r.Body)
		}
		if n := liveSessions(t, s, u.ID); n != 0 {
			t.Fatalf("%d sessions survived a logout that presented them", n)
		}
	})
}

// TestRefreshRateLimit: one session may rotate TOKEND_REFRESH_RATE_LIMIT
// times a minute; past that it gets 429 with Retry-After, its token stays
// usable, and nothing counts as reuse.
func TestRefreshRateLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		s := tokendtest.Start(t, tokendtest.Options{Backend: b.Name, Configure: func(c *config.Config) { c.RefreshRateLimit = 60 }})
		createUser(t, s, "busy@example.com")
		tok := nativeLogin(t, s, "busy@example.com", "").RefreshToken
		for i := range 59 { // the login's token is the first of the 60
			s.Clock.Advance(100 * time.Millisecond)
			tok = refreshed(t, nativeRefresh(t, s, tok)).RefreshToken
			_ = i
		}
		r := nativeRefresh(t, s, tok)
		wantError(t, r, 429, "rate_limited")
		// Retry-After is when a retry is sure to pass (the attack round saw
		// "1" while the window had most of its minute left).
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 1 {
			t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		s.Clock.Advance(time.Duration(ra) * time.Second)
		tok = refreshed(t, nativeRefresh(t, s, tok)).RefreshToken
		if r := nativeRefresh(t, s, tok); r.Status != 200 {
			t.Fatalf("the session after the limit: %d %s", r.Status, r.Body)
		}
	})
}
