package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
)

const (
	maxAge    = 5 * time.Minute
	accessTTL = 15 * time.Minute
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	db    Store
	clock *clock.Fake
	mk    *masterkey.Key
	m     *Manager
}

func newFixture(t *testing.T, db Store, period time.Duration) *fixture {
	t.Helper()
	f := &fixture{db: db, clock: clock.NewFake(t0), mk: masterkey.Generate()}
	f.m = f.manager(t, period)
	if err := f.m.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// manager returns another instance on the same store and clock.
func (f *fixture) manager(t *testing.T, period time.Duration) *Manager {
	return NewManager(Config{Store: f.db, Sealer: f.mk.Sealer(masterkey.PurposeSigningKeys), Now: f.clock.Now,
		Log: dbtest.Logger(t), JWKSMaxAge: maxAge, AccessTokenTTL: accessTTL, RotationPeriod: period})
}

type jwks struct {
	Keys []map[string]any `json:"keys"`
}

func published(t *testing.T, m *Manager) map[string]string {
	t.Helper()
	var j jwks
	if err := json.Unmarshal(m.JWKS().Body, &j); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range j.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[private]; ok {
				t.Fatalf("JWKS key %v has private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || k["kid"] == "" {
			t.Fatalf("JWKS key without use=sig or kid: %v", k)
		}
		out[k["kid"].(string)] = k["alg"].(string)
	}
	return out
}

func stateOf(t *testing.T, f *fixture, kid string) store.KeyState {
	t.Helper()
	keys, err := f.db.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.KID == kid {
			return k.State
		}
	}
	return ""
}

func nextKID(t *testing.T, f *fixture, alg string) string {
	t.Helper()
	keys, _ := f.db.SigningKeys(context.Background(), store.KeyNext)
	for _, k := range keys {
		if k.Alg == alg {
			return k.KID
		}
	}
	t.Fatalf("no next %s key", alg)
	return ""
}

func TestLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		f := newFixture(t, b.Open(t), 0)
		m := f.m
		if got := published(t, m); len(got) != 4 {
			t.Fatalf("after bootstrap the JWKS has %d keys, want current+next for 2 algorithms", len(got))
		}
		for _, alg := range Algs {
			if _, ok := m.Signer(alg); !ok {
				t.Fatalf("no %s signer after bootstrap", alg)
			}
		}
		oldCur, _ := m.Signer(EdDSA)
		next := nextKID(t, f, EdDSA)

		// A next key does not sign before it has been published for max-age
		// (plus the reload margin).
		var npe *NotPublishedError
		if _, err := m.Rotate(ctx, EdDSA, RotateOptions{}); !errors.As(err, &npe) {
			t.Fatalf("rotation right after bootstrap: %v, want NotPublishedError", err)
		}
		f.clock.Advance(maxAge + PublishMargin - time.Second)
		if _, err := m.Rotate(ctx, EdDSA, RotateOptions{}); !errors.As(err, &npe) {
			t.Fatalf("rotation 1s before eligibility: %v", err)
		}
		f.clock.Advance(time.Second)
		kid, err := m.Rotate(ctx, EdDSA, RotateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if kid != next {
			t.Fatalf("rotation made %s current, want the next key %s", kid, next)
		}
		if s, _ := m.Signer(EdDSA); s.KID != next {
			t.Fatalf("signing with %s after rotation, want %s", s.KID, next)
		}
		retiredAt := f.clock.Now()
		if _, ok := published(t, m)[oldCur.KID]; !ok || stateOf(t, f, oldCur.KID) != store.KeyRetired {
			t.Fatal("the retired key left the JWKS at once")
		}

		// A retired key stays until its last token expired plus max-age.
		until := retiredAt.Add(PublishMargin + accessTTL + maxAge)
		f.clock.Set(until.Add(-time.Second))
		if _, err := m.RotateDue(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := published(t, m)[oldCur.KID]; !ok {
			t.Fatal("the retired key left the JWKS before its tokens expired")
		}
		f.clock.Set(until)
		if _, err := m.RotateDue(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := published(t, m)[oldCur.KID]; ok {
			t.Fatal("the retired key is still published after its window")
		}
		if st := stateOf(t, f, oldCur.KID); st != store.KeyExpired {
			t.Fatalf("retired key state %s after its window, want expired", st)
		}

		// Revoking the current key removes it at once and promotes next.
		cur, _ := m.Signer(RS256)
		rsNext := nextKID(t, f, RS256)
		if err := m.Revoke(ctx, cur.KID, audit0); err != nil {
			t.Fatal(err)
		}
		if _, ok := published(t, m)[cur.KID]; ok {
			t.Fatal("a revoked key is still published")
		}
		if s, _ := m.Signer(RS256); s.KID != rsNext {
			t.Fatalf("after revoking current, signing with %s, want the promoted next %s", s.KID, rsNext)
		}
		if nextKID(t, f, RS256) == rsNext {
			t.Fatal("no fresh next key after revoking current")
		}
		if err := m.Revoke(ctx, cur.KID, audit0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("revoking twice: %v", err)
		}
		if err := m.Revoke(ctx, "no-such-kid", audit0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoking an unknown kid: %v", err)
		}
	})
}

func TestScheduledRotation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		const period = time.Hour
		f := newFixture(t, b.Open(t), period)
		first, _ := f.m.Signer(EdDSA)
		f.clock.Advance(period - time.Second)
		if got, err := f.m.RotateDue(ctx); err != nil || len(got) != 0 {
			t.Fatalf("rotation before the period: %v %v", got, err)
		}
		f.clock.Advance(time.Second)
		got, err := f.m.RotateDue(ctx)
		if err != nil || len(got) != 2 {
			t.Fatalf("scheduled rotation at the period: %v %v, want both algorithms", got, err)
		}
		// Once per period: running again at the same instant does nothing.
		if got, err := f.m.RotateDue(ctx); err != nil || len(got) != 0 {
			t.Fatalf("second run in the same period rotated %v (%v)", got, err)
		}
		if s, _ := f.m.Signer(EdDSA); s.KID == first.KID {
			t.Fatal("still signing with the first key after the scheduled rotation")
		}
		f.clock.Advance(period)
		if got, _ := f.m.RotateDue(ctx); len(got) != 2 {
			t.Fatalf("next period rotated %v", got)
		}
	})
}

// TestRotationTwoInstances runs the schedule on two instances at once:
// exactly one rotation per algorithm happens.
func TestRotationTwoInstances(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		f := newFixture(t, b.Open(t), time.Hour)
		other := f.manager(t, time.Hour)
		f.clock.Advance(time.Hour)
		var wg sync.WaitGroup
		results := make([][]string, 2)
		errs := make([]error, 2)
		for i, m := range []*Manager{f.m, other} {
			wg.Add(1)
			go func() { defer wg.Done(); results[i], errs[i] = m.RotateDue(ctx) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := len(results[0]) + len(results[1]); n != 2 {
			t.Fatalf("two instances made %d rotations (%v), want 2 (one per algorithm)", n, results)
		}
		checkInvariants(t, f)
	})
}

// TestRotationCrashAfterLease: an instance takes the lease and dies before
// committing. Nothing changed, and the next scheduled run after the lease
// expires completes the rotation.
func TestRotationCrashAfterLease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		f := newFixture(t, b.Open(t), time.Hour)
		before, _ := f.m.Signer(RS256)
		crasher := f.manager(t, time.Hour)
		crasher.afterLease = func() error { return errors.New("killed") }
		f.clock.Advance(time.Hour)
		if _, err := crasher.RotateDue(ctx); err == nil {
			t.Fatal("the crashing instance reported success")
		}
		checkInvariants(t, f)
		if got, _ := f.m.RotateDue(ctx); len(got) != 0 {
			t.Fatal("rotated while the dead instance's lease was still valid")
		}
		if s, _ := f.m.Signer(RS256); s.KID != before.KID {
			t.Fatal("the signing key changed although nothing rotated")
		}
		f.clock.Advance(leaseTTL)
		got, err := f.m.RotateDue(ctx)
		if err != nil || len(got) != 2 {
			t.Fatalf("run after the lease expired: %v %v", got, err)
		}
		checkInvariants(t, f)
	})
}

// checkInvariants: exactly one current and one next key per algorithm.
func checkInvariants(t *testing.T, f *fixture) {
	t.Helper()
	keys, err := f.db.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, k := range keys {
		count[k.Alg+"/"+string(k.State)]++
	}
	for _, alg := range Algs {
		if count[alg+"/current"] != 1 || count[alg+"/next"] != 1 {
			t.Fatalf("%s: %d current and %d next keys", alg, count[alg+"/current"], count[alg+"/next"])
		}
	}
}

func TestKIDIsRFC7638Thumbprint(t *testing.T) {
	mat, err := generate(RS256, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := mat.priv.Public().(*rsa.PublicKey)
	e := base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	n := base64.RawURLEncoding.EncodeToString(pub.N.Bytes())
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); mat.kid != want {
		t.Fatalf("RSA kid %s, want %s", mat.kid, want)
	}
	ed, err := generate(EdDSA, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := base64.RawURLEncoding.EncodeToString(ed.priv.Public().(ed25519.PublicKey))
	sum = sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); ed.kid != want {
		t.Fatalf("Ed25519 kid %s, want %s", ed.kid, want)
	}
	for _, bits := range []int{3072, 4096} {
		if testing.Short() {
			break
		}
		if m, err := generate(RS256, bits); err != nil || m.priv.(*rsa.PrivateKey).N.BitLen() != bits {
			t.Fatalf("generate %d: %v", bits, err)
		}
	}
	if _, err := generate(RS256, 1024); err == nil {
		t.Fatal("generated a 1024-bit key")
	}
}

func pemOf(t *testing.T, typ string, der []byte, headers map[string]string) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: headers})
}

func TestParsePEM(t *testing.T) {
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p8 := func(k any) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name, alg string
		data      []byte
		want      string // "" for success
	}{
		{"rsa pkcs8", RS256, pemOf(t, "PRIVATE KEY", p8(rsa2048), nil), ""},
		{"rsa pkcs1", RS256, pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048), nil), ""},
		{"ed25519 pkcs8", EdDSA, pemOf(t, "PRIVATE KEY", p8(edKey), nil), ""},
		{"rsa under 2048 bits", RS256, pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024), nil), "1024 bits"},
		{"rsa for EdDSA", EdDSA, pemOf(t, "PRIVATE KEY", p8(rsa2048), nil), "use --alg RS256"},
		{"ed25519 for RS256", RS256, pemOf(t, "PRIVATE KEY", p8(edKey), nil), "use --alg EdDSA"},
		{"ecdsa", RS256, pemOf(t, "PRIVATE KEY", p8(ecKey), nil), "unsupported key type"},
		{"encrypted pkcs8", RS256, pemOf(t, "ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}, nil), "encrypted PEM"},
		{"encrypted legacy", RS256, pemOf(t, "RSA PRIVATE KEY", []byte{1, 2, 3}, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}), "encrypted PEM"},
		{"public key", RS256, pemOf(t, "PUBLIC KEY", []byte{1}, nil), "not a private key"},
		{"two keys", RS256, append(pemOf(t, "PRIVATE KEY", p8(rsa2048), nil), pemOf(t, "PRIVATE KEY", p8(rsa2048), nil)...), "more than one"},
		{"garbage", RS256, []byte("hello"), "no PEM block"},
		{"corrupt der", RS256, pemOf(t, "PRIVATE KEY", []byte{0x30, 1, 2}, nil), "cannot parse"},
		{"bad alg", "HS256", pemOf(t, "PRIVATE KEY", p8(rsa2048), nil), "unsupported algorithm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePEM(tc.alg, tc.data)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestImport(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		f := newFixture(t, b.Open(t), 0)
		_, edKey, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(edKey)
		kid, err := f.m.Import(ctx, EdDSA, pemOf(t, "PRIVATE KEY", der, nil), audit0)
		if err != nil {
			t.Fatal(err)
		}
		if nextKID(t, f, EdDSA) != kid {
			t.Fatal("the imported key is not next")
		}
		checkInvariants(t, f)
		if _, ok := published(t, f.m)[kid]; !ok {
			t.Fatal("the imported key is not published")
		}
		// It waits for max-age like any next key, then signs.
		if _, err := f.m.Rotate(ctx, EdDSA, RotateOptions{}); err == nil {
			t.Fatal("an imported key signed before it was published for max-age")
		}
		f.clock.Advance(maxAge + PublishMargin)
		if got, err := f.m.Rotate(ctx, EdDSA, RotateOptions{}); err != nil || got != kid {
			t.Fatalf("rotate to the imported key: %s %v", got, err)
		}
		if _, err := f.m.Import(ctx, EdDSA, pemOf(t, "PRIVATE KEY", der, nil), audit0); err == nil {
			t.Fatal("importing a stored key again succeeded")
		}
	})
}

// TestPrivateKeysNeverInClear reads the database file and every stored
// column: no private key appears, only sealed bytes.
func TestPrivateKeysNeverInClear(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		path := t.TempDir() + "/tokend.db"
		var db Store
		if b.Name == "sqlite" {
			db = dbtest.SQLiteAt(t, path)
		} else {
			db = b.Open(t)
		}
		f := newFixture(t, db, 0)
		var secrets [][]byte
		for _, alg := range Algs {
			s, _ := f.m.Signer(alg)
			der, _ := x509.MarshalPKCS8PrivateKey(s.Key)
			secrets = append(secrets, der)
			switch k := s.Key.(type) {
			case *rsa.PrivateKey:
				secrets = append(secrets, k.D.Bytes(), k.Primes[0].Bytes(), []byte(base64.RawURLEncoding.EncodeToString(k.D.Bytes())))
			case ed25519.PrivateKey:
				secrets = append(secrets, k.Seed(), []byte(base64.RawURLEncoding.EncodeToString(k.Seed())))
			}
		}
		keys, _ := f.db.SigningKeys(ctx)
		var stored []byte
		for _, k := range keys {
			stored = append(stored, k.PublicJWK...)
			stored = append(stored, k.PrivateSealed...)
		}
		if b.Name == "sqlite" {
			for _, suffix := range []string{"", "-wal"} {
				if data, err := os.ReadFile(path + suffix); err == nil {
					stored = append(stored, data...)
				}
			}
		}
		stored = append(stored, f.m.JWKS().Body...)
		for i, s := range secrets {
			if bytes.Contains(stored, s[:min(len(s), 32)]) {
				t.Fatalf("private key material %d found in clear in the database or JWKS", i)
			}
		}
	})
}

func TestWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, dbtest.SQLite(t), 0)
	other := NewManager(Config{Store: f.db, Sealer: masterkey.Generate().Sealer(masterkey.PurposeSigningKeys), Now: f.clock.Now,
		JWKSMaxAge: maxAge, AccessTokenTTL: accessTTL})
	err := other.Reload(ctx)
	if !errors.Is(err, masterkey.ErrWrongKey) || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("reload with another master key: %v", err)
	}
	// Tampering: moving a sealed key to another row fails the same way.
	keys, _ := f.db.SigningKeys(ctx, store.KeyCurrent)
	swapped := keys[0]
	swapped.PrivateSealed = keys[1].PrivateSealed
	if _, err := openPrivate(f.mk.Sealer(masterkey.PurposeSigningKeys), swapped); !errors.Is(err, masterkey.ErrWrongKey) {
		t.Fatalf("a ciphertext moved to another kid opened: %v", err)
	}
}

// TestJWKSStable: two instances on one database serve byte-identical JWKS
// (so ETags match behind a load balancer).
func TestJWKSStable(t *testing.T) {
	f := newFixture(t, dbtest.SQLite(t), 0)
	other := f.manager(t, 0)
	if err := other.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.m.JWKS().Body, other.JWKS().Body) || f.m.JWKS().ETag != other.JWKS().ETag {
		t.Fatal("two instances serve different JWKS for the same keys")
	}
	_ = fmt.Sprint(crypto.SHA256)
}
