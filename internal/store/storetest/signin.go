package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// signIn writes a sign-in session of u1 (created if needed).
func signIn(t *testing.T, s store.Store, id string) store.SignIn {
	t.Helper()
	c := ctx(t)
	if _, err := s.UserByID(c, "u1"); errors.Is(err, store.ErrNotFound) {
		must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	}
	si := store.SignIn{ID: id, SecretHash: "hash-" + id, UserID: "u1", AuthTime: t0, AMR: []string{"pwd"}, UserAgent: "browser/1",
		Address: "192.0.2.5", CreatedAt: t0, LastUsedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
	must(t, s.CreateSignIn(c, store.NewSignIn{SignIn: si, Audit: &store.AuditEvent{Type: "login.succeeded", UserID: "u1", CreatedAt: t0}}))
	return si
}

// code is a code of the sign-in session si for client "mobile".
func code(hash string, si store.SignIn, at time.Time) store.AuthCode {
	return store.AuthCode{Hash: hash, ClientID: "mobile", RedirectURI: "http://127.0.0.1/cb", CodeChallenge: "chal", Nonce: "n-0S6",
		Scope: "openid email", SignInID: si.ID, UserID: si.UserID, AuthTime: si.AuthTime, AMR: si.AMR, CreatedAt: at,
		ExpiresAt: at.Add(time.Minute)}
}

// exchange is the exchange of code hash by "mobile" with the code()
// defaults, starting family fam.
func exchange(hash, fam string, si store.SignIn, at time.Time) store.CodeExchange {
	return store.CodeExchange{Hash: hash, ClientID: "mobile", RedirectURI: "http://127.0.0.1/cb", Challenge: "chal", At: at,
		FamilyID: fam, FamilyExpiresAt: at.Add(90 * 24 * time.Hour), TokenExpiresAt: at.Add(30 * 24 * time.Hour),
		ClientKind: store.ClientNative, UserAgent: "app/1", Address: "192.0.2.8",
		Audit: &store.AuditEvent{Type: "login.succeeded", ClientID: "mobile", CreatedAt: at}}
}

func testSignInCreate(t *testing.T, s store.Store) {
	c := ctx(t)
	si := signIn(t, s, "s1")
	got, err := s.SignIn(c, "s1")
	must(t, err)
	if got.SecretHash != si.SecretHash || got.UserID != "u1" || !got.AuthTime.Equal(t0) || !slices.Equal(got.AMR, []string{"pwd"}) ||
		got.UserAgent != "browser/1" || !got.ExpiresAt.Equal(si.ExpiresAt) || got.Revoked() {
		t.Fatalf("SignIn = %+v", got)
	}
	_, err = s.SignIn(c, "nope")
	mustErrIs(t, err, store.ErrNotFound)
	// The same guard as a session: a stale credential writes nothing.
	stale := si
	stale.ID = "s2"
	mustErrIs(t, s.CreateSignIn(c, store.NewSignIn{SignIn: stale, CredentialVersion: 7}), store.ErrStale)
	if _, err := s.SignIn(c, "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused sign-in session was written")
	}
	list, err := s.ListSignIns(c, "u1", t0.Add(time.Hour))
	must(t, err)
	if len(list) != 1 || list[0].ID != "s1" {
		t.Fatalf("ListSignIns = %+v", list)
	}
	if list, _ := s.ListSignIns(c, "u1", t0.Add(25*time.Hour)); len(list) != 0 {
		t.Fatal("an expired sign-in session is listed")
	}
}

func testSignInRevoke(t *testing.T, s store.Store) {
	c := ctx(t)
	si := signIn(t, s, "s1")
	other := signIn(t, s, "s2")
	at := t0.Add(time.Minute)
	must(t, s.CreateCode(c, code("c1", si, at)))
	_, _, err := s.ExchangeCode(c, exchange("c1", "f1", si, at))
	must(t, err)
	must(t, s.CreateCode(c, code("c2", other, at)))
	_, _, err = s.ExchangeCode(c, exchange("c2", "f2", other, at))
	must(t, err)
	session(t, s, "f3", store.ClientWeb) // a password login, through no sign-in session
	// Another user's id is not found, and changes nothing.
	must(t, s.CreateUser(c, newUser("u2", "u2@example.com"), nil))
	_, err = s.RevokeSignIn(c, "s1", "u2", at, "x", nil)
	mustErrIs(t, err, store.ErrNotFound)
	changed, err := s.RevokeSignIn(c, "s1", "u1", at, "logout", &store.AuditEvent{Type: "session.logout", UserID: "u1", CreatedAt: at})
	must(t, err)
	if !changed {
		t.Fatal("RevokeSignIn changed nothing")
	}
	if again, err := s.RevokeSignIn(c, "s1", "", at, "logout", nil); err != nil || again {
		t.Fatalf("revoking twice: %v %v", again, err)
	}
	for fam, want := range map[string]bool{"f1": true, "f2": false, "f3": false} {
		f, err := s.Family(c, fam)
		must(t, err)
		if f.Revoked() != want {
			t.Fatalf("family %s revoked = %v, want %v (only the families started through s1 end with it)", fam, f.Revoked(), want)
		}
	}
	n, err := s.RevokeUserSignIns(c, "u1", "", at, "all")
	must(t, err)
	if n != 1 {
		t.Fatalf("RevokeUserSignIns = %d, want 1 (s2)", n)
	}
	if f, _ := s.Family(c, "f2"); !f.Revoked() {
		t.Fatal("the family of s2 survived its sign-in session")
	}
}

func testSignInEndedByResetAndDisable(t *testing.T, s store.Store) {
	c := ctx(t)
	signIn(t, s, "s1")
	must(t, s.IssueOneTime(c, newReset("u1", "r1", "j1", t0)))
	_, err := s.UseOneTime(c, resetUse("r1", t0.Add(time.Minute), "$argon2id$new"))
	must(t, err)
	if si, _ := s.SignIn(c, "s1"); !si.Revoked() {
		t.Fatal("a password reset left a sign-in session")
	}
	u, _ := s.UserByID(c, "u1")
	si := store.SignIn{ID: "s2", SecretHash: "h", UserID: "u1", AuthTime: t0, CreatedAt: t0, LastUsedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateSignIn(c, store.NewSignIn{SignIn: si, CredentialVersion: u.CredentialVersion}))
	must(t, s.DisableUser(c, "u1", t0.Add(2*time.Minute), nil))
	if si, _ := s.SignIn(c, "s2"); !si.Revoked() {
		t.Fatal("disabling the user left a sign-in session")
	}
}

func testCodeExchange(t *testing.T, s store.Store) {
	c := ctx(t)
	si := signIn(t, s, "s1")
	// A code marks the sign-in session used when its last use is more than
	// a minute old (not on every code: that would be a write per request).
	must(t, s.CreateCode(c, code("c0", si, t0.Add(30*time.Second))))
	if got, _ := s.SignIn(c, "s1"); !got.LastUsedAt.Equal(t0) {
		t.Fatalf("a code 30 s after the last use marked the session used: %v", got.LastUsedAt)
	}
	at := t0.Add(2 * time.Minute)
	must(t, s.CreateCode(c, code("c1", si, at)))
	if got, _ := s.SignIn(c, "s1"); !got.LastUsedAt.Equal(at) {
		t.Fatalf("issuing a code did not mark the sign-in session used: %v", got.LastUsedAt)
	}
	got, err := s.Code(c, "c1")
	must(t, err)
	if got.ClientID != "mobile" || got.CodeChallenge != "chal" || got.Nonce != "n-0S6" || got.SignInID != "s1" || !got.UsedAt.IsZero() ||
		!slices.Equal(got.AMR, []string{"pwd"}) || !got.ExpiresAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("Code = %+v", got)
	}
	// Each condition of the exchange, alone, refuses the code and writes
	// nothing.
	for name, edit := range map[string]func(*store.CodeExchange){
		"another client":       func(x *store.CodeExchange) { x.ClientID = "web" },
		"another redirect URI": func(x *store.CodeExchange) { x.RedirectURI = "http://127.0.0.1/other" },
		"another challenge":    func(x *store.CodeExchange) { x.Challenge = "other" },
		"no challenge":         func(x *store.CodeExchange) { x.Challenge = "" },
	} {
		x := exchange("c1", "f0", si, at)
		edit(&x)
		if _, _, err := s.ExchangeCode(c, x); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: %v", name, err)
		}
		if got, _ := s.Code(c, "c1"); !got.UsedAt.IsZero() {
			t.Fatalf("%s consumed the code", name)
		}
		if _, err := s.Family(c, "f0"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s wrote a session", name)
		}
	}
	x := exchange("c1", "f1", si, at.Add(time.Second))
	used, user, err := s.ExchangeCode(c, x)
	must(t, err)
	if used.FamilyID != "f1" || used.Nonce != "n-0S6" || used.Scope != "openid email" || user.ID != "u1" || user.Email != "u1@example.com" {
		t.Fatalf("ExchangeCode = %+v %+v", used, user)
	}
	f, err := s.Family(c, "f1")
	must(t, err)
	if f.SignInID != "s1" || !f.AuthTime.Equal(t0) || !slices.Equal(f.AMR, []string{"pwd"}) || f.UserID != "u1" || f.Scope != "openid email" ||
		f.UserAgent != "app/1" || !f.ExpiresAt.Equal(x.FamilyExpiresAt) {
		t.Fatalf("the family of a code: %+v", f)
	}
	if f.Generation != 1 || f.ClientKind != store.ClientNative || !f.RotatedAt.Equal(x.At) || !f.IdleExpiresAt.Equal(x.TokenExpiresAt) {
		t.Fatalf("the first generation of a code's session: %+v", f)
	}
	if fams, toks, ok := rowsOf(t, s, "f1"); ok && (fams != 1 || toks != 0) {
		t.Fatalf("a code's session wrote %d family rows and %d token rows, want 1 and 0", fams, toks)
	}
	if evs, _ := s.ListAudit(c, store.AuditFilter{UserID: "u1", Type: "login.succeeded"}); len(evs) < 2 {
		t.Fatalf("the exchange's audit event is missing: %+v", evs)
	}
	// A second exchange finds the code used; it records the first family.
	_, _, err = s.ExchangeCode(c, exchange("c1", "f2", si, at.Add(2*time.Second)))
	mustErrIs(t, err, store.ErrNotFound)
	if got, _ := s.Code(c, "c1"); got.FamilyID != "f1" || got.UsedAt.IsZero() {
		t.Fatalf("after a replay: %+v", got)
	}
	if _, err := s.Family(c, "f2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a replayed code started a session")
	}
	// Expired codes do not exchange.
	must(t, s.CreateCode(c, code("c3", si, at)))
	_, _, err = s.ExchangeCode(c, exchange("c3", "f3", si, at.Add(time.Minute)))
	mustErrIs(t, err, store.ErrNotFound)
	_, _, err = s.ExchangeCode(c, exchange("unknown", "f4", si, at))
	mustErrIs(t, err, store.ErrNotFound)
}

func testCodeExchangeConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	si := signIn(t, s, "s1")
	must(t, s.CreateCode(c, code("c1", si, t0)))
	errs := race(8, func(i int) error {
		_, _, err := s.ExchangeCode(c, exchange("c1", fmt.Sprintf("f%d", i), si, t0.Add(time.Second)))
		return err
	})
	oneWins(t, "exchanging one code", errs, store.ErrNotFound)
}

func testCodeStale(t *testing.T, s store.Store) {
	c := ctx(t)
	si := signIn(t, s, "s1")
	must(t, s.CreateCode(c, code("c1", si, t0)))
	_, err := s.RevokeSignIn(c, "s1", "", t0, "logout", nil)
	must(t, err)
	// No code for an ended sign-in session, and no session from its codes.
	mustErrIs(t, s.CreateCode(c, code("c2", si, t0)), store.ErrStale)
	_, _, err = s.ExchangeCode(c, exchange("c1", "f1", si, t0.Add(time.Second)))
	mustErrIs(t, err, store.ErrNotFound)
	if got, _ := s.Code(c, "c1"); !got.UsedAt.IsZero() {
		t.Fatal("a refused exchange consumed the code")
	}
	if _, err := s.Family(c, "f1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a refused exchange wrote its session")
	}
}

func testClientSecretRotate(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateClient(c, store.Client{ID: "svc", Kind: store.ClientServer, SecretHash: "v1:old", Grants: []string{"client_credentials"},
		CreatedAt: t0}, nil))
	got, err := s.ClientByID(c, "svc")
	must(t, err)
	if got.SecretHash != "v1:old" || got.PreviousSecretHash != "" || !got.PreviousSecretExpiresAt.IsZero() {
		t.Fatalf("a new server client: %+v", got)
	}
	must(t, s.RotateClientSecret(c, store.SecretRotation{ClientID: "svc", NewHash: "v1:new", At: t0, Grace: t0.Add(time.Hour)},
		&store.AuditEvent{Type: "client.secret_rotated", CreatedAt: t0}))
	got, err = s.ClientByID(c, "svc")
	must(t, err)
	if got.SecretHash != "v1:new" || got.PreviousSecretHash != "v1:old" || !got.PreviousSecretExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after a rotation: %+v", got)
	}
	mustErrIs(t, s.RotateClientSecret(c, store.SecretRotation{ClientID: "nope", NewHash: "x", At: t0, Grace: t0}, nil), store.ErrNotFound)
	must(t, s.CreateClient(c, store.Client{ID: "keys", Kind: store.ClientServer, JWKS: `{"keys":[]}`, CreatedAt: t0}, nil))
	if k, _ := s.ClientByID(c, "keys"); k.JWKS != `{"keys":[]}` {
		t.Fatalf("jwks: %q", k.JWKS)
	}
}

func testFormOnce(t *testing.T, s store.Store) {
	c := ctx(t)
	errs := race(6, func(int) error { return s.UseForm(c, "form-1", "second_step", t0.Add(10*time.Minute)) })
	oneWins(t, "using one form state", errs, store.ErrAlreadyExists)
	must(t, s.UseForm(c, "form-2", "second_step", t0.Add(10*time.Minute)))
	mustErrIs(t, s.UseForm(c, "form-2", "another purpose", t0.Add(10*time.Minute)), store.ErrAlreadyExists)
	// A released use (its step failed) can be made again, once.
	must(t, s.ReleaseForm(c, "form-2"))
	must(t, s.ReleaseForm(c, "never-used"))
	errs = race(6, func(int) error { return s.UseForm(c, "form-2", "second_step", t0.Add(10*time.Minute)) })
	oneWins(t, "using a released form state", errs, store.ErrAlreadyExists)
}

func testClientAssertionOnce(t *testing.T, s store.Store) {
	c := ctx(t)
	errs := race(6, func(int) error { return s.UseClientAssertion(c, "jti-1", "svc", t0.Add(time.Minute)) })
	oneWins(t, "recording one assertion", errs, store.ErrAlreadyExists)
	must(t, s.UseClientAssertion(c, "jti-2", "svc", t0.Add(time.Minute)))
}
