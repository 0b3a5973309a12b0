package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// session creates user u1 (if needed) and a family with one token.
func session(t *testing.T, s store.Store, famID, hash string, kind store.ClientKind) store.NewSession {
	t.Helper()
	c := ctx(t)
	if _, err := s.UserByID(c, "u1"); errors.Is(err, store.ErrNotFound) {
		must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	}
	client := "web"
	if kind == store.ClientNative {
		client = "mobile"
	}
	ns := store.NewSession{
		Family: store.RefreshFamily{ID: famID, UserID: "u1", ClientID: client, Scope: "openid", UserAgent: "test/1.0",
			Address: "192.0.2.7", CreatedAt: t0, ExpiresAt: t0.Add(90 * 24 * time.Hour)},
		Token: store.RefreshToken{Hash: hash, FamilyID: famID, UserID: "u1", ClientID: client, ClientKind: kind,
			Scope: "openid", CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)},
		Audit: &store.AuditEvent{Type: "login.succeeded", UserID: "u1", ClientID: client, CreatedAt: t0},
	}
	must(t, s.CreateSession(c, ns))
	return ns
}

func rotation(hash, child string, at time.Time) store.Rotation {
	return store.Rotation{Hash: hash, ClientKind: store.ClientWeb, ChildHash: child, At: at, ChildExpiresAt: at.Add(30 * 24 * time.Hour)}
}

func testSessionRotate(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", "h0", store.ClientWeb)
	at := t0.Add(time.Minute)
	parent, child, err := s.RotateRefreshToken(c, rotation("h0", "h1", at))
	must(t, err)
	if parent.Hash != "h0" || !parent.UsedAt.Equal(at) || parent.UserID != "u1" || parent.Scope != "openid" {
		t.Fatalf("parent %+v", parent)
	}
	if child.Hash != "h1" || child.FamilyID != "f1" || child.ParentHash != "h0" || child.ClientID != "web" ||
		child.ClientKind != store.ClientWeb || child.Scope != "openid" || !child.CreatedAt.Equal(at) || !child.UsedAt.IsZero() {
		t.Fatalf("child %+v", child)
	}
	if _, _, err := s.RotateRefreshToken(c, rotation("h0", "h1b", at)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotating a used token: %v", err)
	}
	tok, fam, err := s.RefreshToken(c, "h0")
	must(t, err)
	if !tok.UsedAt.Equal(at) || fam.ID != "f1" || fam.Revoked() {
		t.Fatalf("used token %+v family %+v", tok, fam)
	}
	if _, _, err := s.RefreshToken(c, "h1b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a failed rotation wrote its child")
	}
	// A 100-step chain.
	prev := "h1"
	for i := 2; i <= 100; i++ {
		next := fmt.Sprintf("h%d", i)
		if _, _, err := s.RotateRefreshToken(c, rotation(prev, next, at.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		prev = next
	}
	// The child's idle expiry is capped by the family's absolute expiry.
	late := rotation(prev, "hlast", t0.Add(29*24*time.Hour))
	late.ChildExpiresAt = late.At.Add(70 * 24 * time.Hour)
	_, capped, err := s.RotateRefreshToken(c, late)
	must(t, err)
	if !capped.ExpiresAt.Equal(t0.Add(90 * 24 * time.Hour)) {
		t.Fatalf("child expiry %v not capped at the family's %v", capped.ExpiresAt, t0.Add(90*24*time.Hour))
	}
}

func testSessionRotateRefused(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "fw", "web0", store.ClientWeb)
	session(t, s, "fn", "nat0", store.ClientNative)
	cases := []struct {
		name string
		r    store.Rotation
	}{
		{"unknown", rotation("nope", "x1", t0)},
		{"web token at the native endpoint", store.Rotation{Hash: "web0", ClientKind: store.ClientNative, ChildHash: "x2", At: t0, ChildExpiresAt: t0.Add(time.Hour)}},
		{"native token of another client", store.Rotation{Hash: "nat0", ClientKind: store.ClientNative, ClientID: "other", ChildHash: "x3", At: t0, ChildExpiresAt: t0.Add(time.Hour)}},
		{"expired", rotation("web0", "x4", t0.Add(31*24*time.Hour))},
	}
	for _, tc := range cases {
		if _, _, err := s.RotateRefreshToken(c, tc.r); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
	}
	// None of them consumed anything.
	for _, h := range []string{"web0", "nat0"} {
		tok, _, err := s.RefreshToken(c, h)
		must(t, err)
		if !tok.UsedAt.IsZero() {
			t.Fatalf("a refused rotation consumed %s", h)
		}
	}
	if _, _, err := s.RotateRefreshToken(c, store.Rotation{Hash: "nat0", ClientKind: store.ClientNative, ClientID: "mobile",
		ChildHash: "nat1", At: t0, ChildExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatalf("the right client: %v", err)
	}
	// A revoked family's tokens never rotate, the newest included.
	changed, err := s.RevokeFamily(c, "fn", t0, "test", &store.AuditEvent{Type: "session.revoked", CreatedAt: t0})
	must(t, err)
	if !changed {
		t.Fatal("revoke reported no change")
	}
	if _, _, err := s.RotateRefreshToken(c, store.Rotation{Hash: "nat1", ClientKind: store.ClientNative, ChildHash: "nat2",
		At: t0, ChildExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotating the newest token of a revoked family: %v", err)
	}
	if changed, _ := s.RevokeFamily(c, "fn", t0.Add(time.Hour), "again", &store.AuditEvent{Type: "session.revoked", CreatedAt: t0}); changed {
		t.Fatal("revoking twice changed the family again")
	}
	evs, _ := s.ListAudit(c, store.AuditFilter{Type: "session.revoked"})
	if len(evs) != 1 {
		t.Fatalf("%d revoke audit events, want 1", len(evs))
	}
	f, err := s.Family(c, "fn")
	must(t, err)
	if !f.RevokedAt.Equal(t0) || f.RevokeReason != "test" {
		t.Fatalf("family after revoke: %+v", f)
	}
}

// testSessionRotateConcurrent: many callers rotate one token at once;
// exactly one rotation happens and the family holds two tokens.
func testSessionRotateConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", "h0", store.ClientWeb)
	const n = 20
	errs := race(n, func(i int) error {
		_, _, err := s.RotateRefreshToken(c, rotation("h0", fmt.Sprintf("child%d", i), t0.Add(time.Second)))
		return err
	})
	oneWins(t, "rotating one token", errs, store.ErrNotFound)
	live := 0
	for i := range n {
		if _, _, err := s.RefreshToken(c, fmt.Sprintf("child%d", i)); err == nil {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d children stored, want 1", live)
	}
}

func testSessionList(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "old", "a0", store.ClientWeb)
	ns := session(t, s, "new", "b0", store.ClientNative)
	_ = ns
	// "new" is newer; give it a later creation by rotating nothing but
	// creating a third, later family that will be revoked.
	third := session(t, s, "gone", "c0", store.ClientWeb)
	_ = third
	must(t, s.CreateUser(c, newUser("u2", "u2@example.com"), nil))
	at := t0.Add(time.Hour)
	_, _, err := s.RotateRefreshToken(c, rotation("a0", "a1", at))
	must(t, err)
	if _, err := s.RevokeFamily(c, "gone", at, "logout", nil); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSessions(c, "u1", at)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("ListSessions = %d sessions, want 2 (revoked one excluded): %+v", len(list), list)
	}
	for _, f := range list {
		if f.ID == "old" && !f.LastUsedAt.Equal(at) {
			t.Fatalf("LastUsedAt of a rotated session = %v, want %v", f.LastUsedAt, at)
		}
		if f.UserAgent != "test/1.0" {
			t.Fatalf("user agent lost: %+v", f)
		}
	}
	if other, _ := s.ListSessions(c, "u2", at); len(other) != 0 {
		t.Fatal("another user's sessions listed")
	}
	// Idled out: the newest token expired.
	if idle, _ := s.ListSessions(c, "u1", t0.Add(30*24*time.Hour+30*time.Minute)); len(idle) != 1 || idle[0].ID != "old" {
		t.Fatalf("after 30 days only the rotated session lives: %+v", idle)
	}
	// Ownership.
	mustErrIs(t, s.RevokeUserFamily(c, "u2", "old", at, "x", nil), store.ErrNotFound)
	mustErrIs(t, s.RevokeUserFamily(c, "u1", "nope", at, "x", nil), store.ErrNotFound)
	must(t, s.RevokeUserFamily(c, "u1", "old", at, "user", nil))
	mustErrIs(t, s.RevokeUserFamily(c, "u1", "old", at, "user", nil), store.ErrNotFound)
	session(t, s, "f4", "d0", store.ClientWeb)
	session(t, s, "f5", "e0", store.ClientWeb)
	n, err := s.RevokeUserFamilies(c, "u1", "f5", at, "others", nil)
	must(t, err)
	if n != 2 {
		t.Fatalf("RevokeUserFamilies revoked %d, want 2 (new, f4)", n)
	}
	if list, _ := s.ListSessions(c, "u1", at); len(list) != 1 || list[0].ID != "f5" {
		t.Fatalf("after revoking the others: %+v", list)
	}
}

func testSessionDisableRevokes(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", "h0", store.ClientWeb)
	must(t, s.DisableUser(c, "u1", t0.Add(time.Minute), nil))
	if _, _, err := s.RotateRefreshToken(c, rotation("h0", "h1", t0.Add(2*time.Minute))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a disabled user's token rotated: %v", err)
	}
}

func testSessionRollback(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	_, err := s.HitThrottles(c, t0, time.Hour, "acct")
	must(t, err)
	err = s.CreateSession(c, store.NewSession{
		Family: store.RefreshFamily{ID: "f1", UserID: "u1", ClientID: "web", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		Token:  store.RefreshToken{Hash: "h0", FamilyID: "f1", UserID: "u1", ClientID: "web", ClientKind: store.ClientWeb, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		Audit:  badEvent,
		Settle: store.ThrottleSettlement{Clear: []string{"acct"}},
	})
	if err == nil {
		t.Fatal("CreateSession with a bad audit event succeeded")
	}
	if _, err := s.Family(c, "f1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("partial write: the family exists")
	}
	if _, _, err := s.RefreshToken(c, "h0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("partial write: the token exists")
	}
	if th, _ := s.Throttles(c, "acct"); len(th) != 1 {
		t.Fatal("partial write: the throttle was cleared")
	}
}

func testSessionPrune(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", "h0", store.ClientWeb)
	session(t, s, "f2", "k0", store.ClientWeb)
	_, err := s.RevokeFamily(c, "f2", t0, "x", nil)
	must(t, err)
	revoked := store.PruneTarget{Table: "refresh_families", Key: "id", Column: "revoked_at"}
	n, err := s.PruneBatch(c, revoked, t0, 100)
	must(t, err)
	if n != 0 {
		t.Fatalf("pruned %d families revoked at the cutoff", n)
	}
	n, err = s.PruneBatch(c, revoked, t0.Add(time.Second), 100)
	must(t, err)
	if n != 1 {
		t.Fatalf("pruned %d families, want the revoked one", n)
	}
	// Its token goes with it (the foreign key cascades); the live family
	// and its token stay.
	if _, _, err := s.RefreshToken(c, "k0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the pruned family's token: %v", err)
	}
	if _, _, err := s.RefreshToken(c, "h0"); err != nil {
		t.Fatalf("a live token was pruned: %v", err)
	}
}

func testThrottles(t *testing.T, s store.Store) {
	c := ctx(t)
	for i := 1; i <= 3; i++ {
		got, err := s.HitThrottles(c, t0.Add(time.Duration(i)*time.Minute), time.Hour, "b", "a")
		must(t, err)
		if len(got) != 2 || got[0].Key != "a" || got[0].Hits != i || !got[0].WindowStart.Equal(t0.Add(time.Minute)) {
			t.Fatalf("hit %d: %+v", i, got)
		}
	}
	th, err := s.Throttles(c, "a", "missing")
	must(t, err)
	if len(th) != 1 || th[0].Hits != 3 || !th[0].LastHit.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("Throttles = %+v", th)
	}
	// A hit after the window starts a new one.
	got, err := s.HitThrottles(c, t0.Add(2*time.Hour), time.Hour, "a")
	must(t, err)
	if got[0].Hits != 1 || !got[0].WindowStart.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("after the window: %+v", got)
	}
	must(t, s.SettleThrottles(c, store.ThrottleSettlement{Release: []string{"b", "missing"}}))
	if th, _ := s.Throttles(c, "b"); len(th) != 1 || th[0].Hits != 2 {
		t.Fatalf("Release did not give one hit back: %+v", th)
	}
	must(t, s.SettleThrottles(c, store.ThrottleSettlement{Clear: []string{"a"}}))
	if th, _ := s.Throttles(c, "a"); len(th) != 0 {
		t.Fatal("Clear left the counter")
	}
	// A marker is written, then overwritten, whole, and kept until it lapses.
	must(t, s.SettleThrottles(c, store.ThrottleSettlement{Mark: []store.Throttle{
		{Key: "m", WindowStart: t0, LastHit: t0.Add(time.Minute)}}}))
	must(t, s.SettleThrottles(c, store.ThrottleSettlement{Mark: []store.Throttle{
		{Key: "m", WindowStart: t0.Add(time.Minute), LastHit: t0.Add(30 * 24 * time.Hour)}}}))
	if th, _ := s.Throttles(c, "m"); len(th) != 1 || th[0].Hits != 1 || !th[0].WindowStart.Equal(t0.Add(time.Minute)) ||
		!th[0].LastHit.Equal(t0.Add(30*24*time.Hour)) {
		t.Fatalf("marker = %+v", th)
	}
	n, err := s.PruneBatch(c, store.PruneTarget{Table: "throttles", Key: "key", Column: "last_hit"}, t0.Add(time.Hour), 100)
	must(t, err)
	if n != 1 {
		t.Fatalf("pruning removed %d counters, want 1 (b)", n)
	}
	if th, _ := s.Throttles(c, "m"); len(th) != 1 {
		t.Fatal("pruning removed a marker before it lapsed")
	}
}

// testThrottlesConcurrent: concurrent hits are all counted (a limit holds
// across instances only if no hit is lost).
func testThrottlesConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.HitThrottles(c, t0, time.Hour, "ip", "acct"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	th, err := s.Throttles(c, "ip", "acct")
	must(t, err)
	for _, x := range th {
		if x.Hits != n {
			t.Fatalf("%s counted %d of %d concurrent hits", x.Key, x.Hits, n)
		}
	}
}

// testSessionCredentialCheck: a session is created only while the user is
// enabled at the credential version the login checked; otherwise nothing is
// written, the throttle settlement included.
func testSessionCredentialCheck(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f0", "h0", store.ClientWeb) // creates u1 at version 0
	_, err := s.HitThrottles(c, t0, time.Hour, "acct")
	must(t, err)
	newSession := func(fam, hash string, version int64) store.NewSession {
		ns := session0(fam, hash)
		ns.CredentialVersion = version
		ns.Settle = store.ThrottleSettlement{Clear: []string{"acct"}}
		return ns
	}
	mustErrIs(t, s.CreateSession(c, newSession("f1", "h1", 1)), store.ErrStale)
	if _, err := s.Family(c, "f1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused session was written")
	}
	if th, _ := s.Throttles(c, "acct"); len(th) != 1 {
		t.Fatal("a refused session settled its throttles")
	}
	// A reset bumps the version: the version the login checked is stale.
	must(t, s.IssueOneTime(c, newReset("u1", "r1", "j1", t0)))
	_, err = s.UseOneTime(c, resetUse("r1", t0.Add(time.Minute), "$argon2id$new"))
	must(t, err)
	u, err := s.UserByID(c, "u1")
	must(t, err)
	if u.CredentialVersion == 0 {
		t.Fatal("a reset did not change the credential version")
	}
	mustErrIs(t, s.CreateSession(c, newSession("f2", "h2", 0)), store.ErrStale)
	must(t, s.CreateSession(c, newSession("f3", "h3", u.CredentialVersion)))
	if th, _ := s.Throttles(c, "acct"); len(th) != 0 {
		t.Fatal("a created session did not settle its throttles")
	}
	// A rehash after login does not change the credential.
	must(t, s.UpdatePasswordHash(c, "u1", "$argon2id$new", "$argon2id$newer", t0.Add(2*time.Minute)))
	if u2, _ := s.UserByID(c, "u1"); u2.CredentialVersion != u.CredentialVersion {
		t.Fatal("a rehash changed the credential version")
	}
	// A disabled user gets no session.
	must(t, s.DisableUser(c, "u1", t0.Add(3*time.Minute), nil))
	mustErrIs(t, s.CreateSession(c, newSession("f4", "h4", u.CredentialVersion)), store.ErrStale)
}

// session0 is a session of u1 (which must exist) without writing it.
func session0(famID, hash string) store.NewSession {
	return store.NewSession{
		Family: store.RefreshFamily{ID: famID, UserID: "u1", ClientID: "web", CreatedAt: t0, ExpiresAt: t0.Add(90 * 24 * time.Hour)},
		Token: store.RefreshToken{Hash: hash, FamilyID: famID, UserID: "u1", ClientID: "web", ClientKind: store.ClientWeb,
			CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)},
	}
}

// testSessionCreateRacesReset: logins that checked the old password race a
// reset (and then a disable). Whatever the interleaving, no family of the
// user is live afterwards: each creation either failed or was revoked.
func testSessionCreateRacesReset(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	const rounds, logins = 10, 6
	var version int64
	for round := range rounds {
		must(t, s.IssueOneTime(c, newReset("u1", fmt.Sprintf("r%d", round), fmt.Sprintf("j%d", round), t0)))
		errs := race(logins+1, func(i int) error {
			if i == logins {
				_, err := s.UseOneTime(c, resetUse(fmt.Sprintf("r%d", round), t0.Add(time.Minute),
					fmt.Sprintf("$argon2id$%d", round)))
				return err
			}
			ns := session0(fmt.Sprintf("f%d-%d", round, i), fmt.Sprintf("h%d-%d", round, i))
			ns.CredentialVersion = version
			return s.CreateSession(c, ns)
		})
		for i, err := range errs {
			if err != nil && (i == logins || !errors.Is(err, store.ErrStale)) {
				t.Fatalf("round %d racer %d: %v", round, i, err)
			}
		}
		if live, _ := s.ListSessions(c, "u1", t0.Add(time.Minute)); len(live) != 0 {
			t.Fatalf("round %d: %d sessions created with the old password survived the reset", round, len(live))
		}
		u, err := s.UserByID(c, "u1")
		must(t, err)
		version = u.CredentialVersion
	}
	errs := race(logins+1, func(i int) error {
		if i == logins {
			return s.DisableUser(c, "u1", t0.Add(2*time.Minute), nil)
		}
		ns := session0(fmt.Sprintf("d-%d", i), fmt.Sprintf("hd-%d", i))
		ns.CredentialVersion = version
		return s.CreateSession(c, ns)
	})
	for i, err := range errs {
		if err != nil && (i == logins || !errors.Is(err, store.ErrStale)) {
			t.Fatalf("disable racer %d: %v", i, err)
		}
	}
	if live, _ := s.ListSessions(c, "u1", t0.Add(2*time.Minute)); len(live) != 0 {
		t.Fatalf("%d sessions survived the disable", len(live))
	}
}

// testSessionRotateRateLimit: a family past its rate limit does not rotate
// (and nothing is written); RecentRotations counts its recent tokens.
func testSessionRotateRateLimit(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", "h0", store.ClientWeb) // its first token, created at t0
	limited := func(hash, child string, at time.Time) store.Rotation {
		r := rotation(hash, child, at)
		r.RateLimit, r.RateSince = 3, at.Add(-time.Minute)
		return r
	}
	at := t0.Add(time.Second)
	for i := 1; i <= 2; i++ {
		_, _, err := s.RotateRefreshToken(c, limited(fmt.Sprintf("h%d", i-1), fmt.Sprintf("h%d", i), at))
		must(t, err)
	}
	n, err := s.RecentRotations(c, "f1", at.Add(-time.Minute))
	must(t, err)
	if n != 3 {
		t.Fatalf("RecentRotations = %d, want 3", n)
	}
	if _, _, err := s.RotateRefreshToken(c, limited("h2", "h3", at)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a 4th token within a minute under a limit of 3: %v", err)
	}
	if tok, _, err := s.RefreshToken(c, "h2"); err != nil || !tok.UsedAt.IsZero() {
		t.Fatalf("a refused rotation used its token: %+v %v", tok, err)
	}
	// A minute later the window has moved on.
	_, _, err = s.RotateRefreshToken(c, limited("h2", "h3", at.Add(time.Minute)))
	must(t, err)
}

// testThrottlesUpdateConcurrent: concurrent conditional updates of a
// counter run one after the other, so a limit of 5 admits exactly 5 of 20.
func testThrottlesUpdateConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	errFull := errors.New("full")
	errs := race(20, func(int) error {
		return s.UpdateThrottles(c, []string{"acct", "ip"}, func(cur []store.Throttle) ([]store.Throttle, error) {
			if len(cur) != 2 || cur[0].Key != "acct" || cur[1].Key != "ip" {
				return nil, fmt.Errorf("decide got %+v", cur)
			}
			if cur[0].Hits >= 5 {
				return nil, errFull
			}
			for i := range cur {
				if cur[i].Hits == 0 {
					cur[i].WindowStart = t0
				}
				cur[i].Hits++
				cur[i].LastHit = t0
			}
			return cur, nil
		})
	})
	admitted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			admitted++
		case !errors.Is(err, errFull):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if admitted != 5 {
		t.Fatalf("%d of 20 concurrent reservations admitted under a limit of 5", admitted)
	}
	th, err := s.Throttles(c, "acct", "ip")
	must(t, err)
	if len(th) != 2 || th[0].Hits != 5 || th[1].Hits != 5 {
		t.Fatalf("counters after the race: %+v", th)
	}
	// A refusal writes nothing, not even the counter it would create.
	err = s.UpdateThrottles(c, []string{"new"}, func(cur []store.Throttle) ([]store.Throttle, error) {
		if cur[0].Hits != 0 || cur[0].Key != "new" {
			return nil, fmt.Errorf("an absent counter read as %+v", cur[0])
		}
		return nil, errFull
	})
	mustErrIs(t, err, errFull)
	if th, _ := s.Throttles(c, "new"); len(th) != 0 {
		t.Fatal("a refused update left a counter")
	}
}
