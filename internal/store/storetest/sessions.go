package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tokend/tokend/internal/store"
)

// clientOf is the client of a test family of the given kind.
func clientOf(kind store.ClientKind) string {
	if kind == store.ClientNative {
		return "mobile"
	}
	return "web"
}

func ensureU1(t *testing.T, s store.Store) {
	t.Helper()
	c := ctx(t)
	if _, err := s.UserByID(c, "u1"); errors.Is(err, store.ErrNotFound) {
		must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	}
}

// session creates user u1 (if needed) and a family at generation 1, issued
// at t0, idle for 30 days, absolute for 90.
func session(t *testing.T, s store.Store, famID string, kind store.ClientKind) store.NewSession {
	t.Helper()
	ensureU1(t, s)
	client := clientOf(kind)
	ns := store.NewSession{
		Family: store.RefreshFamily{ID: famID, UserID: "u1", ClientID: client, Scope: "openid", UserAgent: "test/1.0",
			Address: "192.0.2.7", CreatedAt: t0, ExpiresAt: t0.Add(90 * 24 * time.Hour), ClientKind: kind,
			IdleExpiresAt: t0.Add(30 * 24 * time.Hour)},
		Audit: &store.AuditEvent{Type: "login.succeeded", UserID: "u1", ClientID: client, CreatedAt: t0},
	}
	must(t, s.CreateSession(ctx(t), ns))
	return ns
}

// legacySession creates user u1 (if needed) and a family of the old form
// (generation 0) with its first token hash as a row in refresh_tokens.
func legacySession(t *testing.T, s store.Store, famID, hash string, kind store.ClientKind) store.NewSession {
	t.Helper()
	ensureU1(t, s)
	client := clientOf(kind)
	ns := store.NewSession{
		Family: store.RefreshFamily{ID: famID, UserID: "u1", ClientID: client, Scope: "openid", UserAgent: "test/1.0",
			Address: "192.0.2.7", CreatedAt: t0, ExpiresAt: t0.Add(90 * 24 * time.Hour)},
		Legacy: &store.RefreshToken{Hash: hash, FamilyID: famID, UserID: "u1", ClientID: client, ClientKind: kind,
			Scope: "openid", CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)},
		Audit: &store.AuditEvent{Type: "login.succeeded", UserID: "u1", ClientID: client, CreatedAt: t0},
	}
	must(t, s.CreateSession(ctx(t), ns))
	return ns
}

// rotation rotates the old-form token hash of a web client at `at`.
func rotation(hash string, at time.Time) store.Rotation {
	return store.Rotation{Hash: hash, ClientKind: store.ClientWeb, At: at, IdleExpiresAt: at.Add(30 * 24 * time.Hour)}
}

// frot rotates web family fam from generation gen at `at`.
func frot(fam string, gen int64, at time.Time) store.FamilyRotation {
	return store.FamilyRotation{FamilyID: fam, Generation: gen, ClientKind: store.ClientWeb, At: at,
		IdleExpiresAt: at.Add(30 * 24 * time.Hour)}
}

// rowsOf counts a family's rows in refresh_families and refresh_tokens, on
// stores whose database the suite can read (ok false otherwise).
func rowsOf(t *testing.T, s store.Store, famID string) (families, tokens int, ok bool) {
	t.Helper()
	r, ok := s.(interface{ Reader() *sqlx.DB })
	if !ok {
		return 0, 0, false
	}
	db := r.Reader()
	must(t, db.Get(&families, db.Rebind(`SELECT COUNT(*) FROM refresh_families WHERE id = ?`), famID))
	must(t, db.Get(&tokens, db.Rebind(`SELECT COUNT(*) FROM refresh_tokens WHERE family_id = ?`), famID))
	return families, tokens, true
}

func testSessionCreate(t *testing.T, s store.Store) {
	c := ctx(t)
	ns := session(t, s, "f1", store.ClientNative)
	f, err := s.Family(c, "f1")
	must(t, err)
	if f.Generation != 1 || f.ClientKind != store.ClientNative || f.ClientID != "mobile" || !f.RotatedAt.Equal(t0) ||
		!f.IdleExpiresAt.Equal(ns.Family.IdleExpiresAt) || !f.ExpiresAt.Equal(ns.Family.ExpiresAt) || f.Scope != "openid" {
		t.Fatalf("a new family: %+v", f)
	}
	if fams, toks, ok := rowsOf(t, s, "f1"); ok && (fams != 1 || toks != 0) {
		t.Fatalf("a new session wrote %d family rows and %d token rows, want 1 and 0", fams, toks)
	}
	// The idle expiry is capped at the absolute one.
	long := session0("f2")
	long.Family.IdleExpiresAt = long.Family.ExpiresAt.Add(time.Hour)
	must(t, s.CreateSession(c, long))
	if f, _ := s.Family(c, "f2"); !f.IdleExpiresAt.Equal(long.Family.ExpiresAt) {
		t.Fatalf("idle expiry %v not capped at %v", f.IdleExpiresAt, long.Family.ExpiresAt)
	}
	// The old form: generation 0 and a token row.
	legacySession(t, s, "f3", "h0", store.ClientWeb)
	if f, _ := s.Family(c, "f3"); f.Generation != 0 {
		t.Fatalf("a family of the old form at generation %d", f.Generation)
	}
	if tok, fam, err := s.RefreshToken(c, "h0"); err != nil || tok.FamilyID != "f3" || fam.ID != "f3" || !tok.UsedAt.IsZero() {
		t.Fatalf("the first token of the old form: %+v %+v %v", tok, fam, err)
	}
}

// testSessionRotate: a rotation moves the family one generation on, in
// place; 1,000 rotations leave one row.
func testSessionRotate(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", store.ClientWeb)
	at := t0.Add(time.Minute)
	f, err := s.RotateFamily(c, frot("f1", 1, at))
	must(t, err)
	if f.ID != "f1" || f.Generation != 2 || !f.RotatedAt.Equal(at) || !f.IdleExpiresAt.Equal(at.Add(30*24*time.Hour)) ||
		f.UserID != "u1" || f.ClientID != "web" || f.ClientKind != store.ClientWeb || f.Scope != "openid" || f.UserAgent != "test/1.0" {
		t.Fatalf("rotated family %+v", f)
	}
	_, err = s.RotateFamily(c, frot("f1", 1, at))
	mustErrIs(t, err, store.ErrNotFound)
	got, err := s.Family(c, "f1")
	must(t, err)
	if got.Generation != 2 || !got.RotatedAt.Equal(at) || got.Revoked() {
		t.Fatalf("after a refused second rotation: %+v", got)
	}
	for gen := int64(2); gen <= 1000; gen++ {
		if _, err := s.RotateFamily(c, frot("f1", gen, at.Add(time.Duration(gen)*time.Second))); err != nil {
			t.Fatalf("generation %d: %v", gen, err)
		}
	}
	if f, _ := s.Family(c, "f1"); f.Generation != 1001 {
		t.Fatalf("generation %d after 1,000 rotations", f.Generation)
	}
	if fams, toks, ok := rowsOf(t, s, "f1"); ok && (fams != 1 || toks != 0) {
		t.Fatalf("after 1,000 rotations: %d family rows and %d token rows, want 1 and 0", fams, toks)
	}
	// The idle expiry is capped by the family's absolute expiry.
	late := frot("f1", 1001, t0.Add(29*24*time.Hour))
	late.IdleExpiresAt = late.At.Add(70 * 24 * time.Hour)
	capped, err := s.RotateFamily(c, late)
	must(t, err)
	if !capped.IdleExpiresAt.Equal(t0.Add(90 * 24 * time.Hour)) {
		t.Fatalf("idle expiry %v not capped at the family's %v", capped.IdleExpiresAt, t0.Add(90*24*time.Hour))
	}
}

func testSessionRotateRefused(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "fw", store.ClientWeb)
	session(t, s, "fn", store.ClientNative)
	native := func(gen int64, client string, at time.Time) store.FamilyRotation {
		r := frot("fn", gen, at)
		r.ClientKind, r.ClientID = store.ClientNative, client
		return r
	}
	cases := []struct {
		name string
		r    store.FamilyRotation
	}{
		{"unknown", frot("nope", 1, t0)},
		{"unstorable id", frot("bad\x00id", 1, t0)},
		{"generation 0", frot("fw", 0, t0)},
		{"a generation ahead", frot("fw", 2, t0)},
		{"web family at the native endpoint", func() store.FamilyRotation {
			r := frot("fw", 1, t0)
			r.ClientKind = store.ClientNative
			return r
		}()},
		{"native family of another client", native(1, "other", t0)},
		{"idled out", frot("fw", 1, t0.Add(30*24*time.Hour))},
		{"past its absolute expiry", frot("fw", 1, t0.Add(91*24*time.Hour))},
	}
	for _, tc := range cases {
		if _, err := s.RotateFamily(c, tc.r); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
	}
	// None of them changed anything.
	for _, id := range []string{"fw", "fn"} {
		f, err := s.Family(c, id)
		must(t, err)
		if f.Generation != 1 || !f.RotatedAt.Equal(t0) {
			t.Fatalf("a refused rotation changed %s: %+v", id, f)
		}
	}
	_, err := s.RotateFamily(c, native(1, "mobile", t0))
	must(t, err)
	// A revoked family never rotates, its newest generation included.
	changed, err := s.RevokeFamily(c, "fn", t0, "test", &store.AuditEvent{Type: "session.revoked", CreatedAt: t0})
	must(t, err)
	if !changed {
		t.Fatal("revoke reported no change")
	}
	_, err = s.RotateFamily(c, native(2, "", t0))
	mustErrIs(t, err, store.ErrNotFound)
	if changed, _ := s.RevokeFamily(c, "fn", t0.Add(time.Hour), "again", &store.AuditEvent{Type: "session.revoked", CreatedAt: t0}); changed {
		t.Fatal("revoking twice changed the family again")
	}
	evs, _ := s.ListAudit(c, store.AuditFilter{Type: "session.revoked"})
	if len(evs) != 1 {
		t.Fatalf("%d revoke audit events, want 1", len(evs))
	}
	f, err := s.Family(c, "fn")
	must(t, err)
	if !f.RevokedAt.Equal(t0) || f.RevokeReason != "test" || f.Generation != 2 {
		t.Fatalf("family after revoke: %+v", f)
	}
}

// testSessionRotateLegacy: the live token of a family of the old form
// rotates once more: its row is marked used and the family moves to
// generation 1, with no new token row.
func testSessionRotateLegacy(t *testing.T, s store.Store) {
	c := ctx(t)
	legacySession(t, s, "f1", "h0", store.ClientWeb)
	legacySession(t, s, "fn", "n0", store.ClientNative)
	cases := []struct {
		name string
		r    store.Rotation
	}{
		{"unknown", rotation("nope", t0)},
		{"web token at the native endpoint", store.Rotation{Hash: "h0", ClientKind: store.ClientNative, At: t0, IdleExpiresAt: t0.Add(time.Hour)}},
		{"native token of another client", store.Rotation{Hash: "n0", ClientKind: store.ClientNative, ClientID: "other", At: t0, IdleExpiresAt: t0.Add(time.Hour)}},
		{"expired", rotation("h0", t0.Add(31*24*time.Hour))},
	}
	for _, tc := range cases {
		if _, _, err := s.RotateRefreshToken(c, tc.r); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
	}
	if tok, fam, _ := s.RefreshToken(c, "h0"); !tok.UsedAt.IsZero() || fam.Generation != 0 {
		t.Fatalf("a refused rotation changed the token or family: %+v %+v", tok, fam)
	}
	at := t0.Add(time.Minute)
	parent, fam, err := s.RotateRefreshToken(c, rotation("h0", at))
	must(t, err)
	if parent.Hash != "h0" || !parent.UsedAt.Equal(at) || parent.FamilyID != "f1" || parent.Scope != "openid" {
		t.Fatalf("parent %+v", parent)
	}
	if fam.ID != "f1" || fam.Generation != 1 || !fam.RotatedAt.Equal(at) || fam.ClientKind != store.ClientWeb ||
		!fam.IdleExpiresAt.Equal(at.Add(30*24*time.Hour)) || fam.UserID != "u1" || fam.Scope != "openid" {
		t.Fatalf("converted family %+v", fam)
	}
	_, _, err = s.RotateRefreshToken(c, rotation("h0", at))
	mustErrIs(t, err, store.ErrNotFound)
	if tok, f, _ := s.RefreshToken(c, "h0"); !tok.UsedAt.Equal(at) || f.Generation != 1 {
		t.Fatalf("after the conversion: %+v %+v", tok, f)
	}
	if fams, toks, ok := rowsOf(t, s, "f1"); ok && (fams != 1 || toks != 1) {
		t.Fatalf("after the conversion: %d family rows and %d token rows, want 1 and 1", fams, toks)
	}
	// From there the family rotates in place.
	f, err := s.RotateFamily(c, frot("f1", 1, at.Add(time.Second)))
	must(t, err)
	if f.Generation != 2 {
		t.Fatalf("generation %d", f.Generation)
	}
	// A revoked or disabled user's old-form token does not rotate.
	_, err = s.RevokeFamily(c, "fn", at, "test", nil)
	must(t, err)
	_, _, err = s.RotateRefreshToken(c, store.Rotation{Hash: "n0", ClientKind: store.ClientNative, At: at, IdleExpiresAt: at.Add(time.Hour)})
	mustErrIs(t, err, store.ErrNotFound)
}

// testSessionRotateConcurrent: many callers rotate one generation (or one
// token of the old form) at once; exactly one rotation happens.
func testSessionRotateConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", store.ClientWeb)
	const n = 20
	errs := race(n, func(i int) error {
		_, err := s.RotateFamily(c, frot("f1", 1, t0.Add(time.Second)))
		return err
	})
	oneWins(t, "rotating one generation", errs, store.ErrNotFound)
	if f, _ := s.Family(c, "f1"); f.Generation != 2 {
		t.Fatalf("generation %d after the race, want 2", f.Generation)
	}
	legacySession(t, s, "f2", "h0", store.ClientWeb)
	errs = race(n, func(i int) error {
		_, _, err := s.RotateRefreshToken(c, rotation("h0", t0.Add(time.Second)))
		return err
	})
	oneWins(t, "rotating one token of the old form", errs, store.ErrNotFound)
	if f, _ := s.Family(c, "f2"); f.Generation != 1 {
		t.Fatalf("generation %d after the race, want 1", f.Generation)
	}
}

func testSessionList(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "old", store.ClientWeb)
	session(t, s, "new", store.ClientNative)
	session(t, s, "gone", store.ClientWeb)
	legacySession(t, s, "legacy", "l0", store.ClientWeb)
	must(t, s.CreateUser(c, newUser("u2", "u2@example.com"), nil))
	at := t0.Add(time.Hour)
	_, err := s.RotateFamily(c, frot("old", 1, at))
	must(t, err)
	if _, err := s.RevokeFamily(c, "gone", at, "logout", nil); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListSessions(c, "u1", at)
	must(t, err)
	if len(list) != 3 {
		t.Fatalf("ListSessions = %d sessions, want 3 (revoked one excluded): %+v", len(list), list)
	}
	for _, f := range list {
		want := t0
		if f.ID == "old" {
			want = at
		}
		if !f.LastUsedAt.Equal(want) {
			t.Fatalf("LastUsedAt of %s = %v, want %v", f.ID, f.LastUsedAt, want)
		}
		if f.UserAgent != "test/1.0" {
			t.Fatalf("user agent lost: %+v", f)
		}
	}
	if other, _ := s.ListSessions(c, "u2", at); len(other) != 0 {
		t.Fatal("another user's sessions listed")
	}
	// Idled out: the live generation (or newest old-form token) expired.
	if idle, _ := s.ListSessions(c, "u1", t0.Add(30*24*time.Hour+30*time.Minute)); len(idle) != 1 || idle[0].ID != "old" {
		t.Fatalf("after 30 days only the rotated session lives: %+v", idle)
	}
	// Ownership.
	mustErrIs(t, s.RevokeUserFamily(c, "u2", "old", at, "x", nil), store.ErrNotFound)
	mustErrIs(t, s.RevokeUserFamily(c, "u1", "nope", at, "x", nil), store.ErrNotFound)
	must(t, s.RevokeUserFamily(c, "u1", "old", at, "user", nil))
	mustErrIs(t, s.RevokeUserFamily(c, "u1", "old", at, "user", nil), store.ErrNotFound)
	session(t, s, "f4", store.ClientWeb)
	session(t, s, "f5", store.ClientWeb)
	n, err := s.RevokeUserFamilies(c, "u1", "f5", at, "others", nil)
	must(t, err)
	if n != 3 {
		t.Fatalf("RevokeUserFamilies revoked %d, want 3 (new, legacy, f4)", n)
	}
	if list, _ := s.ListSessions(c, "u1", at); len(list) != 1 || list[0].ID != "f5" {
		t.Fatalf("after revoking the others: %+v", list)
	}
}

func testSessionDisableRevokes(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", store.ClientWeb)
	legacySession(t, s, "f2", "h0", store.ClientWeb)
	must(t, s.DisableUser(c, "u1", t0.Add(time.Minute), nil))
	if _, err := s.RotateFamily(c, frot("f1", 1, t0.Add(2*time.Minute))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a disabled user's family rotated: %v", err)
	}
	if _, _, err := s.RotateRefreshToken(c, rotation("h0", t0.Add(2*time.Minute))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a disabled user's token of the old form rotated: %v", err)
	}
}

func testSessionRollback(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	_, err := s.HitThrottles(c, t0, time.Hour, "acct")
	must(t, err)
	err = s.CreateSession(c, store.NewSession{
		Family: store.RefreshFamily{ID: "f1", UserID: "u1", ClientID: "web", ClientKind: store.ClientWeb, CreatedAt: t0,
			ExpiresAt: t0.Add(time.Hour), IdleExpiresAt: t0.Add(time.Hour)},
		Audit:  badEvent,
		Settle: store.ThrottleSettlement{Clear: []string{"acct"}},
	})
	if err == nil {
		t.Fatal("CreateSession with a bad audit event succeeded")
	}
	if _, err := s.Family(c, "f1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("partial write: the family exists")
	}
	if th, _ := s.Throttles(c, "acct"); len(th) != 1 {
		t.Fatal("partial write: the throttle was cleared")
	}
}

func testSessionPrune(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", store.ClientWeb)
	session(t, s, "f2", store.ClientWeb)
	legacySession(t, s, "f3", "k0", store.ClientWeb)
	for _, id := range []string{"f2", "f3"} {
		_, err := s.RevokeFamily(c, id, t0, "x", nil)
		must(t, err)
	}
	revoked := store.PruneTarget{Table: "refresh_families", Key: "id", Column: "revoked_at"}
	n, err := s.PruneBatch(c, revoked, t0, 100)
	must(t, err)
	if n != 0 {
		t.Fatalf("pruned %d families revoked at the cutoff", n)
	}
	n, err = s.PruneBatch(c, revoked, t0.Add(time.Second), 100)
	must(t, err)
	if n != 2 {
		t.Fatalf("pruned %d families, want the two revoked ones", n)
	}
	// The old-form token goes with its family (the foreign key cascades);
	// the live family stays.
	if _, _, err := s.RefreshToken(c, "k0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the pruned family's old-form token: %v", err)
	}
	if _, err := s.Family(c, "f1"); err != nil {
		t.Fatalf("a live family was pruned: %v", err)
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
	session(t, s, "f0", store.ClientWeb) // creates u1 at version 0
	_, err := s.HitThrottles(c, t0, time.Hour, "acct")
	must(t, err)
	newSession := func(fam, _ string, version int64) store.NewSession {
		ns := session0(fam)
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
func session0(famID string) store.NewSession {
	return store.NewSession{
		Family: store.RefreshFamily{ID: famID, UserID: "u1", ClientID: "web", ClientKind: store.ClientWeb, CreatedAt: t0,
			ExpiresAt: t0.Add(90 * 24 * time.Hour), IdleExpiresAt: t0.Add(30 * 24 * time.Hour)},
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
			ns := session0(fmt.Sprintf("f%d-%d", round, i))
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
		ns := session0(fmt.Sprintf("d-%d", i))
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
// (and nothing is written); RecentRotations counts the tokens of its
// window, the first one included.
func testSessionRotateRateLimit(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", store.ClientWeb) // its first token, issued at t0
	limited := func(gen int64, at time.Time) store.FamilyRotation {
		r := frot("f1", gen, at)
		r.RateLimit, r.RateSince = 3, at.Add(-time.Minute)
		return r
	}
	at := t0.Add(time.Second)
	for gen := int64(1); gen <= 2; gen++ {
		_, err := s.RotateFamily(c, limited(gen, at))
		must(t, err)
	}
	n, err := s.RecentRotations(c, "f1", at.Add(-time.Minute))
	must(t, err)
	if n != 3 {
		t.Fatalf("RecentRotations = %d, want 3", n)
	}
	_, err = s.RotateFamily(c, limited(3, at))
	mustErrIs(t, err, store.ErrNotFound)
	if f, _ := s.Family(c, "f1"); f.Generation != 3 || !f.RotatedAt.Equal(at) {
		t.Fatalf("a refused rotation changed the family: %+v", f)
	}
	// A minute after the window opened, a new one starts.
	next := t0.Add(time.Minute)
	f, err := s.RotateFamily(c, limited(3, next))
	must(t, err)
	if f.Generation != 4 {
		t.Fatalf("generation %d after the window moved on", f.Generation)
	}
	if n, _ := s.RecentRotations(c, "f1", next.Add(-time.Minute)); n != 1 {
		t.Fatalf("RecentRotations in the new window = %d, want 1", n)
	}
	// A family of the old form counts its token rows.
	legacySession(t, s, "old", "o0", store.ClientWeb)
	if n, _ := s.RecentRotations(c, "old", t0.Add(-time.Minute)); n != 1 {
		t.Fatalf("RecentRotations of a family of the old form = %d, want 1", n)
	}
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
