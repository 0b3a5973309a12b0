// Package storetest is the conformance suite every store.Store backend must
// pass. It is an ordinary package (importing testing) so that each backend's
// test file can call Run with a factory that returns a fresh, migrated,
// empty store.
//
// Cases check contracts, not rows: sentinel errors, case-insensitive email
// uniqueness under concurrency, whole-transaction rollback, time round trips
// in a non-UTC zone. Later capabilities add their cases to the same list.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// Factory returns a fresh, empty, migrated store for one subtest. The
// factory registers its own cleanup.
type Factory func(t testing.TB) store.Store

type testCase struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// cases is the suite, in order.
var cases = []testCase{
	{"Ping", testPing},
	{"UserCreateGet", testUserCreateGet},
	{"UserEmailCaseInsensitiveUnique", testUserEmailUnique},
	{"UserEmailUnicodeNormalizedUnique", testUserEmailUnicode},
	{"UserEmailConcurrentInsert", testUserEmailConcurrent},
	{"UserList", testUserList},
	{"UserDisable", testUserDisable},
	{"UserUpdatePasswordHash", testUserUpdatePasswordHash},
	{"TimezoneRoundTrip", testTimezone},
	{"ClientCRUD", testClients},
	{"UnstorableKeys", testUnstorableKeys},
	{"AuditAppendList", testAudit},
	{"RollbackCreateUser", testRollbackCreateUser},
	{"RollbackCreateClient", testRollbackCreateClient},
	{"RollbackDisableUser", testRollbackDisableUser},
	{"Lease", testLease},
	{"LeaseConcurrent", testLeaseConcurrent},
	{"KeysBootstrap", testKeysBootstrap},
	{"KeysRotate", testKeysRotate},
	{"KeysRotateConcurrent", testKeysRotateConcurrent},
	{"KeysRevoke", testKeysRevoke},
	{"KeysReplaceNext", testKeysReplaceNext},
	{"Meta", testMeta},
	{"SessionCreate", testSessionCreate},
	{"SessionRotate", testSessionRotate},
	{"SessionRotateLegacy", testSessionRotateLegacy},
	{"SessionRotateRefused", testSessionRotateRefused},
	{"SessionRotateConcurrent", testSessionRotateConcurrent},
	{"SessionList", testSessionList},
	{"SessionDisableRevokes", testSessionDisableRevokes},
	{"SessionRollback", testSessionRollback},
	{"SessionPrune", testSessionPrune},
	{"SessionCredentialCheck", testSessionCredentialCheck},
	{"SessionCreateRacesReset", testSessionCreateRacesReset},
	{"SessionRotateRateLimit", testSessionRotateRateLimit},
	{"Throttles", testThrottles},
	{"ThrottlesConcurrent", testThrottlesConcurrent},
	{"ThrottlesUpdateConcurrent", testThrottlesUpdateConcurrent},
	{"ResetUse", testResetUse},
	{"ResetVoidAndExpire", testResetVoidAndExpire},
	{"ResetConcurrentUse", testResetConcurrentUse},
	{"ResetConcurrentRequests", testResetConcurrentRequests},
	{"OneTimePurposes", testOneTimePurposes},
	{"OneTimeVerifyEmail", testOneTimeVerifyEmail},
	{"OneTimeChangeEmail", testOneTimeChangeEmail},
	{"OneTimeIssueStale", testOneTimeIssueStale},
	{"OneTimeSignUp", testOneTimeSignUp},
	{"OneTimeConcurrentVerify", testOneTimeConcurrentVerify},
	{"QueueMail", testQueueMail},
	{"SignInCreate", testSignInCreate},
	{"SignInRevoke", testSignInRevoke},
	{"SignInEndedByResetAndDisable", testSignInEndedByResetAndDisable},
	{"CodeExchange", testCodeExchange},
	{"CodeExchangeConcurrent", testCodeExchangeConcurrent},
	{"CodeStale", testCodeStale},
	{"ClientSecretRotate", testClientSecretRotate},
	{"ClientAssertionOnce", testClientAssertionOnce},
	{"FormOnce", testFormOnce},
	{"MailOutbox", testMailOutbox},
	{"MailClaimConcurrent", testMailClaimConcurrent},
	{"PruneBatch", testPruneBatch},
	{"PruneBatchConcurrent", testPruneBatchConcurrent},
}

// Run runs every conformance case as a subtest, each on a fresh store, with
// a watchdog that turns a deadlock into a failure with stacks instead of a
// hung CI job.
func Run(t *testing.T, open Factory) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			done := make(chan struct{})
			timer := time.AfterFunc(2*time.Minute, func() {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				panic(fmt.Sprintf("conformance case %s hung for 2m:\n%s", c.name, buf[:n]))
			})
			defer func() { timer.Stop(); close(done) }()
			c.run(t, s)
		})
	}
}

// t0 is a fixed instant in a non-UTC zone: stores must keep the instant.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.FixedZone("UTC+5:30", 5*3600+1800))

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func mustErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// race runs fn(0) … fn(n-1) at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// errLost marks a racer that did not win without failing.
var errLost = errors.New("lost the race")

// oneWins checks that exactly one racer succeeded and every other lost with
// one of the expected errors.
func oneWins(t *testing.T, what string, errs []error, expected ...error) {
	t.Helper()
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			continue
		}
		ok := false
		for _, e := range expected {
			ok = ok || errors.Is(err, e)
		}
		if !ok {
			t.Errorf("%s: racer %d: unexpected error %v", what, i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%s: %d of %d concurrent callers won, want exactly 1", what, wins, len(errs))
	}
}

func newUser(id, email string) store.User {
	return store.User{ID: id, Email: email, PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", CreatedAt: t0}
}

func testPing(t *testing.T, s store.Store) {
	must(t, s.Ping(ctx(t)))
}

func testUserCreateGet(t *testing.T, s store.Store) {
	c := ctx(t)
	u := newUser("u1", "  Alice@Example.COM ")
	u.Email = "Alice@Example.COM"
	must(t, s.CreateUser(c, u, nil))
	got, err := s.UserByID(c, "u1")
	must(t, err)
	if got.ID != "u1" || got.Email != "Alice@Example.COM" || got.PasswordHash != u.PasswordHash || got.Disabled() {
		t.Fatalf("UserByID = %+v", got)
	}
	for _, e := range []string{"alice@example.com", "ALICE@EXAMPLE.COM", "  alice@example.com\t"} {
		got, err := s.UserByEmail(c, e)
		must(t, err)
		if got.ID != "u1" {
			t.Fatalf("UserByEmail(%q) = %+v", e, got)
		}
	}
	_, err = s.UserByID(c, "nope")
	mustErrIs(t, err, store.ErrNotFound)
	_, err = s.UserByEmail(c, "bob@example.com")
	mustErrIs(t, err, store.ErrNotFound)
}

func testUserEmailUnique(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "alice@example.com"), nil))
	err := s.CreateUser(c, newUser("u2", "ALICE@example.com"), nil)
	mustErrIs(t, err, store.ErrEmailTaken)
	mustErrIs(t, err, store.ErrAlreadyExists)
	if _, err := s.UserByID(c, "u2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the losing user was written: %v", err)
	}
}

// testUserEmailUnicode: an address is one account however its characters
// are composed. "Å" is U+00C5, or "A" and U+030A COMBINING RING ABOVE, or
// U+212B ANGSTROM SIGN; Unicode calls them canonically equivalent.
func testUserEmailUnicode(t *testing.T, s store.Store) {
	c := ctx(t)
	composed := "\u00c5ngstr\u00f6m@example.com"
	must(t, s.CreateUser(c, newUser("u1", composed), nil))
	for i, email := range []string{
		"A\u030angstro\u0308m@example.com", // decomposed
		"a\u030angstro\u0308m@EXAMPLE.com", // decomposed, other case
		"\u212bngstr\u00f6m@example.com",   // the Angstrom sign
	} {
		got, err := s.UserByEmail(c, email)
		must(t, err)
		if got.ID != "u1" {
			t.Fatalf("UserByEmail(%+q) = %+v", email, got)
		}
		err = s.CreateUser(c, newUser(fmt.Sprintf("u%d", i+2), email), nil)
		mustErrIs(t, err, store.ErrEmailTaken)
	}
	users, err := s.ListUsers(c, store.ListOptions{})
	must(t, err)
	if len(users) != 1 {
		t.Fatalf("%d users stored, want 1", len(users))
	}
}

// testUserEmailConcurrent races goroutines inserting the same email (in
// different case): exactly one wins, every other one gets ErrEmailTaken.
func testUserEmailConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	errs := race(8, func(i int) error {
		email := "race@example.com"
		if i%2 == 1 {
			email = "RACE@example.com"
		}
		return s.CreateUser(c, newUser(fmt.Sprintf("u%d", i), email), nil)
	})
	oneWins(t, "inserting one email", errs, store.ErrEmailTaken)
	users, err := s.ListUsers(c, store.ListOptions{})
	must(t, err)
	if len(users) != 1 {
		t.Fatalf("%d users stored, want 1", len(users))
	}
}

func testUserList(t *testing.T, s store.Store) {
	c := ctx(t)
	for i := range 5 {
		u := newUser(fmt.Sprintf("u%d", i), fmt.Sprintf("user%d@example.com", i))
		u.CreatedAt = t0.Add(time.Duration(i) * time.Second)
		must(t, s.CreateUser(c, u, nil))
	}
	all, err := s.ListUsers(c, store.ListOptions{})
	must(t, err)
	if len(all) != 5 || all[0].ID != "u0" || all[4].ID != "u4" {
		t.Fatalf("ListUsers = %v", all)
	}
	two, err := s.ListUsers(c, store.ListOptions{Limit: 2})
	must(t, err)
	if len(two) != 2 {
		t.Fatalf("ListUsers(limit 2) returned %d", len(two))
	}
}

func testUserDisable(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "a@example.com"), nil))
	at := t0.Add(time.Hour)
	ev := &store.AuditEvent{Type: "user.disabled", UserID: "u1", CreatedAt: at}
	must(t, s.DisableUser(c, "u1", at, ev))
	u, err := s.UserByID(c, "u1")
	must(t, err)
	if !u.Disabled() || !u.DisabledAt.Equal(at) {
		t.Fatalf("after disable: %+v", u)
	}
	// Disabling again keeps the first time and is not an error.
	must(t, s.DisableUser(c, "u1", at.Add(time.Hour), nil))
	u, _ = s.UserByID(c, "u1")
	if !u.DisabledAt.Equal(at) {
		t.Fatalf("second disable moved DisabledAt to %v", u.DisabledAt)
	}
	mustErrIs(t, s.DisableUser(c, "nope", at, nil), store.ErrNotFound)
	evs, err := s.ListAudit(c, store.AuditFilter{UserID: "u1"})
	must(t, err)
	if len(evs) != 1 || evs[0].Type != "user.disabled" {
		t.Fatalf("audit after disable = %+v", evs)
	}
}

func testUserUpdatePasswordHash(t *testing.T, s store.Store) {
	c := ctx(t)
	u := newUser("u1", "a@example.com")
	must(t, s.CreateUser(c, u, nil))
	must(t, s.UpdatePasswordHash(c, "u1", u.PasswordHash, "$2a$new", t0.Add(time.Minute)))
	got, _ := s.UserByID(c, "u1")
	if got.PasswordHash != "$2a$new" || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after update: %+v", got)
	}
	// A stale expectation (a concurrent reset changed it) must not clobber.
	mustErrIs(t, s.UpdatePasswordHash(c, "u1", u.PasswordHash, "$2a$other", t0), store.ErrConflict)
	got, _ = s.UserByID(c, "u1")
	if got.PasswordHash != "$2a$new" {
		t.Fatalf("stale update overwrote the hash: %q", got.PasswordHash)
	}
	mustErrIs(t, s.UpdatePasswordHash(c, "nope", "x", "y", t0), store.ErrNotFound)
}

func testTimezone(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "tz@example.com"), nil))
	u, err := s.UserByID(c, "u1")
	must(t, err)
	if !u.CreatedAt.Equal(t0) {
		t.Fatalf("CreatedAt = %v, want the instant %v", u.CreatedAt, t0)
	}
	if u.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt is in %v, want UTC", u.CreatedAt.Location())
	}
}

func testClients(t *testing.T, s store.Store) {
	c := ctx(t)
	web := store.Client{ID: "web", Kind: store.ClientWeb, CreatedAt: t0}
	app := store.Client{ID: "app", Kind: store.ClientNative, Audience: []string{"https://api.example.com", "urn:x"}, Alg: "EdDSA", CreatedAt: t0,
		RedirectURIs: []string{"com.example.app:/cb", "http://127.0.0.1/cb"}, PostLogoutRedirectURIs: []string{"com.example.app:/bye"},
		Grants: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "email"}}
	must(t, s.CreateClient(c, web, nil))
	must(t, s.CreateClient(c, app, nil))
	mustErrIs(t, s.CreateClient(c, web, nil), store.ErrAlreadyExists)
	mustErrIs(t, s.CreateClient(c, store.Client{ID: "bad", Kind: "robot", CreatedAt: t0}, nil), store.ErrInvalid)
	got, err := s.ClientByID(c, "app")
	must(t, err)
	if got.Kind != store.ClientNative || got.Alg != "EdDSA" || len(got.Audience) != 2 || got.Audience[1] != "urn:x" || !got.CreatedAt.Equal(t0) ||
		!slices.Equal(got.RedirectURIs, app.RedirectURIs) || !slices.Equal(got.PostLogoutRedirectURIs, app.PostLogoutRedirectURIs) ||
		!slices.Equal(got.Grants, app.Grants) || !slices.Equal(got.Scopes, app.Scopes) {
		t.Fatalf("ClientByID = %+v", got)
	}
	_, err = s.ClientByID(c, "nope")
	mustErrIs(t, err, store.ErrNotFound)
	list, err := s.ListClients(c)
	must(t, err)
	if len(list) != 2 || list[0].ID != "app" || list[1].ID != "web" || len(list[1].Audience) != 0 {
		t.Fatalf("ListClients = %+v", list)
	}
	must(t, s.CreateClient(c, store.Client{ID: "svc", Kind: store.ClientServer, CreatedAt: t0}, nil))
	// Deleting a client revokes its sessions.
	session(t, s, "f1", store.ClientWeb)
	must(t, s.DeleteClient(c, "web", t0.Add(time.Minute), &store.AuditEvent{Type: "client.deleted", CreatedAt: t0}))
	mustErrIs(t, s.DeleteClient(c, "web", t0.Add(time.Minute), nil), store.ErrNotFound)
	if _, err := s.ClientByID(c, "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a deleted client is still there")
	}
	if f, _ := s.Family(c, "f1"); !f.Revoked() {
		t.Fatal("a deleted client's session is live")
	}
}

func testAudit(t *testing.T, s store.Store) {
	c := ctx(t)
	for i := range 6 {
		ev := store.AuditEvent{Type: "login.failed", UserID: "u1", ClientID: "web", Address: "192.0.2.1",
			Details: map[string]string{"n": fmt.Sprint(i)}, CreatedAt: t0.Add(time.Duration(i) * time.Minute)}
		if i%2 == 1 {
			ev.Type, ev.UserID = "login.succeeded", "u2"
		}
		must(t, s.AppendAudit(c, ev))
	}
	all, err := s.ListAudit(c, store.AuditFilter{})
	must(t, err)
	if len(all) != 6 || all[0].Details["n"] != "5" || all[5].Details["n"] != "0" {
		t.Fatalf("ListAudit is not newest first: %+v", all)
	}
	if all[0].ClientID != "web" || all[0].Address != "192.0.2.1" || !all[0].CreatedAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("audit fields lost: %+v", all[0])
	}
	byUser, _ := s.ListAudit(c, store.AuditFilter{UserID: "u2"})
	byType, _ := s.ListAudit(c, store.AuditFilter{Type: "login.failed"})
	since, _ := s.ListAudit(c, store.AuditFilter{Since: t0.Add(4 * time.Minute)})
	limited, _ := s.ListAudit(c, store.AuditFilter{Limit: 2})
	if len(byUser) != 3 || len(byType) != 3 || len(since) != 2 || len(limited) != 2 {
		t.Fatalf("filters: user %d type %d since %d limit %d", len(byUser), len(byType), len(since), len(limited))
	}
	mustErrIs(t, s.AppendAudit(c, store.AuditEvent{CreatedAt: t0}), store.ErrInvalid)
}

// badEvent violates the audit table's constraints, so writing it fails
// inside the transaction, after the main row was written.
var badEvent = &store.AuditEvent{Type: "", CreatedAt: t0}

func testRollbackCreateUser(t *testing.T, s store.Store) {
	c := ctx(t)
	err := s.CreateUser(c, newUser("u1", "a@example.com"), badEvent)
	if err == nil {
		t.Fatal("CreateUser with a bad audit event succeeded")
	}
	if _, err := s.UserByEmail(c, "a@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("partial write: the user exists after a failed transaction (%v)", err)
	}
	// The same email is still free.
	must(t, s.CreateUser(c, newUser("u1", "a@example.com"), nil))
}

func testRollbackCreateClient(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateClient(c, store.Client{ID: "web", Kind: store.ClientWeb, CreatedAt: t0}, badEvent); err == nil {
		t.Fatal("CreateClient with a bad audit event succeeded")
	}
	if _, err := s.ClientByID(c, "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("partial write: the client exists after a failed transaction (%v)", err)
	}
}

func testRollbackDisableUser(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "a@example.com"), nil))
	if err := s.DisableUser(c, "u1", t0, badEvent); err == nil {
		t.Fatal("DisableUser with a bad audit event succeeded")
	}
	u, err := s.UserByID(c, "u1")
	must(t, err)
	if u.Disabled() {
		t.Fatal("partial write: the user is disabled after a failed transaction")
	}
}

func testLease(t *testing.T, s store.Store) {
	c := ctx(t)
	until := t0.Add(time.Minute)
	ok, err := s.AcquireLease(c, "rotate", "a", t0, until)
	must(t, err)
	if !ok {
		t.Fatal("a free lease was not acquired")
	}
	if ok, _ := s.AcquireLease(c, "rotate", "b", t0.Add(30*time.Second), t0.Add(90*time.Second)); ok {
		t.Fatal("b took a lease a holds")
	}
	if ok, _ := s.AcquireLease(c, "other", "b", t0, until); !ok {
		t.Fatal("leases of different names interfere")
	}
	if ok, _ := s.AcquireLease(c, "rotate", "a", t0.Add(30*time.Second), t0.Add(2*time.Minute)); !ok {
		t.Fatal("a could not renew its own lease")
	}
	if ok, _ := s.AcquireLease(c, "rotate", "b", t0.Add(90*time.Second), t0.Add(3*time.Minute)); ok {
		t.Fatal("b took a lease before the renewal expired")
	}
	if ok, _ := s.AcquireLease(c, "rotate", "b", t0.Add(2*time.Minute), t0.Add(3*time.Minute)); !ok {
		t.Fatal("b could not take an expired lease")
	}
	must(t, s.ReleaseLease(c, "rotate", "a")) // not a's any more: no effect
	if ok, _ := s.AcquireLease(c, "rotate", "a", t0.Add(2*time.Minute), t0.Add(3*time.Minute)); ok {
		t.Fatal("a's release freed b's lease")
	}
	must(t, s.ReleaseLease(c, "rotate", "b"))
	if ok, _ := s.AcquireLease(c, "rotate", "a", t0.Add(2*time.Minute), t0.Add(3*time.Minute)); !ok {
		t.Fatal("a released lease could not be taken")
	}
}

func testLeaseConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	errs := race(8, func(i int) error {
		got, err := s.AcquireLease(c, "rotate", fmt.Sprintf("h%d", i), t0, t0.Add(time.Minute))
		if err == nil && !got {
			return errLost
		}
		return err
	})
	oneWins(t, "acquiring one lease", errs, errLost)
}

// testUnstorableKeys: a lookup by text no backend can store (NUL, invalid
// UTF-8) finds nothing, as any unknown key, instead of failing (PostgreSQL
// refuses such text even in a WHERE clause).
func testUnstorableKeys(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "a@example.com"), nil))
	for _, k := range []string{"a\x00@example.com", "a\xff@example.com", "\xc3"} {
		_, err := s.UserByEmail(c, k)
		mustErrIs(t, err, store.ErrNotFound)
		_, err = s.UserByID(c, k)
		mustErrIs(t, err, store.ErrNotFound)
		_, err = s.ClientByID(c, k)
		mustErrIs(t, err, store.ErrNotFound)
		_, err = s.Family(c, k)
		mustErrIs(t, err, store.ErrNotFound)
		mustErrIs(t, s.RevokeUserFamily(c, "u1", k, t0, "test", nil), store.ErrNotFound)
	}
	for _, tc := range []struct {
		s    string
		want bool
	}{{"plain", true}, {"", true}, {"café ☃", true}, {"a\x00b", false}, {"\xff", false}, {"\xe2\x98", false}} {
		if got := store.Storable(tc.s); got != tc.want {
			t.Errorf("Storable(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
