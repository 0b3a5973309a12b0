package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

func newReset(user, hash, jobID string, at time.Time) store.NewReset {
	return store.NewReset{
		Token: store.ResetToken{Hash: hash, UserID: user, CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
		Mail: store.MailJob{ID: jobID, Kind: "password_reset", UserID: user, Payload: []byte{0, 1, 2}, CreatedAt: at,
			NextAttemptAt: at, ExpiresAt: at.Add(time.Hour)},
		Audit: &store.AuditEvent{Type: "password_reset.requested", UserID: user, CreatedAt: at},
	}
}

func testResetUse(t *testing.T, s store.Store) {
	c := ctx(t)
	session(t, s, "f1", "h0", store.ClientWeb) // user u1 with a live session
	must(t, s.CreateReset(c, newReset("u1", "r1", "j1", t0)))
	if n, _ := s.PendingMail(c); n != 1 {
		t.Fatalf("%d mails queued, want 1", n)
	}
	at := t0.Add(10 * time.Minute)
	uid, err := s.UseReset(c, store.ResetUse{Hash: "r1", At: at, PasswordHash: "$argon2id$new",
		Audit: &store.AuditEvent{Type: "password_reset.completed", CreatedAt: at}})
	must(t, err)
	if uid != "u1" {
		t.Fatalf("UseReset returned %q", uid)
	}
	u, _ := s.UserByID(c, "u1")
	if u.PasswordHash != "$argon2id$new" {
		t.Fatal("password not set")
	}
	if _, _, err := s.RotateRefreshToken(c, rotation("h0", "h1", at)); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("a session survived the reset")
	}
	evs, _ := s.ListAudit(c, store.AuditFilter{Type: "password_reset.completed"})
	if len(evs) != 1 || evs[0].UserID != "u1" {
		t.Fatalf("reset audit: %+v", evs)
	}
	_, err = s.UseReset(c, store.ResetUse{Hash: "r1", At: at, PasswordHash: "$argon2id$again"})
	mustErrIs(t, err, store.ErrNotFound)
	if u, _ := s.UserByID(c, "u1"); u.PasswordHash != "$argon2id$new" {
		t.Fatal("a used token set the password again")
	}
}

func testResetVoidAndExpire(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	must(t, s.CreateReset(c, newReset("u1", "old", "j-old", t0)))
	must(t, s.CreateReset(c, newReset("u1", "new", "j-new", t0.Add(time.Minute))))
	if n, _ := s.PendingMail(c); n != 1 {
		t.Fatalf("%d mails queued after a second request, want 1 (the old link's mail dropped)", n)
	}
	_, err := s.UseReset(c, store.ResetUse{Hash: "old", At: t0.Add(2 * time.Minute), PasswordHash: "x"})
	mustErrIs(t, err, store.ErrNotFound)
	// Expiry: at expires_at the token is dead.
	_, err = s.UseReset(c, store.ResetUse{Hash: "new", At: t0.Add(time.Minute + time.Hour), PasswordHash: "x"})
	mustErrIs(t, err, store.ErrNotFound)
	_, err = s.UseReset(c, store.ResetUse{Hash: "nope", At: t0, PasswordHash: "x"})
	mustErrIs(t, err, store.ErrNotFound)
	// A disabled user's token does nothing.
	must(t, s.CreateReset(c, newReset("u1", "third", "j3", t0.Add(2*time.Minute))))
	must(t, s.DisableUser(c, "u1", t0.Add(3*time.Minute), nil))
	_, err = s.UseReset(c, store.ResetUse{Hash: "third", At: t0.Add(4 * time.Minute), PasswordHash: "x"})
	mustErrIs(t, err, store.ErrNotFound)
	if u, _ := s.UserByID(c, "u1"); u.PasswordHash == "x" {
		t.Fatal("a disabled user's password was reset")
	}
}

func testResetConcurrentUse(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	must(t, s.CreateReset(c, newReset("u1", "r1", "j1", t0)))
	errs := race(10, func(i int) error {
		_, err := s.UseReset(c, store.ResetUse{Hash: "r1", At: t0.Add(time.Minute), PasswordHash: fmt.Sprintf("pw%d", i)})
		return err
	})
	oneWins(t, "using one reset token", errs, store.ErrNotFound)
}

func testMailOutbox(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "u1@example.com"), nil))
	for i := range 5 {
		must(t, s.CreateUser(c, newUser(fmt.Sprintf("m%d", i), fmt.Sprintf("m%d@example.com", i)), nil))
		must(t, s.CreateReset(c, newReset(fmt.Sprintf("m%d", i), fmt.Sprintf("h%d", i), fmt.Sprintf("j%d", i), t0)))
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
		must(t, s.CreateReset(c, newReset(uid, "h"+uid, "j"+uid, t0)))
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
			return s.CreateReset(c, newReset("u1", fmt.Sprintf("r%d-%d", round, i), fmt.Sprintf("j%d-%d", round, i), t0))
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d request %d: %v", round, i, err)
			}
		}
		if n, _ := s.PendingMail(c); n != 1 {
			t.Fatalf("round %d: %d mails queued after concurrent requests, want 1", round, n)
		}
	}
}
