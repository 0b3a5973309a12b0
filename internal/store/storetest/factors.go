package storetest

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

func init() {
	cases = append(cases,
		testCase{"FactorsAddListRemove", testFactorsAddListRemove},
		testCase{"FactorTOTPStepOnce", testFactorTOTPStepOnce},
		testCase{"FactorRecoveryCodeOnce", testFactorRecoveryCodeOnce},
		testCase{"FactorWebAuthnCounter", testFactorWebAuthnCounter},
		testCase{"WebAuthnChallengeOnce", testWebAuthnChallengeOnce},
		testCase{"SignInStepUp", testSignInStepUp},
	)
}

func totpFactor(id, user string) store.Factor {
	return store.Factor{ID: id, UserID: user, Kind: store.FactorTOTP, Name: "Authenticator app", SecretSealed: "sealed-" + id, CreatedAt: t0}
}

func testFactorsAddListRemove(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "f@example.com"), nil))
	must(t, s.CreateUser(c, newUser("u2", "g@example.com"), nil))
	codes := []string{"h1", "h2", "h3"}
	must(t, s.AddFactor(c, totpFactor("f1", "u1"), codes, &store.AuditEvent{Type: "factor.added", UserID: "u1", CreatedAt: t0}))
	// One TOTP factor per account; nothing of the refused write remains.
	mustErrIs(t, s.AddFactor(c, totpFactor("f2", "u1"), []string{"x"}, nil), store.ErrAlreadyExists)
	if n, err := s.RecoveryCodesLeft(c, "u1"); err != nil || n != 3 {
		t.Fatalf("recovery codes after a refused second TOTP: %d %v", n, err)
	}
	// A factor for no user is refused.
	mustErrIs(t, s.AddFactor(c, totpFactor("f3", "nobody"), nil, nil), store.ErrNotFound)
	key := store.Factor{ID: "f4", UserID: "u1", Kind: store.FactorWebAuthn, Name: "Laptop", CredentialID: "cred-1",
		Credential: `{"k":1}`, SignCount: 5, CreatedAt: t0.Add(time.Second)}
	must(t, s.AddFactor(c, key, nil, nil))
	dup := key
	dup.ID, dup.UserID = "f5", "u2"
	mustErrIs(t, s.AddFactor(c, dup, nil, nil), store.ErrAlreadyExists)
	fs, err := s.Factors(c, "u1")
	must(t, err)
	if len(fs) != 2 || fs[0].ID != "f1" || fs[0].SecretSealed != "sealed-f1" || !fs[0].CreatedAt.Equal(t0) ||
		fs[1].CredentialID != "cred-1" || fs[1].SignCount != 5 || fs[1].Credential != `{"k":1}` {
		t.Fatalf("factors = %+v", fs)
	}
	if got, err := s.FactorByCredential(c, "cred-1"); err != nil || got.ID != "f4" {
		t.Fatalf("by credential: %+v %v", got, err)
	}
	_, err = s.FactorByCredential(c, "nope")
	mustErrIs(t, err, store.ErrNotFound)
	// Another user cannot remove it.
	mustErrIs(t, s.RemoveFactor(c, "u2", "f1", nil), store.ErrNotFound)
	must(t, s.RemoveFactor(c, "u1", "f1", nil))
	if n, _ := s.RecoveryCodesLeft(c, "u1"); n != 3 {
		t.Fatalf("recovery codes went with a factor that was not the last: %d", n)
	}
	must(t, s.RemoveFactor(c, "u1", "f4", nil))
	if n, _ := s.RecoveryCodesLeft(c, "u1"); n != 0 {
		t.Fatalf("recovery codes outlived the last factor: %d", n)
	}
	must(t, s.AddFactor(c, totpFactor("f6", "u1"), codes, nil))
	n, err := s.RemoveFactors(c, "u1", &store.AuditEvent{Type: "factors.reset", UserID: "u1", CreatedAt: t0})
	must(t, err)
	if fs, _ := s.Factors(c, "u1"); n != 1 || len(fs) != 0 {
		t.Fatalf("RemoveFactors = %d, left %+v", n, fs)
	}
	if n, _ := s.RecoveryCodesLeft(c, "u1"); n != 0 {
		t.Fatalf("RemoveFactors left %d recovery codes", n)
	}
}

func testFactorTOTPStepOnce(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "f@example.com"), nil))
	must(t, s.AddFactor(c, totpFactor("f1", "u1"), nil, nil))
	ok, err := s.UseTOTPStep(c, "f1", 100, t0)
	if err != nil || !ok {
		t.Fatalf("first use of step 100: %v %v", ok, err)
	}
	for _, step := range []int64{100, 99} {
		if ok, err := s.UseTOTPStep(c, "f1", step, t0); err != nil || ok {
			t.Fatalf("step %d after 100: %v %v, want refused", step, ok, err)
		}
	}
	// The same new step from ten requests at once: one wins.
	errs := race(10, func(int) error {
		ok, err := s.UseTOTPStep(c, "f1", 101, t0)
		if err == nil && !ok {
			return errors.New("refused")
		}
		return err
	})
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent uses of one step succeeded: %v", won, errs)
	}
	fs, _ := s.Factors(c, "u1")
	if fs[0].LastStep != 101 || !fs[0].LastUsedAt.Equal(t0) {
		t.Fatalf("factor after use: %+v", fs[0])
	}
}

func testFactorRecoveryCodeOnce(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "f@example.com"), nil))
	must(t, s.CreateUser(c, newUser("u2", "g@example.com"), nil))
	var hashes []string
	for i := range 10 {
		hashes = append(hashes, "hash-"+strconv.Itoa(i))
	}
	must(t, s.AddFactor(c, totpFactor("f1", "u1"), hashes, nil))
	if ok, err := s.UseRecoveryCode(c, "u2", "hash-1", t0, nil); err != nil || ok {
		t.Fatalf("another user's code: %v %v", ok, err)
	}
	errs := race(8, func(int) error {
		ok, err := s.UseRecoveryCode(c, "u1", "hash-1", t0, &store.AuditEvent{Type: "recovery.used", UserID: "u1", CreatedAt: t0})
		if err == nil && !ok {
			return errors.New("refused")
		}
		return err
	})
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent uses of one recovery code succeeded: %v", won, errs)
	}
	if n, _ := s.RecoveryCodesLeft(c, "u1"); n != 9 {
		t.Fatalf("left %d, want 9", n)
	}
	ev, err := s.ListAudit(c, store.AuditFilter{UserID: "u1"})
	must(t, err)
	if len(ev) != 1 {
		t.Fatalf("audit events %d, want 1 (the one use)", len(ev))
	}
	must(t, s.ReplaceRecoveryCodes(c, "u1", []string{"new"}, t0, nil))
	if ok, _ := s.UseRecoveryCode(c, "u1", "hash-2", t0, nil); ok {
		t.Fatal("a replaced code still works")
	}
	if n, _ := s.RecoveryCodesLeft(c, "u1"); n != 1 {
		t.Fatalf("after replace: %d", n)
	}
}

func testFactorWebAuthnCounter(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "f@example.com"), nil))
	must(t, s.AddFactor(c, store.Factor{ID: "k1", UserID: "u1", Kind: store.FactorWebAuthn, CredentialID: "cred",
		Credential: "{}", SignCount: 5, CreatedAt: t0}, nil, nil))
	must(t, s.AddFactor(c, store.Factor{ID: "k2", UserID: "u1", Kind: store.FactorWebAuthn, CredentialID: "synced",
		Credential: "{}", SignCount: 0, CreatedAt: t0}, nil, nil))
	for _, tc := range []struct {
		cred  string
		count int64
		want  bool
	}{
		{"cred", 6, true}, {"cred", 6, false}, {"cred", 3, false}, {"cred", 0, false}, {"cred", 9, true},
		{"synced", 0, true}, {"synced", 0, true}, {"synced", 1, true}, {"synced", 0, false},
		{"unknown", 1, false},
	} {
		ok, err := s.UseWebAuthn(c, tc.cred, tc.count, `{"used":true}`, t0)
		if err != nil || ok != tc.want {
			t.Fatalf("UseWebAuthn(%s, %d) = %v %v, want %v", tc.cred, tc.count, ok, err, tc.want)
		}
	}
}

func testSignInStepUp(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "f@example.com"), nil))
	si := store.SignIn{ID: "si1", SecretHash: "h", UserID: "u1", AuthTime: t0, AMR: []string{"pwd"}, CreatedAt: t0,
		LastUsedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateSignIn(c, store.NewSignIn{SignIn: si}))
	later := t0.Add(time.Minute)
	must(t, s.StepUpSignIn(c, "si1", []string{"mfa", "otp", "pwd"}, later, store.ThrottleSettlement{Clear: []string{"k"}},
		&store.AuditEvent{Type: "signin.stepped_up", UserID: "u1", CreatedAt: later}))
	got, err := s.SignIn(c, "si1")
	must(t, err)
	if !got.AuthTime.Equal(later) || len(got.AMR) != 3 || got.AMR[0] != "mfa" {
		t.Fatalf("after step-up: %+v", got)
	}
	mustErrIs(t, s.StepUpSignIn(c, "si1", []string{"pwd"}, t0.Add(2*time.Hour), store.ThrottleSettlement{}, nil), store.ErrStale)
	mustErrIs(t, s.StepUpSignIn(c, "nope", []string{"pwd"}, later, store.ThrottleSettlement{}, nil), store.ErrStale)
}

func testWebAuthnChallengeOnce(t *testing.T, s store.Store) {
	c := ctx(t)
	errs := race(6, func(int) error { return s.UseChallenge(c, "challenge-1", t0.Add(5*time.Minute)) })
	oneWins(t, "answering one challenge", errs, store.ErrAlreadyExists)
	must(t, s.UseChallenge(c, "challenge-2", t0.Add(10*time.Minute)))
	mustErrIs(t, s.UseChallenge(c, "challenge-2", t0.Add(10*time.Minute)), store.ErrAlreadyExists)
	if n, err := s.PruneBatch(c, store.PruneTarget{Table: "webauthn_challenges", Key: "challenge_hash", Column: "expires_at"},
		t0.Add(6*time.Minute), 100); err != nil || n != 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	// The pruned challenge's record is gone; the live one still refuses.
	mustErrIs(t, s.UseChallenge(c, "challenge-2", t0.Add(10*time.Minute)), store.ErrAlreadyExists)
	must(t, s.UseChallenge(c, "challenge-1", t0.Add(5*time.Minute)))
}
