package totp

import (
	"encoding/base32"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"
)

// TestRFC6238Vectors: the SHA-1 test vectors of RFC 6238 Appendix B (the
// 8-digit values; the 6-digit code is their last six digits).
func TestRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	} {
		if got := Code(secret, Step(time.Unix(tc.unix, 0))); got != tc.want[2:] {
			t.Errorf("T=%d: %s, want %s", tc.unix, got, tc.want[2:])
		}
	}
}

// TestAgainstAnAuthenticator: the codes of an independent implementation
// (pquerna/otp, as authenticator apps compute them) from the URI we write
// match, at step boundaries too.
func TestAgainstAnAuthenticator(t *testing.T) {
	secret := NewSecret()
	u, err := url.Parse(URI("tokend", "ann@example.com", secret))
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	if key.Issuer() != "tokend" || key.AccountName() != "ann@example.com" {
		t.Fatalf("the URI reads as issuer %q, account %q", key.Issuer(), key.AccountName())
	}
	t0 := time.Unix(1_800_000_000, 0) // a step boundary (divisible by 30)
	for _, at := range []time.Time{t0, t0.Add(-time.Second), t0.Add(29 * time.Second), t0.Add(30 * time.Second)} {
		code, err := pqtotp.GenerateCode(key.Secret(), at)
		if err != nil {
			t.Fatal(err)
		}
		step, ok := Match(secret, code, at)
		if !ok || step != Step(at) {
			t.Fatalf("at %v: the authenticator's %s gave step %d %v, want %d", at, code, step, ok, Step(at))
		}
	}
	dec, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(key.Secret()))
	if err != nil || string(dec) != string(secret) {
		t.Fatal("the URI's secret is not the secret")
	}
}

func TestMatchWindow(t *testing.T) {
	secret := NewSecret()
	now := time.Unix(1_800_000_015, 0)
	for _, tc := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"current", now, true},
		{"previous step", now.Add(-30 * time.Second), true},
		{"next step", now.Add(30 * time.Second), true},
		{"two steps old", now.Add(-60 * time.Second), false},
		{"two steps ahead", now.Add(60 * time.Second), false},
	} {
		code := Code(secret, Step(tc.at))
		step, ok := Match(secret, code, now)
		if ok != tc.ok || ok && step != Step(tc.at) {
			t.Errorf("%s: %d %v", tc.name, step, ok)
		}
	}
	code := Code(secret, Step(now))
	if _, ok := Match(secret, code[:3]+" "+code[3:], now); !ok {
		t.Error("a code typed with a space was refused")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := Match(secret, bad, now); ok {
			t.Errorf("%q matched", bad)
		}
	}
}
