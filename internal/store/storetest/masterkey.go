package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

func init() {
	cases = append(cases,
		testCase{"DataKeysFirstWins", testDataKeysFirstWins},
		testCase{"ResealAllOrNothing", testResealAllOrNothing},
	)
}

// testDataKeysFirstWins: instances that create the same data key at once
// keep the first; versions are listed in order.
func testDataKeysFirstWins(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.AddDataKey(c, store.DataKey{Purpose: "p", Version: 2, Sealed: []byte("two"), CreatedAt: t0}))
	must(t, s.AddDataKey(c, store.DataKey{Purpose: "p", Version: 1, Sealed: []byte("first"), CreatedAt: t0}))
	must(t, s.AddDataKey(c, store.DataKey{Purpose: "p", Version: 1, Sealed: []byte("second"), CreatedAt: t0}))
	mustErrIs(t, s.AddDataKey(c, store.DataKey{Purpose: "p", Version: 0, Sealed: []byte("x"), CreatedAt: t0}), store.ErrInvalid)
	list, err := s.DataKeys(c)
	must(t, err)
	if len(list) != 2 || list[0].Version != 1 || string(list[0].Sealed) != "first" || list[1].Version != 2 || !list[0].CreatedAt.Equal(t0) {
		t.Fatalf("data keys: %+v", list)
	}
}

// testResealAllOrNothing: Reseal visits every sealed value (and only
// those), replaces what fn returns, audits once; an error from fn part-way
// leaves every value and the audit log as they were.
func testResealAllOrNothing(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.CreateUser(c, newUser("u1", "r@example.com"), nil))
	must(t, s.AddFactor(c, totpFactor("f1", "u1"), nil, nil))
	must(t, s.AddFactor(c, store.Factor{ID: "f2", UserID: "u1", Kind: store.FactorWebAuthn, Name: "Key", CredentialID: "cred",
		Credential: "{}", CreatedAt: t0}, nil, nil))
	must(t, s.QueueMail(c, store.MailJob{ID: "m1", Kind: "notice", Payload: []byte("mail"), CreatedAt: t0, NextAttemptAt: t0,
		ExpiresAt: t0.Add(time.Hour)}, nil))
	must(t, s.AddDataKey(c, store.DataKey{Purpose: "p", Version: 1, Sealed: []byte("dk"), CreatedAt: t0}))
	_, err := s.PutMetaIfAbsent(c, "master_key_check", "check")
	must(t, err)

	list := func() map[string]string {
		out := map[string]string{}
		must(t, s.SealedValues(c, func(v store.SealedValue) error {
			out[string(v.Kind)+" "+v.ID] = string(v.Sealed)
			return nil
		}))
		return out
	}
	want := map[string]string{"totp f1": "sealed-f1", "mail m1": "mail", "data_key p/1": "dk", "check master_key_check": "check"}
	if got := list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sealed values: %v, want %v", got, want)
	}
	audited := func() int {
		evs, err := s.ListAudit(c, store.AuditFilter{Type: "masterkey.rotated"})
		must(t, err)
		return len(evs)
	}
	ev := func(counts map[store.SealedKind]int) *store.AuditEvent {
		return &store.AuditEvent{Type: "masterkey.rotated", Details: map[string]string{"n": fmt.Sprint(len(counts))}, CreatedAt: t0}
	}

	boom := errors.New("boom")
	seen := 0
	_, err = s.Reseal(c, func(v store.SealedValue) ([]byte, error) {
		if seen++; v.Kind == store.SealedDataKey {
			return nil, boom
		}
		return []byte("new " + string(v.Sealed)), nil
	}, ev)
	mustErrIs(t, err, boom)
	if got := list(); fmt.Sprint(got) != fmt.Sprint(want) || audited() != 0 || seen < 3 {
		t.Fatalf("after a failed reseal (%d seen): %v, %d audited", seen, list(), audited())
	}

	counts, err := s.Reseal(c, func(v store.SealedValue) ([]byte, error) {
		if v.Kind == store.SealedMail {
			return nil, nil // already under the new key
		}
		return []byte("new " + string(v.Sealed)), nil
	}, ev)
	must(t, err)
	if counts[store.SealedTOTP] != 1 || counts[store.SealedDataKey] != 1 || counts[store.SealedCheck] != 1 || counts[store.SealedMail] != 0 {
		t.Fatalf("counts: %v", counts)
	}
	want = map[string]string{"totp f1": "new sealed-f1", "mail m1": "mail", "data_key p/1": "new dk", "check master_key_check": "new check"}
	if got := list(); fmt.Sprint(got) != fmt.Sprint(want) || audited() != 1 {
		t.Fatalf("after the reseal: %v, %d audited", got, audited())
	}
	if v, err := s.PutMetaIfAbsent(c, "master_key_check", "other"); err != nil || v != "new check" {
		t.Fatalf("check value: %q %v", v, err)
	}
}
