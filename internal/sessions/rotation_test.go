package sessions_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
)

// fixture is a server with one native session of a fresh user.
type fixture struct {
	s     *tokendtest.Server
	user  store.User
	token string // the session's first refresh token
	famID string
}

func start(t *testing.T, backend string) fixture {
	t.Helper()
	s := tokendtest.Start(t, tokendtest.Options{Backend: backend})
	ctx := context.Background()
	u, err := s.Users.CreateVerified(ctx, "rot@example.com", "correct horse battery", audit.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.PasswordLogin(ctx, "mobile", "rot@example.com", "correct horse battery", audit.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{s: s, user: u, token: res.Refresh.Reveal()}
	fams, err := s.Store.ListSessions(ctx, u.ID, s.Clock.Now())
	if err != nil || len(fams) != 1 {
		t.Fatalf("sessions after login: %+v %v", fams, err)
	}
	f.famID = fams[0].ID
	return f
}

func (f fixture) refresh(t *testing.T, tok string) (*sessions.Result, error) {
	t.Helper()
	return f.s.Sessions.Refresh(context.Background(), sessions.RefreshRequest{Token: tok, Kind: store.ClientNative, ClientID: "mobile"})
}

func (f fixture) mustRefresh(t *testing.T, tok string) string {
	t.Helper()
	r, err := f.refresh(t, tok)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return r.Refresh.Reveal()
}

// rows counts the family's rows in refresh_families and refresh_tokens.
func (f fixture) rows(t *testing.T) (families, tokens int) {
	t.Helper()
	db := f.s.Store.Reader()
	if err := db.Get(&families, db.Rebind(`SELECT COUNT(*) FROM refresh_families WHERE id = ?`), f.famID); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&tokens, db.Rebind(`SELECT COUNT(*) FROM refresh_tokens WHERE family_id = ?`), f.famID); err != nil {
		t.Fatal(err)
	}
	return families, tokens
}

func (f fixture) family(t *testing.T) store.RefreshFamily {
	t.Helper()
	fam, err := f.s.Store.Family(context.Background(), f.famID)
	if err != nil {
		t.Fatal(err)
	}
	return fam
}

func (f fixture) audits(t *testing.T, typ string) int {
	t.Helper()
	evs, err := f.s.Store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// grantReason returns the reason of an invalid_grant (failing on any other
// error).
func grantReason(t *testing.T, err error) string {
	t.Helper()
	var ge *sessions.GrantError
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v, want an invalid_grant", err)
	}
	return ge.Reason
}

// TestOneRowPerSession: 1,000 rotations leave one family row and no token
// row; the first token, presented after them, is reuse and revokes the
// family (its newest token included), with an audit event.
func TestOneRowPerSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		f := start(t, b.Name)
		first, tok := f.token, f.token
		for i := range 1000 {
			f.s.Clock.Advance(10 * time.Second) // under the rate limit
			next := f.mustRefresh(t, tok)
			if next == tok {
				t.Fatalf("rotation %d returned the same token", i)
			}
			tok = next
		}
		if fams, toks := f.rows(t); fams != 1 || toks != 0 {
			t.Fatalf("after 1,000 rotations: %d family rows and %d token rows, want 1 and 0", fams, toks)
		}
		if fam := f.family(t); fam.Generation != 1001 || !fam.RotatedAt.Equal(f.s.Clock.Now()) {
			t.Fatalf("family after 1,000 rotations: %+v", fam)
		}
		_, err := f.refresh(t, first)
		if r := grantReason(t, err); !strings.Contains(r, "reuse") {
			t.Fatalf("the first token after 1,000 rotations: %q, want reuse", r)
		}
		if !f.family(t).Revoked() || f.audits(t, audit.RefreshReuseDetected) != 1 {
			t.Fatal("reuse did not revoke the family with an audit event")
		}
		if _, err := f.refresh(t, tok); err == nil {
			t.Fatal("the newest token of a revoked family rotated")
		}
	})
}

// TestRefreshGrace: a repeat of the previous generation inside the grace
// window answers with the same child and writes nothing; after the window
// it is reuse.
func TestRefreshGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		f := start(t, b.Name)
		child := f.mustRefresh(t, f.token)
		before := f.family(t)
		f.s.Clock.Advance(f.s.Config.RefreshReuseGrace)
		if again := f.mustRefresh(t, f.token); again != child {
			t.Fatal("a repeat inside the grace window got another child")
		}
		if after := f.family(t); after.Generation != before.Generation || !after.RotatedAt.Equal(before.RotatedAt) {
			t.Fatalf("a repeat wrote the family: %+v -> %+v", before, after)
		}
		f.s.Clock.Advance(time.Second)
		_, err := f.refresh(t, f.token)
		if r := grantReason(t, err); !strings.Contains(r, "reuse") {
			t.Fatalf("a repeat after the window: %q, want reuse", r)
		}
		if _, err := f.refresh(t, child); err == nil {
			t.Fatal("the child survived the reuse")
		}
	})
}

// TestRefreshExpiry: a token idles out TOKEND_REFRESH_TOKEN_TTL after its
// rotation, and every token dies at the session's absolute expiry, however
// often it rotates; neither writes anything.
func TestRefreshExpiry(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		f := start(t, b.Name)
		f.s.Clock.Advance(f.s.Config.RefreshTokenTTL - time.Second)
		tok := f.mustRefresh(t, f.token)
		f.s.Clock.Advance(f.s.Config.RefreshTokenTTL)
		before := f.family(t)
		_, err := f.refresh(t, tok)
		if r := grantReason(t, err); !strings.Contains(r, "expired") {
			t.Fatalf("an idle token: %q, want expired", r)
		}
		if after := f.family(t); after.Generation != before.Generation || after.Revoked() {
			t.Fatalf("an idled-out refresh wrote the family: %+v", after)
		}

		g := start(t, b.Name)
		tok = g.token
		step := g.s.Config.RefreshTokenTTL / 2
		for g.s.Clock.Now().Add(step).Before(g.family(t).ExpiresAt) {
			g.s.Clock.Advance(step)
			tok = g.mustRefresh(t, tok)
		}
		g.s.Clock.Set(g.family(t).ExpiresAt)
		gen := g.family(t).Generation
		_, err = g.refresh(t, tok)
		if r := grantReason(t, err); !strings.Contains(r, "expired") {
			t.Fatalf("past the absolute expiry: %q, want expired", r)
		}
		if fam := g.family(t); fam.Generation != gen || fam.Revoked() {
			t.Fatalf("an expired refresh wrote the family: %+v", fam)
		}
	})
}

// TestRefreshForged: a token with a bad MAC, an unknown key version, or
// cut short is invalid_grant (not reuse), and nothing is written.
func TestRefreshForged(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		f := start(t, b.Name)
		live := f.mustRefresh(t, f.token) // f.token is now generation 1 of 2
		raw, err := base64.RawURLEncoding.DecodeString(live)
		if err != nil || len(raw) != 61 {
			t.Fatalf("token of %d bytes (%v)", len(raw), err)
		}
		mutate := func(fn func(b []byte)) string {
			b := append([]byte(nil), raw...)
			fn(b)
			return base64.RawURLEncoding.EncodeToString(b)
		}
		before := f.family(t)
		cases := []struct{ name, token, reason string }{
			{"flipped MAC bit", mutate(func(b []byte) { b[60] ^= 1 }), "bad MAC"},
			{"generation changed", mutate(func(b []byte) { b[24] ^= 1 }), "bad MAC"},
			{"previous generation's MAC", mutate(func(b []byte) { b[24]-- }), "bad MAC"},
			{"unknown key version", mutate(func(b []byte) { b[28] = 2 }), "unknown key version"},
			{"other format byte", mutate(func(b []byte) { b[0] = 1 }), "malformed"},
			{"truncated", live[:len(live)-1], "malformed"},
			// Malformed or unknown, depending on its last bits.
			{"truncated to the old length", live[:opaque.EncodedLen], ""},
			{"extended", live + "A", "malformed"},
			{"padding", live + "=", "malformed"},
			{"empty", "", "malformed"},
		}
		for _, tc := range cases {
			_, err := f.refresh(t, tc.token)
			if r := grantReason(t, err); !strings.Contains(r, tc.reason) {
				t.Fatalf("%s: reason %q, want %q", tc.name, r, tc.reason)
			}
		}
		after := f.family(t)
		if after.Generation != before.Generation || !after.RotatedAt.Equal(before.RotatedAt) || after.Revoked() ||
			f.audits(t, audit.RefreshReuseDetected) != 0 {
			t.Fatalf("a forged token wrote something: %+v -> %+v", before, after)
		}
		if fams, toks := f.rows(t); fams != 1 || toks != 0 {
			t.Fatalf("%d family rows and %d token rows after forgeries", fams, toks)
		}
		// The live token still works.
		f.mustRefresh(t, live)
	})
}

// TestRefreshLegacy: a session written in the old form (a row in
// refresh_tokens) keeps working: its token rotates into a token of the new
// form and the family into generation 1; a repeat of the old token inside
// the grace window gets the same answer, and after it is reuse.
func TestRefreshLegacy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		f := start(t, b.Name)
		ctx := context.Background()
		now := f.s.Clock.Now()
		raw := opaque.New()
		famID := "0a3c6cc4-5e3c-4fd0-9b7a-0e6f3d1f2a11"
		err := f.s.Store.CreateSession(ctx, store.NewSession{
			Family: store.RefreshFamily{ID: famID, UserID: f.user.ID, ClientID: "mobile", Scope: "openid", CreatedAt: now,
				ExpiresAt: now.Add(f.s.Config.SessionMaxAge)},
			Legacy: &store.RefreshToken{Hash: opaque.Hash(raw), FamilyID: famID, UserID: f.user.ID, ClientID: "mobile",
				ClientKind: store.ClientNative, Scope: "openid", CreatedAt: now, ExpiresAt: now.Add(f.s.Config.RefreshTokenTTL)},
			CredentialVersion: f.user.CredentialVersion,
		})
		if err != nil {
			t.Fatal(err)
		}
		f.famID = famID
		old := opaque.Encode(raw).Reveal()
		f.s.Clock.Advance(time.Minute)
		res, err := f.refresh(t, old)
		if err != nil {
			t.Fatal(err)
		}
		next := res.Refresh.Reveal()
		if len(next) == len(old) || res.SessionID != famID {
			t.Fatalf("the answer to an old token: %d characters, session %s", len(next), res.SessionID)
		}
		if fam := f.family(t); fam.Generation != 1 || fam.ClientKind != store.ClientNative || !fam.RotatedAt.Equal(f.s.Clock.Now()) {
			t.Fatalf("the converted family: %+v", fam)
		}
		if fams, toks := f.rows(t); fams != 1 || toks != 1 {
			t.Fatalf("after the conversion: %d family rows and %d token rows, want 1 and 1", fams, toks)
		}
		if again := f.mustRefresh(t, old); again != next {
			t.Fatal("a repeat of the old token inside the grace window got another token")
		}
		// The new token rotates in place.
		f.s.Clock.Advance(time.Minute)
		newest := f.mustRefresh(t, next)
		if fams, toks := f.rows(t); fams != 1 || toks != 1 {
			t.Fatalf("after a rotation: %d family rows and %d token rows", fams, toks)
		}
		f.s.Clock.Advance(f.s.Config.RefreshReuseGrace + time.Second)
		_, err = f.refresh(t, old)
		if r := grantReason(t, err); !strings.Contains(r, "reuse") {
			t.Fatalf("a replay of the old token: %q, want reuse", r)
		}
		if !f.family(t).Revoked() {
			t.Fatal("reuse of the old token did not revoke the family")
		}
		if _, err := f.refresh(t, newest); err == nil {
			t.Fatal("the newest token survived the reuse")
		}
	})
}

// TestRefreshDisabledUser: a disabled user's live token is invalid_grant
// and revokes the family.
func TestRefreshDisabledUser(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		f := start(t, b.Name)
		if err := f.s.Store.DisableUser(context.Background(), f.user.ID, f.s.Clock.Now(), nil); err != nil {
			t.Fatal(err)
		}
		_, err := f.refresh(t, f.token)
		grantReason(t, err)
		if !f.family(t).Revoked() {
			t.Fatal("a disabled user's session is live")
		}
	})
}
