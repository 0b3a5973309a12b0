package masterkey_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// MACKeys is a drop-in for the refresh MAC's versioned key source
// (sessions.MACKeys).
var _ interface {
	Current() (uint32, []byte)
	Key(uint32) ([]byte, bool)
} = masterkey.MACKeys{}

func TestKeyringSealer(t *testing.T) {
	old, cur := masterkey.Generate(), masterkey.Generate()
	ctOld := old.Sealer(masterkey.PurposeMail).Seal([]byte("queued"), []byte("job-1"))
	ring := &masterkey.Keyring{Current: cur, Previous: old}
	if pt, err := ring.Sealer(masterkey.PurposeMail).Open(ctOld, []byte("job-1")); err != nil || string(pt) != "queued" {
		t.Fatalf("the previous key's ciphertext: %q, %v", pt, err)
	}
	ctNew := ring.Sealer(masterkey.PurposeMail).Seal([]byte("queued"), []byte("job-1"))
	if _, err := old.Sealer(masterkey.PurposeMail).Open(ctNew, []byte("job-1")); err == nil {
		t.Fatal("the keyring sealed with the previous key")
	}
	if _, err := cur.Sealer(masterkey.PurposeMail).Open(ctNew, []byte("job-1")); err != nil {
		t.Fatalf("the keyring did not seal with the current key: %v", err)
	}
	if _, err := ring.Sealer(masterkey.PurposeMail).Open(ctOld, []byte("job-2")); !errors.Is(err, masterkey.ErrWrongKey) {
		t.Fatalf("other ad: %v", err)
	}
	if _, err := (&masterkey.Keyring{Current: cur}).Sealer(masterkey.PurposeMail).Open(ctOld, []byte("job-1")); !errors.Is(err, masterkey.ErrWrongKey) {
		t.Fatalf("without the previous key: %v", err)
	}
}

func TestLoadPrevious(t *testing.T) {
	cur := masterkey.Generate()
	if k, err := masterkey.LoadPrevious("", "", cur); k != nil || err != nil {
		t.Fatalf("unset: %v %v", k, err)
	}
	old := masterkey.Generate()
	if k, err := masterkey.LoadPrevious(old.Encode(), "", cur); err != nil || k.Encode() != old.Encode() {
		t.Fatalf("set: %v", err)
	}
	_, err := masterkey.LoadPrevious(cur.Encode(), "", cur)
	if err == nil || bytes.Contains([]byte(err.Error()), []byte(cur.Encode())) {
		t.Fatalf("the same key as the current one: %v", err)
	}
	if _, err := masterkey.LoadPrevious("short", "", cur); err == nil || !bytes.Contains([]byte(err.Error()), []byte("TOKEND_MASTER_KEY_PREVIOUS")) {
		t.Fatalf("malformed: %v", err)
	}
}

// TestKeyringCheck: the database's check value decides whether an instance
// starts: under the current key yes; under the previous key only, no
// (ErrNotRotated, whichever way round the keys are); under neither, no.
func TestKeyringCheck(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	old, cur := masterkey.Generate(), masterkey.Generate()
	if err := old.Check(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ring masterkey.Keyring
		want error
	}{
		{"old alone", masterkey.Keyring{Current: old}, nil},
		{"old sealing, new previous", masterkey.Keyring{Current: old, Previous: cur}, nil},
		{"new sealing before the rotation", masterkey.Keyring{Current: cur, Previous: old}, masterkey.ErrNotRotated},
		{"new alone", masterkey.Keyring{Current: cur}, masterkey.ErrMismatch},
	} {
		if err := tc.ring.Check(ctx, db); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestDataKeys: version 1 of each purpose is exactly the key derived from
// the master key before data keys existed, instances agree on it, and a
// rotation does not change it.
func TestDataKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		old := masterkey.Generate()
		ring := &masterkey.Keyring{Current: old}
		d1, err := ring.LoadDataKeys(ctx, db, t0)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ring.LoadDataKeys(ctx, db, t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range masterkey.DataKeyPurposes {
			v, k := d1.Current(p)
			if v != 1 || !bytes.Equal(k, old.Derive(p)) {
				t.Fatalf("%s: version %d, derived key %v", p, v, bytes.Equal(k, old.Derive(p)))
			}
			if _, k2 := d2.Current(p); !bytes.Equal(k, k2) {
				t.Fatalf("%s: a second load gave another key", p)
			}
		}
		mac := d1.MAC(masterkey.PurposeRefreshMAC)
		if v, k := mac.Current(); v != 1 || !bytes.Equal(k, old.Derive(masterkey.PurposeRefreshMAC)) {
			t.Fatal("MAC adapter: wrong current key")
		}
		if _, ok := mac.Key(2); ok {
			t.Fatal("MAC adapter: a version that does not exist")
		}
		for _, s := range []string{fmt.Sprint(d1), fmt.Sprintf("%+v %#v", d1, mac)} {
			if bytes.Contains([]byte(s), []byte(fmt.Sprint(old.Derive(masterkey.PurposeCSRF)))) || !bytes.Contains([]byte(s), []byte("redacted")) {
				t.Fatalf("data keys print: %s", s)
			}
		}
		cur := masterkey.Generate()
		rotated := &masterkey.Keyring{Current: cur, Previous: old}
		if _, err := rotated.Rotate(ctx, db, t0); err != nil {
			t.Fatal(err)
		}
		d3, err := (&masterkey.Keyring{Current: cur}).LoadDataKeys(ctx, db, t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range masterkey.DataKeyPurposes {
			if _, k := d3.Current(p); !bytes.Equal(k, old.Derive(p)) {
				t.Fatalf("%s: the rotation changed the data key", p)
			}
		}
	})
}

// sealedFixture writes one value of every kind sealed under mk, the way the
// owning packages seal them (the end-to-end test in httpapi checks them
// through those packages).
func sealedFixture(t *testing.T, db *sqlstore.DB, mk *masterkey.Key) {
	t.Helper()
	ctx := context.Background()
	if err := mk.Check(ctx, db); err != nil {
		t.Fatal(err)
	}
	w := db.Writer()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := w.ExecContext(ctx, w.Rebind(q), args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO users (id, email, email_normalized, password_hash, created_at, updated_at) VALUES ('u1', 'a@example.com', 'a@example.com', 'x', 0, 0)`)
	exec(`INSERT INTO signing_keys (kid, alg, state, public_jwk, private_sealed, origin, created_at) VALUES ('k1', 'EdDSA', 'retired', '{}', ?, 'generated', 0)`,
		mk.Sealer(masterkey.PurposeSigningKeys).Seal([]byte("private"), []byte("tokend signing key k1")))
	exec(`INSERT INTO mail_outbox (id, kind, payload, created_at, next_attempt_at, expires_at) VALUES ('j1', 'reset', ?, 0, 0, 0)`,
		mk.Sealer(masterkey.PurposeMail).Seal([]byte("{}"), []byte("tokend mail job j1")))
	exec(`INSERT INTO user_factors (id, user_id, kind, secret_sealed, created_at) VALUES ('f1', 'u1', 'totp', ?, 0)`,
		base64.RawURLEncoding.EncodeToString(mk.Sealer(masterkey.PurposeTOTP).Seal([]byte("totp secret"), []byte("f1"))))
	exec(`INSERT INTO user_factors (id, user_id, kind, credential_id, created_at) VALUES ('f2', 'u1', 'webauthn', 'cred', 0)`)
	exec(`INSERT INTO onetime_tokens (token_hash, purpose, user_id, data, created_at, expires_at) VALUES ('h1', 'email_change', 'u1', ?, 0, 0)`,
		mk.Sealer(masterkey.PurposeOneTimeData).Seal([]byte("b@example.com"), []byte("tokend one-time token h1")))
	if _, err := (&masterkey.Keyring{Current: mk}).LoadDataKeys(ctx, db, t0); err != nil {
		t.Fatal(err)
	}
}

func snapshot(t *testing.T, db *sqlstore.DB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := db.SealedValues(context.Background(), func(v store.SealedValue) error {
		out[string(v.Kind)+" "+v.ID] = v.Sealed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func rotations(t *testing.T, db *sqlstore.DB) []store.AuditEvent {
	t.Helper()
	evs, err := db.ListAudit(context.Background(), store.AuditFilter{Type: audit.MasterKeyRotated})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestRotate: every kind of sealed value moves to the new key in one
// transaction; a value that opens with neither key stops the rotation and
// nothing changes; a second run changes nothing; the status counts follow.
func TestRotate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		old, cur := masterkey.Generate(), masterkey.Generate()
		sealedFixture(t, db, old)
		ring := &masterkey.Keyring{Current: cur, Previous: old}

		st, err := ring.Status(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		wantKinds := map[store.SealedKind]int{store.SealedSigningKey: 1, store.SealedMail: 1, store.SealedTOTP: 1, store.SealedOneTime: 1,
			store.SealedDataKey: len(masterkey.DataKeyPurposes), store.SealedCheck: 1}
		if fmt.Sprint(st.Previous) != fmt.Sprint(wantKinds) || masterkey.Total(st.Current) != 0 {
			t.Fatalf("status before: %+v", st)
		}

		// A value sealed under neither key, visited after most others.
		before := snapshot(t, db)
		if err := db.AddDataKey(ctx, store.DataKey{Purpose: "zz stray", Version: 1, Sealed: []byte("garbage"), CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := ring.Rotate(ctx, db, t0); !errors.Is(err, masterkey.ErrUnreadable) {
			t.Fatalf("rotate with an unreadable value: %v", err)
		}
		after := snapshot(t, db)
		delete(after, "data_key zz stray/1")
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Fatal("a failed rotation changed sealed values")
		}
		if len(rotations(t, db)) != 0 {
			t.Fatal("a failed rotation was audited")
		}
		if err := (&masterkey.Keyring{Current: old}).Check(ctx, db); err != nil {
			t.Fatalf("the check value moved: %v", err)
		}
		if _, err := db.Writer().ExecContext(ctx, `DELETE FROM data_keys WHERE purpose = 'zz stray'`); err != nil {
			t.Fatal(err)
		}

		counts, err := ring.Rotate(ctx, db, t0)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(counts) != fmt.Sprint(wantKinds) {
			t.Fatalf("re-sealed %v, want %v", counts, wantKinds)
		}
		alone := &masterkey.Keyring{Current: cur}
		if err := alone.Check(ctx, db); err != nil {
			t.Fatalf("the new key alone after the rotation: %v", err)
		}
		if err := (&masterkey.Keyring{Current: old}).Check(ctx, db); !errors.Is(err, masterkey.ErrMismatch) {
			t.Fatalf("the old key alone after the rotation: %v", err)
		}
		if err := (&masterkey.Keyring{Current: old, Previous: cur}).Check(ctx, db); !errors.Is(err, masterkey.ErrNotRotated) {
			t.Fatalf("an instance still sealing with the old key after the rotation: %v", err)
		}
		st, err = alone.Status(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(st.Current) != fmt.Sprint(wantKinds) || masterkey.Total(st.Previous)+masterkey.Total(st.Unreadable) != 0 {
			t.Fatalf("status after: %+v", st)
		}
		// The values open under the new key with their old plaintexts.
		if pt, err := cur.Sealer(masterkey.PurposeSigningKeys).Open(snapshot(t, db)["signing_key k1"], []byte("tokend signing key k1")); err != nil || string(pt) != "private" {
			t.Fatalf("signing key after: %q %v", pt, err)
		}
		evs := rotations(t, db)
		if len(evs) != 1 || evs[0].Details["mail"] != "1" || evs[0].Details["totp"] != "1" {
			t.Fatalf("audit: %+v", evs)
		}

		// An instance that still seals with the old key writes more; the
		// second run picks it up, and only it.
		if _, err := db.Writer().ExecContext(ctx, db.Writer().Rebind(`INSERT INTO mail_outbox (id, kind, payload, created_at, next_attempt_at, expires_at) VALUES ('j2', 'reset', ?, 0, 0, 0)`),
			old.Sealer(masterkey.PurposeMail).Seal([]byte("{}"), []byte("tokend mail job j2"))); err != nil {
			t.Fatal(err)
		}
		mid := snapshot(t, db)
		counts, err = ring.Rotate(ctx, db, t0)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(counts) != fmt.Sprint(map[store.SealedKind]int{store.SealedMail: 1}) {
			t.Fatalf("second run re-sealed %v", counts)
		}
		end := snapshot(t, db)
		for k, v := range mid {
			if k != "mail j2" && !bytes.Equal(v, end[k]) {
				t.Fatalf("the second run rewrote %s", k)
			}
		}
		if _, err := (&masterkey.Keyring{Current: cur}).Rotate(ctx, db, t0); !errors.Is(err, masterkey.ErrNoPrevious) {
			t.Fatalf("rotate without a previous key: %v", err)
		}
	})
}
