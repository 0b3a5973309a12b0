package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// newReset issues a password-reset token for user (whose email is
// user@example.com), as reset.Service does.
func newReset(user, hash, jobID string, at time.Time) store.NewOneTime {
	return newToken(store.PurposePasswordReset, user, hash, jobID, at)
}

func newToken(p store.OneTimePurpose, user, hash, jobID string, at time.Time) store.NewOneTime {
	return store.NewOneTime{
		UserEmail: user + "@example.com",
		Token:     store.OneTimeToken{Hash: hash, Purpose: p, UserID: user, CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
		Mail: store.MailJob{ID: jobID, Kind: string(p), UserID: user, Payload: []byte{0, 1, 2}, CreatedAt: at,
			NextAttemptAt: at, ExpiresAt: at.Add(time.Hour)},
		Audit: &store.AuditEvent{Type: string(p) + ".requested", UserID: user, CreatedAt: at},
	}
}

// resetUse is the use of a reset token, with the effects reset.Service
// asks for.
func resetUse(hash string, at time.Time, passwordHash string) store.OneTimeUse {
	return store.OneTimeUse{Hash: hash, Purpose: store.PurposePasswordReset, At: at, PasswordHash: passwordHash,
		VerifyEmail: true, VoidOthers: true, RevokeSessions: true, RevokeReason: "password reset"}
}

func testResetUse(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", store.ClientWeb) // user u1 with a live session
	must(t, s.IssueOneTime(c, newReset("u1", "r1", "j1", t0)))
	if n, _ := s.PendingMail(c); n != 1 {
		t.Fatalf("%d mails queued, want 1", n)
	}
	at := t0.Add(10 * time.Minute)
	use := resetUse("r1", at, "$argon2id$new")
	use.Audit = &store.AuditEvent{Type: "password_reset.completed", CreatedAt: at}
	tok, err := s.UseOneTime(c, use)
	must(t, err)
	if tok.UserID != "u1" || tok.Purpose != store.PurposePasswordReset || !tok.UsedAt.IsZero() {
		t.Fatalf("UseOneTime returned %+v", tok)
	}
	u, _ := s.UserByID(c, "u1")
	if u.PasswordHash != "$argon2id$new" {
		t.Fatal("password not set")
	}
	if _, err := s.RotateFamily(c, frot("f1", 1, at)); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a session survived the reset")
	}
	evs, _ := s.ListAudit(c, store.AuditFilter{Type: "password_reset.completed"})
	if len(evs) != 1 || evs[0].UserID != "u1" {
		t.Fatalf("reset audit: %+v", evs)
	}
	_, err = s.UseOneTime(c, resetUse("r1", at, "$argon2id$again"))
	mustErrIs(t, err, store.ErrNotFound)
	if u, _ := s.UserByID(c, "u1"); u.PasswordHash != "$argon2id$new" {
		t.Fatal("a used token set the password again")
	}
}

func testResetVoidAndExpire(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	must(t, s.IssueOneTime(c, newReset("u1", "old", "j-old", t0)))
	must(t, s.IssueOneTime(c, newReset("u1", "new", "j-new", t0.Add(time.Minute))))
	if n, _ := s.PendingMail(c); n != 1 {
		t.Fatalf("%d mails queued after a second request, want 1 (the old link's mail dropped)", n)
	}
	_, err := s.UseOneTime(c, resetUse("old", t0.Add(2*time.Minute), "x"))
	mustErrIs(t, err, store.ErrNotFound)
	// Expiry: at expires_at the token is dead.
	_, err = s.UseOneTime(c, resetUse("new", t0.Add(time.Minute+time.Hour), "x"))
	mustErrIs(t, err, store.ErrNotFound)
	_, err = s.UseOneTime(c, resetUse("nope", t0, "x"))
	mustErrIs(t, err, store.ErrNotFound)
	// A disabled user's token does nothing.
	must(t, s.IssueOneTime(c, newReset("u1", "third", "j3", t0.Add(2*time.Minute))))
	must(t, s.DisableUser(c, "u1", t0.Add(3*time.Minute), nil))
	_, err = s.UseOneTime(c, resetUse("third", t0.Add(4*time.Minute), "x"))
	mustErrIs(t, err, store.ErrNotFound)
	if u, _ := s.UserByID(c, "u1"); u.PasswordHash == "x" {
		t.Fatal("a disabled user's password was reset")
	}
}

func testResetConcurrentUse(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	must(t, s.IssueOneTime(c, newReset("u1", "r1", "j1", t0)))
	errs := race(10, func(i int) error {
		_, err := s.UseOneTime(c, resetUse("r1", t0.Add(time.Minute), fmt.Sprintf("pw%d", i)))
		return err
	})
	oneWins(t, "using one reset token", errs, store.ErrNotFound)
}

func testMailOutbox(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	for i := range 5 {
		must(t, s.CreateUser(c, newUser(fmt.Sprintf("m%d", i), fmt.Sprintf("m%d@example.com", i)), nil))
		must(t, s.IssueOneTime(c, newReset(fmt.Sprintf("m%d", i), fmt.Sprintf("h%d", i), fmt.Sprintf("j%d", i), t0)))
	}
	lock := t0.Add(2 * time.Minute)
	a, err := s.ClaimMail(c, "A", t0, lock, 3)
	must(t, err)
	b, err := s.ClaimMail(c, "B", t0, lock, 10)
	must(t, err)
	if len(a) != 3 || len(b) != 2 || a[0].Attempts != 1 || a[0].LockedBy != "A" || string(a[0].Payload) != string([]byte{0, 1, 2}) {
		t.Fatalf("claims: A %d, B %d (%+v)", len(a), len(b), a)
	}
	if more, _ := s.ClaimMail(c, "C", t0, lock, 10); len(more) != 0 {
		t.Fatalf("C claimed %d locked jobs", len(more))
	}
	must(t, s.CompleteMail(c, a[0].ID, "A"))
	must(t, s.CompleteMail(c, b[0].ID, "A")) // not A's: no effect
	must(t, s.RetryMail(c, a[1].ID, "A", t0.Add(time.Minute), "connection refused"))
	if n, _ := s.PendingMail(c); n != 4 {
		t.Fatalf("%d pending after one completion, want 4", n)
	}
	if got, _ := s.ClaimMail(c, "C", t0.Add(30*time.Second), lock, 10); len(got) != 0 {
		t.Fatal("a retried job was claimed before its next attempt")
	}
	got, _ := s.ClaimMail(c, "C", t0.Add(time.Minute), lock, 10)
	if len(got) != 1 || got[0].ID != a[1].ID || got[0].Attempts != 2 || got[0].LastError != "connection refused" {
		t.Fatalf("retry claim: %+v", got)
	}
	// A dead worker's lock expires and the job goes to another.
	got, _ = s.ClaimMail(c, "D", lock, lock.Add(2*time.Minute), 10)
	if len(got) != 4 {
		t.Fatalf("after the locks expired D claimed %d, want the 4 unsent jobs", len(got))
	}
	n, err := s.DropExpiredMail(c, t0.Add(2*time.Hour))
	must(t, err)
	if n != 4 {
		t.Fatalf("dropped %d expired jobs, want 4", n)
	}
}

// testMailClaimConcurrent: workers racing over 100 jobs take each exactly
// once.
func testMailClaimConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	const jobs = 100
	for i := range jobs {
		uid := fmt.Sprintf("u%d", i)
		must(t, s.CreateUser(c, newUser(uid, uid+"@example.com"), nil))
		must(t, s.IssueOneTime(c, newReset(uid, "h"+uid, "j"+uid, t0)))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("w%d", w)
			for {
				got, err := s.ClaimMail(c, holder, t0, t0.Add(time.Minute), 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, j := range got {
					seen[j.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Fatalf("%d of %d jobs claimed", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("job %s claimed %d times", id, n)
		}
	}
}

// testResetConcurrentRequests: concurrent reset requests for one user leave
// one usable token and one queued mail.
func testResetConcurrentRequests(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	for round := range 5 {
		errs := race(4, func(i int) error {
			return s.IssueOneTime(c, newReset("u1", fmt.Sprintf("r%d-%d", round, i), fmt.Sprintf("j%d-%d", round, i), t0))
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d request %d: %v", round, i, err)
			}
		}
		if n, _ := s.PendingMail(c); n != 1 {
			t.Fatalf("round %d: %d mails queued after concurrent requests, want 1", round, n)
		}
		live := 0
		for r := 0; r <= round; r++ {
			for i := range 4 {
				tok, err := s.OneTimeToken(c, fmt.Sprintf("r%d-%d", r, i))
				must(t, err)
				if tok.UsedAt.IsZero() && tok.VoidedAt.IsZero() {
					live++
				}
			}
		}
		if live != 1 {
			t.Fatalf("round %d: %d live reset tokens for one user, want 1", round, live)
		}
	}
}

// testOneTimePurposes: a user has one live token per purpose, and a token
// of one purpose is never used as another's.
func testOneTimePurposes(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	must(t, s.IssueOneTime(c, newReset("u1", "r1", "jr", t0)))
	v := newToken(store.PurposeVerifyEmail, "u1", "v1", "jv", t0)
	v.Token.Data = []byte("sealed")
	must(t, s.IssueOneTime(c, v))
	if n, _ := s.PendingMail(c); n != 2 {
		t.Fatalf("%d mails queued, want one per purpose", n)
	}
	got, err := s.OneTimeToken(c, "v1")
	must(t, err)
	if got.Purpose != store.PurposeVerifyEmail || got.UserID != "u1" || string(got.Data) != "sealed" || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("OneTimeToken = %+v", got)
	}
	if r, _ := s.OneTimeToken(c, "r1"); r.Data != nil || !r.VoidedAt.IsZero() {
		t.Fatalf("the reset token was touched by a verification token: %+v", r)
	}
	_, err = s.UseOneTime(c, store.OneTimeUse{Hash: "r1", Purpose: store.PurposeVerifyEmail, At: t0, VerifyEmail: true})
	mustErrIs(t, err, store.ErrNotFound)
	_, err = s.UseOneTime(c, resetUse("v1", t0, "$argon2id$x"))
	mustErrIs(t, err, store.ErrNotFound)
	if u, _ := s.UserByID(c, "u1"); u.EmailVerified() || u.PasswordHash == "$argon2id$x" {
		t.Fatal("a token of another purpose changed the user")
	}
	_, err = s.OneTimeToken(c, "nope")
	mustErrIs(t, err, store.ErrNotFound)
}

// testOneTimeVerifyEmail: a verification token marks the address verified
// once; a later one keeps the first time.
func testOneTimeVerifyEmail(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	must(t, s.IssueOneTime(c, newToken(store.PurposeVerifyEmail, "u1", "v1", "j1", t0)))
	at := t0.Add(time.Minute)
	tok, err := s.UseOneTime(c, store.OneTimeUse{Hash: "v1", Purpose: store.PurposeVerifyEmail, At: at, VerifyEmail: true,
		Audit: &store.AuditEvent{Type: "email.verified", CreatedAt: at}})
	must(t, err)
	if tok.UserID != "u1" {
		t.Fatalf("token %+v", tok)
	}
	u, _ := s.UserByID(c, "u1")
	if !u.EmailVerifiedAt.Equal(at) {
		t.Fatalf("verified at %v, want %v", u.EmailVerifiedAt, at)
	}
	if evs, _ := s.ListAudit(c, store.AuditFilter{Type: "email.verified"}); len(evs) != 1 || evs[0].UserID != "u1" {
		t.Fatalf("audit %+v", evs)
	}
	_, err = s.UseOneTime(c, store.OneTimeUse{Hash: "v1", Purpose: store.PurposeVerifyEmail, At: at, VerifyEmail: true})
	mustErrIs(t, err, store.ErrNotFound)
	must(t, s.IssueOneTime(c, newToken(store.PurposeVerifyEmail, "u1", "v2", "j2", at)))
	_, err = s.UseOneTime(c, store.OneTimeUse{Hash: "v2", Purpose: store.PurposeVerifyEmail, At: at.Add(time.Hour / 2), VerifyEmail: true})
	must(t, err)
	if u, _ := s.UserByID(c, "u1"); !u.EmailVerifiedAt.Equal(at) {
		t.Fatalf("a second verification moved the time to %v", u.EmailVerifiedAt)
	}
	// A reset proves the address too.
	must(t, s.CreateUser(c, newUser("u2", "u2@example.com"), nil))
	must(t, s.IssueOneTime(c, newReset("u2", "r2", "j3", t0)))
	_, err = s.UseOneTime(c, resetUse("r2", at, "$argon2id$new"))
	must(t, err)
	if u, _ := s.UserByID(c, "u2"); !u.EmailVerifiedAt.Equal(at) {
		t.Fatal("a used reset link did not mark the address verified")
	}
}

// testOneTimeChangeEmail: the new address replaces the old one (verified),
// every other live token dies, and every session but the kept one ends; a
// taken address changes nothing and leaves the token usable.
func testOneTimeChangeEmail(t *testing.T, s store.Store) {
	c := ctx(t)
	si := signIn(t, s, "s1") // creates u1
	signIn(t, s, "s2")
	keep := session0("keep")
	keep.Family.SignInID = si.ID
	must(t, s.CreateSession(c, keep))
	must(t, s.CreateSession(c, session0("other")))
	must(t, s.CreateUser(c, newUser("u2", "taken@example.com"), nil))
	must(t, s.IssueOneTime(c, newReset("u1", "r1", "jr", t0)))
	ce := newToken(store.PurposeChangeEmail, "u1", "c1", "jc", t0)
	ce.Notice = &store.MailJob{ID: "jn", Kind: "email_change_notice", UserID: "u1", Payload: []byte{3}, CreatedAt: t0,
		NextAttemptAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.IssueOneTime(c, ce))
	if n, _ := s.PendingMail(c); n != 3 {
		t.Fatalf("%d mails queued, want the reset, the confirmation and the notice", n)
	}
	at := t0.Add(time.Minute)
	change := func(email string) error {
		_, err := s.UseOneTime(c, store.OneTimeUse{Hash: "c1", Purpose: store.PurposeChangeEmail, At: at, NewEmail: email,
			VoidOthers: true, RevokeSessions: true, KeepFamily: "keep", RevokeReason: "email changed",
			Audit: &store.AuditEvent{Type: "email.changed", CreatedAt: at}})
		return err
	}
	mustErrIs(t, change("TAKEN@example.com"), store.ErrEmailTaken)
	if u, _ := s.UserByID(c, "u1"); u.Email != "u1@example.com" {
		t.Fatalf("a refused change wrote %q", u.Email)
	}
	if tok, _ := s.OneTimeToken(c, "c1"); !tok.UsedAt.IsZero() {
		t.Fatal("a refused change used the token")
	}
	if f, _ := s.Family(c, "other"); f.Revoked() {
		t.Fatal("a refused change revoked a session")
	}
	must(t, change("A\u030a.New@Example.com"))
	u, err := s.UserByEmail(c, "\u00e5.new@example.com")
	must(t, err)
	if u.ID != "u1" || u.Email != "A\u030a.New@Example.com" || !u.EmailVerifiedAt.Equal(at) {
		t.Fatalf("after the change: %+v", u)
	}
	if _, err := s.UserByEmail(c, "u1@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the old address still finds the account")
	}
	if r, _ := s.OneTimeToken(c, "r1"); r.VoidedAt.IsZero() {
		t.Fatal("a reset link mailed to the old address survived the change")
	}
	for id, want := range map[string]bool{"keep": false, "other": true} {
		if f, _ := s.Family(c, id); f.Revoked() != want {
			t.Errorf("family %s revoked=%v, want %v", id, f.Revoked(), want)
		}
	}
	for id, want := range map[string]bool{"s1": false, "s2": true} {
		if got, _ := s.SignIn(c, id); got.Revoked() != want {
			t.Errorf("sign-in session %s revoked=%v, want %v", id, got.Revoked(), want)
		}
	}
	mustErrIs(t, change("again@example.com"), store.ErrNotFound)
}

// testOneTimeIssueStale: a token is written only while the user is enabled
// and has the address the caller read; otherwise nothing is.
func testOneTimeIssueStale(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	n := newReset("u1", "r1", "j1", t0)
	n.UserEmail = "someone.else@example.com"
	mustErrIs(t, s.IssueOneTime(c, n), store.ErrStale)
	n.UserEmail = " U1@EXAMPLE.com"
	must(t, s.IssueOneTime(c, n))
	must(t, s.DisableUser(c, "u1", t0, nil))
	mustErrIs(t, s.IssueOneTime(c, newReset("u1", "r2", "j2", t0)), store.ErrStale)
	if _, err := s.OneTimeToken(c, "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a stale issue wrote its token")
	}
	if n, _ := s.PendingMail(c); n != 1 {
		t.Fatalf("%d mails queued, want the first one only", n)
	}
}

// testOneTimeSignUp: the account, its verification token and its mail are
// written together; for a taken address, nothing is.
func testOneTimeSignUp(t *testing.T, s store.Store) {
	c := ctx(t)
	signUp := func(id, email, hash, job string) error {
		n := newToken(store.PurposeVerifyEmail, id, hash, job, t0)
		u := newUser(id, email)
		n.CreateUser, n.UserEmail = &u, ""
		return s.IssueOneTime(c, n)
	}
	must(t, signUp("u1", "new@example.com", "v1", "j1"))
	if u, err := s.UserByEmail(c, "new@example.com"); err != nil || u.ID != "u1" || u.EmailVerified() {
		t.Fatalf("the signed-up user: %+v %v", u, err)
	}
	if tok, err := s.OneTimeToken(c, "v1"); err != nil || tok.UserID != "u1" {
		t.Fatalf("its token: %+v %v", tok, err)
	}
	mustErrIs(t, signUp("u2", "NEW@example.com", "v2", "j2"), store.ErrEmailTaken)
	if _, err := s.OneTimeToken(c, "v2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a sign-up for a taken address wrote a token")
	}
	if n, _ := s.PendingMail(c); n != 1 {
		t.Fatalf("%d mails queued, want 1", n)
	}
	// Concurrent sign-ups for one address: one account, one mail.
	errs := race(6, func(i int) error {
		return signUp(fmt.Sprintf("c%d", i), "race@example.com", fmt.Sprintf("rv%d", i), fmt.Sprintf("rj%d", i))
	})
	oneWins(t, "signing up one address", errs, store.ErrEmailTaken)
	if n, _ := s.PendingMail(c); n != 2 {
		t.Fatalf("%d mails queued after the race, want 2", n)
	}
}

// testOneTimeConcurrentVerify: of concurrent uses of one verification
// token, exactly one succeeds.
func testOneTimeConcurrentVerify(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	must(t, s.IssueOneTime(c, newToken(store.PurposeVerifyEmail, "u1", "v1", "j1", t0)))
	errs := race(10, func(i int) error {
		_, err := s.UseOneTime(c, store.OneTimeUse{Hash: "v1", Purpose: store.PurposeVerifyEmail, At: t0.Add(time.Minute),
			VerifyEmail: true, Audit: &store.AuditEvent{Type: "email.verified", CreatedAt: t0}})
		return err
	})
	oneWins(t, "using one verification token", errs, store.ErrNotFound)
	if evs, _ := s.ListAudit(c, store.AuditFilter{Type: "email.verified"}); len(evs) != 1 {
		t.Fatalf("%d verifications audited, want 1", len(evs))
	}
}

// testQueueMail: a notice is queued with its audit event, atomically.
func testQueueMail(t *testing.T, s store.Store) {
	c := ctx(t)
	job := store.MailJob{ID: "n1", Kind: "notice", UserID: "u1", Payload: []byte{1}, CreatedAt: t0, NextAttemptAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.QueueMail(c, job, &store.AuditEvent{Type: "notice.queued", UserID: "u1", CreatedAt: t0}))
	if err := s.QueueMail(c, store.MailJob{ID: "n2", Kind: "notice", Payload: []byte{1}, CreatedAt: t0, NextAttemptAt: t0,
		ExpiresAt: t0.Add(time.Hour)}, badEvent); err == nil {
		t.Fatal("QueueMail with a bad audit event succeeded")
	}
	if n, _ := s.PendingMail(c); n != 1 {
		t.Fatalf("%d mails queued, want 1 (the second rolled back)", n)
	}
	if evs, _ := s.ListAudit(c, store.AuditFilter{Type: "notice.queued"}); len(evs) != 1 {
		t.Fatalf("audit %+v", evs)
	}
}
