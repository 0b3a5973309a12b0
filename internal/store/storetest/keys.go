package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/store"
)

func newKey(kid, alg string, state store.KeyState, at time.Time) store.SigningKey {
	k := store.SigningKey{KID: kid, Alg: alg, State: state, PublicJWK: []byte(`{"kty":"OKP","kid":"` + kid + `"}`),
		PrivateSealed: []byte{1, 0, 2, 0xff, 0}, Origin: "generated", CreatedAt: at}
	if state == store.KeyCurrent {
		k.ActivatedAt = at
	}
	return k
}

func keyStates(t *testing.T, s store.Store) map[string]store.KeyState {
	t.Helper()
	keys, err := s.SigningKeys(ctx(t))
	must(t, err)
	m := map[string]store.KeyState{}
	for _, k := range keys {
		m[k.KID] = k.State
	}
	return m
}

func bootstrap(t *testing.T, s store.Store, alg string) {
	t.Helper()
	must(t, s.BootstrapSigningKeys(ctx(t), newKey(alg+"-c1", alg, store.KeyCurrent, t0), newKey(alg+"-n1", alg, store.KeyNext, t0), nil))
}

func testKeysBootstrap(t *testing.T, s store.Store) {
	c := ctx(t)
	bootstrap(t, s, "EdDSA")
	bootstrap(t, s, "RS256")
	// A second instance racing the first loses and changes nothing.
	err := s.BootstrapSigningKeys(c, newKey("x-c", "EdDSA", store.KeyCurrent, t0), newKey("x-n", "EdDSA", store.KeyNext, t0), nil)
	mustErrIs(t, err, store.ErrAlreadyExists)
	keys, err := s.SigningKeys(c)
	must(t, err)
	if len(keys) != 4 {
		t.Fatalf("%d keys after a lost bootstrap, want 4", len(keys))
	}
	k := keys[0]
	if k.Alg != "EdDSA" || string(k.PrivateSealed) != string([]byte{1, 0, 2, 0xff, 0}) || !k.CreatedAt.Equal(t0) {
		t.Fatalf("key round trip: %+v", k)
	}
	cur, err := s.SigningKeys(c, store.KeyCurrent)
	must(t, err)
	if len(cur) != 2 || !cur[0].ActivatedAt.Equal(t0) {
		t.Fatalf("current keys: %+v", cur)
	}
}

func testKeysRotate(t *testing.T, s store.Store) {
	c := ctx(t)
	bootstrap(t, s, "EdDSA")
	at := t0.Add(time.Hour)
	r := store.KeyRotation{Alg: "EdDSA", CurrentKID: "EdDSA-c1", NextKID: "EdDSA-n1",
		NewNext: newKey("EdDSA-n2", "EdDSA", store.KeyNext, at), At: at, PublishUntil: at.Add(20 * time.Minute)}
	must(t, s.RotateSigningKeys(c, r, &store.AuditEvent{Type: "key.rotated", CreatedAt: at}))
	want := map[string]store.KeyState{"EdDSA-c1": store.KeyRetired, "EdDSA-n1": store.KeyCurrent, "EdDSA-n2": store.KeyNext}
	if got := keyStates(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after rotation: %v, want %v", got, want)
	}
	keys, _ := s.SigningKeys(c, store.KeyRetired)
	if len(keys) != 1 || !keys[0].RetiredAt.Equal(at) || !keys[0].PublishUntil.Equal(at.Add(20*time.Minute)) {
		t.Fatalf("retired key: %+v", keys)
	}
	// The same rotation again is stale: nothing changes.
	r.NewNext = newKey("EdDSA-n3", "EdDSA", store.KeyNext, at)
	mustErrIs(t, s.RotateSigningKeys(c, r, nil), store.ErrConflict)
	if got := keyStates(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("a stale rotation changed keys: %v", got)
	}
	n, err := s.ExpireSigningKeys(c, at.Add(19*time.Minute))
	must(t, err)
	if n != 0 {
		t.Fatal("a retired key expired before PublishUntil")
	}
	n, err = s.ExpireSigningKeys(c, at.Add(20*time.Minute))
	must(t, err)
	if n != 1 || keyStates(t, s)["EdDSA-c1"] != store.KeyExpired {
		t.Fatalf("expire moved %d keys: %v", n, keyStates(t, s))
	}
	evs, _ := s.ListAudit(c, store.AuditFilter{Type: "key.rotated"})
	if len(evs) != 1 {
		t.Fatalf("rotation audit events: %d", len(evs))
	}
}

// testKeysRotateConcurrent: instances rotating the same keys at once; one
// wins, the others get ErrConflict, and the invariants hold.
func testKeysRotateConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	bootstrap(t, s, "RS256")
	errs := race(6, func(i int) error {
		at := t0.Add(time.Hour)
		return s.RotateSigningKeys(c, store.KeyRotation{Alg: "RS256", CurrentKID: "RS256-c1", NextKID: "RS256-n1",
			NewNext: newKey(fmt.Sprintf("RS256-new%d", i), "RS256", store.KeyNext, at), At: at, PublishUntil: at}, nil)
	})
	oneWins(t, "rotating the same keys", errs, store.ErrConflict, store.ErrAlreadyExists)
	cur, _ := s.SigningKeys(c, store.KeyCurrent)
	next, _ := s.SigningKeys(c, store.KeyNext)
	all, _ := s.SigningKeys(c)
	if len(cur) != 1 || len(next) != 1 || len(all) != 3 {
		t.Fatalf("after concurrent rotations: %d current, %d next, %d keys", len(cur), len(next), len(all))
	}
}

func testKeysRevoke(t *testing.T, s store.Store) {
	c := ctx(t)
	bootstrap(t, s, "EdDSA")
	at := t0.Add(time.Minute)
	// Revoking the current key without a replacement next fails whole.
	if err := s.RevokeSigningKey(c, "EdDSA-c1", at, nil, nil); err == nil {
		t.Fatal("revoking the current key without a new next key succeeded")
	}
	if got := keyStates(t, s); got["EdDSA-c1"] != store.KeyCurrent || got["EdDSA-n1"] != store.KeyNext {
		t.Fatalf("failed revoke changed keys: %v", got)
	}
	nn := newKey("EdDSA-n2", "EdDSA", store.KeyNext, at)
	must(t, s.RevokeSigningKey(c, "EdDSA-c1", at, &nn, &store.AuditEvent{Type: "key.revoked", CreatedAt: at}))
	want := map[string]store.KeyState{"EdDSA-c1": store.KeyRevoked, "EdDSA-n1": store.KeyCurrent, "EdDSA-n2": store.KeyNext}
	if got := keyStates(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after revoking current: %v, want %v", got, want)
	}
	cur, _ := s.SigningKeys(c, store.KeyCurrent)
	if !cur[0].ActivatedAt.Equal(at) {
		t.Fatalf("promoted key activated at %v", cur[0].ActivatedAt)
	}
	mustErrIs(t, s.RevokeSigningKey(c, "EdDSA-c1", at, nil, nil), store.ErrConflict)
	mustErrIs(t, s.RevokeSigningKey(c, "nope", at, nil, nil), store.ErrNotFound)
	nn3 := newKey("EdDSA-n3", "EdDSA", store.KeyNext, at)
	must(t, s.RevokeSigningKey(c, "EdDSA-n2", at, &nn3, nil))
	if got := keyStates(t, s); got["EdDSA-n2"] != store.KeyRevoked || got["EdDSA-n3"] != store.KeyNext {
		t.Fatalf("after revoking next: %v", got)
	}
	// A retired key is simply revoked.
	must(t, s.RotateSigningKeys(c, store.KeyRotation{Alg: "EdDSA", CurrentKID: "EdDSA-n1", NextKID: "EdDSA-n3",
		NewNext: newKey("EdDSA-n4", "EdDSA", store.KeyNext, at), At: at, PublishUntil: at.Add(time.Hour)}, nil))
	must(t, s.RevokeSigningKey(c, "EdDSA-n1", at, nil, nil))
	if got := keyStates(t, s); got["EdDSA-n1"] != store.KeyRevoked || got["EdDSA-n3"] != store.KeyCurrent {
		t.Fatalf("after revoking retired: %v", got)
	}
}

func testKeysReplaceNext(t *testing.T, s store.Store) {
	c := ctx(t)
	bootstrap(t, s, "RS256")
	imp := newKey("imported", "RS256", store.KeyNext, t0.Add(time.Minute))
	imp.Origin = "imported"
	must(t, s.ReplaceNextSigningKey(c, imp, nil))
	got := keyStates(t, s)
	if _, ok := got["RS256-n1"]; ok || got["imported"] != store.KeyNext || len(got) != 2 {
		t.Fatalf("after import: %v", got)
	}
}

func testMeta(t *testing.T, s store.Store) {
	c := ctx(t)
	v, err := s.PutMetaIfAbsent(c, "k", "first")
	must(t, err)
	if v != "first" {
		t.Fatalf("first put returned %q", v)
	}
	v, err = s.PutMetaIfAbsent(c, "k", "second")
	must(t, err)
	if v != "first" {
		t.Fatalf("second put returned %q, want the first value", v)
	}
}
