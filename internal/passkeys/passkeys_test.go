package passkeys_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/factors"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/passkeys"
	"github.com/tokend/tokend/internal/passkeys/passkeystest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func TestRelyingParty(t *testing.T) {
	for issuer, want := range map[string][2]string{
		"https://auth.example.com":          {"auth.example.com", "https://auth.example.com"},
		"https://Auth.Example.com:8443/idp": {"auth.example.com", "https://auth.example.com:8443"},
		"http://localhost:8080":             {"localhost", "http://localhost:8080"},
		"http://tokend.localhost":           {"tokend.localhost", "http://tokend.localhost"},
		"http://127.0.0.1:8080":             {},
		"https://127.0.0.1":                 {},
		"http://[::1]:8080":                 {},
		"http://auth.example.com":           {},
		"not a url":                         {},
	} {
		id, origin, err := passkeys.RelyingParty(issuer)
		if want[0] == "" {
			if !errors.Is(err, passkeys.ErrUnavailable) {
				t.Errorf("%s: %q %q %v, want ErrUnavailable", issuer, id, origin, err)
			}
			continue
		}
		if err != nil || id != want[0] || origin != want[1] {
			t.Errorf("%s: %q %q %v, want %q", issuer, id, origin, err, want)
		}
	}
}

func TestName(t *testing.T) {
	gpm := [16]byte{0xea, 0x9b, 0x8d, 0x66, 0x4d, 0x01, 0x1d, 0x21, 0x3c, 0xe4, 0xb6, 0xb4, 0x8c, 0xb5, 0x75, 0xd4}
	for _, tc := range []struct {
		given  string
		aaguid []byte
		want   string
	}{
		{"  My laptop ", nil, "My laptop"},
		{"", gpm[:], "Google Password Manager"},
		{"Phone", gpm[:], "Phone"},
		{"", make([]byte, 16), "Passkey"},
		{"\x00\u202e\t", nil, "Passkey"},
		{"a\nb\u200bc", nil, "abc"},
		{strings.Repeat("é", 100), nil, strings.Repeat("é", passkeys.MaxNameLen)},
		{"<script>", nil, "<script>"}, // kept as text; pages escape it
	} {
		if got := passkeys.Name(tc.given, tc.aaguid); got != tc.want {
			t.Errorf("Name(%q) = %q, want %q", tc.given, got, tc.want)
		}
	}
}

type rig struct {
	db    *sqlstore.DB
	clk   *clock.Fake
	pk    *passkeys.Service
	user  store.User
	other store.User
}

func newRig(t *testing.T, issuer string) *rig {
	t.Helper()
	db := dbtest.SQLite(t)
	clk := clock.NewFake(t0)
	mk := masterkey.Generate()
	fs := factors.New(factors.Config{Store: db, Secrets: mk.Sealer(masterkey.PurposeTOTP),
		RecoveryKey: mk.Derive(masterkey.PurposeRecoveryCodes), Now: clk.Now})
	pk, err := passkeys.New(passkeys.Config{Issuer: issuer, Name: "Acme", Store: db, Enroll: fs, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{db: db, clk: clk, pk: pk}
	for i, email := range []string{"pk@example.com", "other@example.com"} {
		u := store.User{ID: []string{"u-1", "u-2"}[i], Email: email, PasswordHash: "x", CreatedAt: t0, UpdatedAt: t0}
		if err := db.CreateUser(context.Background(), u, nil); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			r.user = u
		} else {
			r.other = u
		}
	}
	return r
}

// register adds a passkey of a to u and returns the recovery codes shown.
func (r *rig) register(t *testing.T, a *passkeystest.Authenticator, u store.User, name string) int {
	t.Helper()
	opts, c, err := r.pk.BeginRegistration(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Create(string(opts))
	if err != nil {
		t.Fatal(err)
	}
	codes, err := r.pk.Register(context.Background(), u, c, name, resp, audit.Meta{Address: "192.0.2.1"})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return len(codes)
}

func (r *rig) second(t *testing.T, a *passkeystest.Authenticator, u store.User) ([]string, error) {
	t.Helper()
	opts, c, err := r.pk.BeginSecondStep(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Get(string(opts))
	if err != nil {
		t.Fatal(err)
	}
	return passkeys.Step{Passkeys: r.pk}.Check(context.Background(), u.ID, passkeys.EncodeInput(c, resp), audit.Meta{})
}

func (r *rig) alone(t *testing.T, a *passkeystest.Authenticator) (string, []string, error) {
	t.Helper()
	opts, c, err := r.pk.BeginPasskey()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Get(string(opts))
	if err != nil {
		t.Fatal(err)
	}
	return r.pk.VerifyPasskey(context.Background(), passkeys.EncodeInput(c, resp), audit.Meta{})
}

func wantRejected(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, passkeys.ErrRejected) || !errors.Is(err, login.ErrWrongFactor) {
		t.Fatalf("%s: %v, want a rejection", what, err)
	}
}

// TestCeremonies: a passkey registers (with recovery codes the first
// time), serves as the second step and alone, with the amr each gives; the
// counter, the challenge, the origin, the RP ID and user verification are
// all checked.
func TestCeremonies(t *testing.T) {
	r := newRig(t, "https://auth.example.com")
	ctx := context.Background()
	a := &passkeystest.Authenticator{Origin: "https://auth.example.com"}
	if n := r.register(t, a, r.user, "Laptop"); n != factors.RecoveryCodeCount {
		t.Fatalf("%d recovery codes with the first factor", n)
	}
	fs, _ := r.db.Factors(ctx, r.user.ID)
	if len(fs) != 1 || fs[0].Kind != store.FactorWebAuthn || fs[0].Name != "Laptop" || fs[0].CredentialID == "" ||
		!strings.Contains(fs[0].Credential, `"public_key"`) || !strings.Contains(fs[0].Credential, `"backup_eligible":false`) {
		t.Fatalf("stored factors: %+v", fs)
	}
	synced := &passkeystest.Authenticator{Origin: "https://auth.example.com", BackupEligible: true, NoCounter: true}
	if n := r.register(t, synced, r.user, ""); n != 0 {
		t.Fatalf("%d recovery codes with the second factor", n)
	}

	amr, err := r.second(t, a, r.user)
	if err != nil || !slices.Equal(amr, []string{"hwk", "user"}) {
		t.Fatalf("second step: %v %v", amr, err)
	}
	if amr, err := r.second(t, synced, r.user); err != nil || !slices.Equal(amr, []string{"swk", "user"}) {
		t.Fatalf("synced second step: %v %v", amr, err)
	}
	// A zero counter stays acceptable for an authenticator without one.
	if _, err := r.second(t, synced, r.user); err != nil {
		t.Fatalf("synced second step again: %v", err)
	}
	uid, amr, err := r.alone(t, a)
	if err != nil || uid != r.user.ID || !slices.Equal(amr, []string{"hwk", "user", "mfa"}) {
		t.Fatalf("alone: %s %v %v", uid, amr, err)
	}
	fs, _ = r.db.Factors(ctx, r.user.ID)
	i := slices.IndexFunc(fs, func(f store.Factor) bool { return f.Name == "Laptop" })
	if fs[i].SignCount != 2 || fs[i].LastUsedAt.IsZero() {
		t.Fatalf("after two uses: count %d, last used %v", fs[i].SignCount, fs[i].LastUsedAt)
	}

	t.Run("replayed challenge", func(t *testing.T) {
		opts, c, _ := r.pk.BeginPasskey()
		resp, _ := a.Get(string(opts))
		if _, _, err := r.pk.VerifyPasskey(ctx, passkeys.EncodeInput(c, resp), audit.Meta{}); err != nil {
			t.Fatal(err)
		}
		// The same answer again, and a fresh answer to the same challenge.
		_, _, err := r.pk.VerifyPasskey(ctx, passkeys.EncodeInput(c, resp), audit.Meta{})
		wantRejected(t, "the same answer", err)
		resp2, _ := a.Get(string(opts))
		_, _, err = r.pk.VerifyPasskey(ctx, passkeys.EncodeInput(c, resp2), audit.Meta{})
		wantRejected(t, "another answer to the same challenge", err)
	})
	t.Run("counter going backwards", func(t *testing.T) {
		orig := a.Credentials()[0]
		clone := &passkeystest.Authenticator{Origin: "https://auth.example.com"}
		clone.Add(passkeystest.Credential{ID: orig.ID, Key: orig.Key, RPID: orig.RPID, UserHandle: orig.UserHandle,
			SignCount: 1})
		_, _, err := r.alone(t, clone)
		wantRejected(t, "a clone's lower counter", err)
		evs, _ := r.db.ListAudit(ctx, store.AuditFilter{UserID: r.user.ID, Type: audit.FactorCloned})
		if len(evs) != 1 || evs[0].Details["presented_count"] != "2" {
			t.Fatalf("clone audit: %+v", evs)
		}
		// The owner's authenticator, whose counter is ahead, still works.
		if _, _, err := r.alone(t, a); err != nil {
			t.Fatalf("the original after a clone: %v", err)
		}
	})
	t.Run("wrong origin", func(t *testing.T) {
		evil := *a
		evil.Origin = "https://auth.example.com.evil.test"
		_, _, err := r.alone(t, &evil)
		wantRejected(t, "another origin", err)
	})
	t.Run("wrong RP ID", func(t *testing.T) {
		evil := *a
		evil.RPID = "example.com"
		_, _, err := r.alone(t, &evil)
		wantRejected(t, "another RP ID", err)
	})
	t.Run("no user verification", func(t *testing.T) {
		lazy := *a
		lazy.NoUserVerification = true
		_, _, err := r.alone(t, &lazy)
		wantRejected(t, "no UV", err)
		_, err = r.second(t, &lazy, r.user)
		wantRejected(t, "no UV, second step", err)
		opts, c, _ := r.pk.BeginRegistration(ctx, r.other)
		resp, _ := lazy.Create(string(opts))
		_, err = r.pk.Register(ctx, r.other, c, "", resp, audit.Meta{})
		if !errors.Is(err, passkeys.ErrRejected) {
			t.Fatalf("registration without UV: %v", err)
		}
	})
	t.Run("another account's ceremony", func(t *testing.T) {
		// A second-step ceremony for the other user, answered with this
		// user's passkey: not this account's.
		other := &passkeystest.Authenticator{Origin: "https://auth.example.com"}
		r.register(t, other, r.other, "")
		opts, c, _ := r.pk.BeginSecondStep(ctx, r.other.ID)
		resp, err := a.Get(strings.Replace(string(opts), `"allowCredentials"`, `"ignored"`, 1))
		if err != nil {
			t.Fatal(err)
		}
		_, err = passkeys.Step{Passkeys: r.pk}.Check(ctx, r.other.ID, passkeys.EncodeInput(c, resp), audit.Meta{})
		wantRejected(t, "a credential the ceremony did not allow", err)
		_, err = passkeys.Step{Passkeys: r.pk}.Check(ctx, r.user.ID, passkeys.EncodeInput(c, resp), audit.Meta{})
		wantRejected(t, "a ceremony of another account", err)
	})
	t.Run("a user handle of another account", func(t *testing.T) {
		forged := &passkeystest.Authenticator{Origin: "https://auth.example.com"}
		orig := a.Credentials()[0]
		forged.Add(passkeystest.Credential{ID: orig.ID, Key: orig.Key, RPID: orig.RPID, UserHandle: []byte(r.other.ID),
			SignCount: 1000})
		_, _, err := r.alone(t, forged)
		wantRejected(t, "another account's user handle", err)
	})
	t.Run("registered twice", func(t *testing.T) {
		opts, c, _ := r.pk.BeginRegistration(ctx, r.user)
		if _, err := a.Create(string(opts)); !errors.Is(err, passkeystest.ErrInvalidState) {
			t.Fatalf("the authenticator was not told to exclude its credential: %v", err)
		}
		_ = c
	})
	t.Run("garbage", func(t *testing.T) {
		_, c, _ := r.pk.BeginPasskey()
		for _, resp := range []string{"", "{}", `{"id":"x"}`, "not json", `{"rawId":"AAAA","response":{}}`} {
			_, _, err := r.pk.VerifyPasskey(ctx, passkeys.EncodeInput(c, resp), audit.Meta{})
			wantRejected(t, resp, err)
		}
	})
}

func TestUnavailableOnIP(t *testing.T) {
	_, err := passkeys.New(passkeys.Config{Issuer: "http://127.0.0.1:8080"})
	if !errors.Is(err, passkeys.ErrUnavailable) {
		t.Fatalf("an IP issuer: %v", err)
	}
}
