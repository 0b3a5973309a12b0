package config

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/password"
)

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := FromEnv(getenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DatabaseURL: "sqlite:data/tokend.db", Listen: "127.0.0.1:8080", Issuer: "http://127.0.0.1:8080",
		Audience: "http://127.0.0.1:8080", AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 720 * time.Hour,
		SessionMaxAge: 2160 * time.Hour, RefreshReuseGrace: 10 * time.Second, ResetTokenTTL: time.Hour,
		SigningAlg: "RS256", KeyRotationPeriod: 720 * time.Hour, JWKSMaxAge: 5 * time.Minute,
		MailFrom: "tokend@localhost", ResetURL: "http://127.0.0.1:8080/reset", Signup: true,
		Argon2: password.DefaultParams,
	}
	c.HashMaxConcurrent = 0
	if c.DatabaseURL != want.DatabaseURL || c.Listen != want.Listen || c.Issuer != want.Issuer ||
		c.Audience != want.Audience || c.AccessTokenTTL != want.AccessTokenTTL || c.RefreshTokenTTL != want.RefreshTokenTTL ||
		c.SessionMaxAge != want.SessionMaxAge || c.RefreshReuseGrace != want.RefreshReuseGrace ||
		c.ResetTokenTTL != want.ResetTokenTTL || c.SigningAlg != want.SigningAlg || c.KeyRotationPeriod != want.KeyRotationPeriod ||
		c.JWKSMaxAge != want.JWKSMaxAge || c.MailFrom != want.MailFrom || c.ResetURL != want.ResetURL ||
		c.Signup != want.Signup || c.Argon2 != want.Argon2 || c.Dev ||
		c.PruneInterval != time.Hour || c.AuditRetention != 90*24*time.Hour {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestPruneSettings(t *testing.T) {
	c, err := FromEnv(getenv(map[string]string{"TOKEND_AUDIT_RETENTION": "0", "TOKEND_PRUNE_INTERVAL": "15m"}))
	if err != nil || c.AuditRetention != 0 || c.PruneInterval != 15*time.Minute {
		t.Fatalf("got %v, %v (%v)", c.AuditRetention, c.PruneInterval, err)
	}
	if c, err := FromEnv(getenv(map[string]string{"TOKEND_PRUNE_INTERVAL": "0"})); err != nil || c.PruneInterval != 0 {
		t.Fatalf("0 (no schedule): %v (%v)", c.PruneInterval, err)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	env := map[string]string{"TOKEND_LISTEN": "127.0.0.1:1", "TOKEND_SIGNING_ALG": "EdDSA", "TOKEND_DEV": "false"}
	c, err := Load([]string{"--listen", "127.0.0.1:2", "--dev", "--issuer", "https://auth.example.com/"}, getenv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:2" || c.SigningAlg != "EdDSA" || !c.Dev {
		t.Fatalf("got %+v", c)
	}
	if c.Issuer != "https://auth.example.com" || c.Audience != c.Issuer || c.ResetURL != "https://auth.example.com/reset" {
		t.Fatalf("issuer not normalized: %q %q %q", c.Issuer, c.Audience, c.ResetURL)
	}
	var ue *UsageError
	if _, err := Load([]string{"--nope"}, getenv(nil), io.Discard); !errors.As(err, &ue) {
		t.Fatalf("unknown flag: %v", err)
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"TOKEND_DATABASE_URL": "mysql://x"}, []string{"TOKEND_DATABASE_URL: unsupported scheme"}},
		{map[string]string{"TOKEND_DATABASE_URL": "sqlite:"}, []string{"needs a file path"}},
		{map[string]string{"TOKEND_DATABASE_URL": "sqlite::memory:"}, []string{"in-memory"}},
		{map[string]string{"TOKEND_DATABASE_URL": "postgres://host"}, []string{"names no database"}},
		{map[string]string{"TOKEND_DATABASE_URL": "postgres://u:pw-SECRET@[::1"}, []string{"not a valid postgres URL"}},
		{map[string]string{"TOKEND_LISTEN": "8080"}, []string{"TOKEND_LISTEN"}},
		{map[string]string{"TOKEND_ISSUER": "ftp://x"}, []string{"TOKEND_ISSUER"}},
		{map[string]string{"TOKEND_ISSUER": "https://x/?a=b"}, []string{"query"}},
		{map[string]string{"TOKEND_ISSUER": "http://example.com"}, []string{"https"}},
		{map[string]string{"TOKEND_ACCESS_TOKEN_TTL": "0s"}, []string{"out of range"}},
		{map[string]string{"TOKEND_REFRESH_REUSE_GRACE": "1h"}, []string{"out of range"}},
		{map[string]string{"TOKEND_KEY_ROTATION_PERIOD": "1m"}, []string{"shorter than TOKEND_JWKS_MAX_AGE"}},
		{map[string]string{"TOKEND_SIGNING_ALG": "none"}, []string{"TOKEND_SIGNING_ALG"}},
		{map[string]string{"TOKEND_MASTER_KEY": "a", "TOKEND_MASTER_KEY_FILE": "b"}, []string{"only one"}},
		{map[string]string{"TOKEND_SMTP_URL": "http://mail"}, []string{"unsupported scheme"}},
		{map[string]string{"TOKEND_SMTP_URL": "smtp://:25"}, []string{"no host"}},
		{map[string]string{"TOKEND_MAIL_FROM": "nobody"}, []string{"TOKEND_MAIL_FROM"}},
		{map[string]string{"TOKEND_RESET_URL": "https://x/reset#frag"}, []string{"fragment"}},
		{map[string]string{"TOKEND_ALLOWED_ORIGINS": "https://a.example/path"}, []string{"not an origin"}},
		{map[string]string{"TOKEND_ARGON2_PARAMS": "m=19456"}, []string{"TOKEND_ARGON2_PARAMS"}},
		{map[string]string{"TOKEND_HASH_MAX_CONCURRENT": "0"}, []string{"TOKEND_HASH_MAX_CONCURRENT"}},
		{map[string]string{"TOKEND_DEV": "yes please"}, []string{"TOKEND_DEV"}},
		{map[string]string{"TOKEND_PRUNE_INTERVAL": "1s"}, []string{"TOKEND_PRUNE_INTERVAL: 1s is below the minimum 1m"}},
		{map[string]string{"TOKEND_PRUNE_INTERVAL": "169h"}, []string{"TOKEND_PRUNE_INTERVAL: 169h0m0s is out of range"}},
		{map[string]string{"TOKEND_AUDIT_RETENTION": "1h"}, []string{"TOKEND_AUDIT_RETENTION: 1h0m0s is below the minimum 24h"}},
		{map[string]string{"TOKEND_AUDIT_RETENTION": "-1h"}, []string{"TOKEND_AUDIT_RETENTION"}},
		{map[string]string{"TOKEND_SIGNING_ALG": "x", "TOKEND_LISTEN": "x", "TOKEND_JWKS_MAX_AGE": "x"},
			[]string{"TOKEND_LISTEN", "TOKEND_JWKS_MAX_AGE", "TOKEND_SIGNING_ALG"}},
	}
	for _, tc := range tests {
		_, err := FromEnv(getenv(tc.env))
		var p Problems
		if !errors.As(err, &p) {
			t.Errorf("%v: err = %v, want Problems", tc.env, err)
			continue
		}
		if len(p) != len(tc.want) {
			t.Errorf("%v: %d problems %q, want %d", tc.env, len(p), p, len(tc.want))
		}
		for i, w := range tc.want {
			if i < len(p) && !strings.Contains(p[i], w) {
				t.Errorf("%v: problem %q does not mention %q", tc.env, p[i], w)
			}
		}
		if strings.Contains(err.Error(), "pw-SECRET") {
			t.Errorf("a problem echoes the password: %q", err)
		}
	}
}

func TestDevAllowsHTTPIssuer(t *testing.T) {
	if _, err := FromEnv(getenv(map[string]string{"TOKEND_DEV": "true", "TOKEND_ISSUER": "http://tokend.internal"})); err != nil {
		t.Fatal(err)
	}
	if _, err := FromEnv(getenv(map[string]string{"TOKEND_ISSUER": "http://localhost:9000"})); err != nil {
		t.Fatal(err)
	}
}

func TestRedacted(t *testing.T) {
	c, err := FromEnv(getenv(map[string]string{
		"TOKEND_DATABASE_URL": "postgres://tokend:db-SECRET@db/tokend",
		"TOKEND_SMTP_URL":     "smtp://mailer:smtp-SECRET@mail:587",
		"TOKEND_MASTER_KEY":   "master-SECRET",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.Redacted() {
		if strings.Contains(v, "SECRET") {
			t.Errorf("%s = %q leaks a secret", k, v)
		}
	}
	if got := c.Redacted()["TOKEND_DATABASE_URL"]; !strings.Contains(got, "tokend:redacted@db") {
		t.Errorf("database url redacted to %q", got)
	}
}

// TestRequireVerifiedEmail: on by default, off by default in dev mode, and
// either way when set.
func TestRequireVerifiedEmail(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"TOKEND_DEV": "true"}, false},
		{map[string]string{"TOKEND_DEV": "true", "TOKEND_REQUIRE_VERIFIED_EMAIL": "true"}, true},
		{map[string]string{"TOKEND_REQUIRE_VERIFIED_EMAIL": "false"}, false},
	} {
		c, err := FromEnv(getenv(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		if c.RequireVerifiedEmail != tc.want {
			t.Errorf("%v: RequireVerifiedEmail = %v, want %v", tc.env, c.RequireVerifiedEmail, tc.want)
		}
		if got := c.Redacted()["TOKEND_REQUIRE_VERIFIED_EMAIL"]; got != map[bool]string{true: "true", false: "false"}[tc.want] {
			t.Errorf("%v: redacted %q", tc.env, got)
		}
	}
	c, err := Load([]string{"--dev", "--require-verified-email"}, getenv(nil), io.Discard)
	if err != nil || !c.RequireVerifiedEmail {
		t.Fatalf("--require-verified-email in dev mode: %v %v", c.RequireVerifiedEmail, err)
	}
	if _, err := FromEnv(getenv(map[string]string{"TOKEND_REQUIRE_VERIFIED_EMAIL": "maybe"})); err == nil ||
		!strings.Contains(err.Error(), "TOKEND_REQUIRE_VERIFIED_EMAIL") {
		t.Fatalf("a bad value: %v", err)
	}
}

// TestAdminListen: the operators' listener (/metrics) is on loopback by
// default, off with "off", and refused on the public listener's address.
func TestAdminListen(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    string
		problem bool
	}{
		{env: nil, want: "127.0.0.1:8081"},
		{env: map[string]string{"TOKEND_ADMIN_LISTEN": "off"}, want: ""},
		{env: map[string]string{"TOKEND_ADMIN_LISTEN": "127.0.0.1:9100"}, want: "127.0.0.1:9100"},
		{env: map[string]string{"TOKEND_ADMIN_LISTEN": "127.0.0.1:8080"}, problem: true},
		{env: map[string]string{"TOKEND_ADMIN_LISTEN": "no-port"}, problem: true},
	} {
		c, err := FromEnv(getenv(tc.env))
		if tc.problem {
			if err == nil || !strings.Contains(err.Error(), "TOKEND_ADMIN_LISTEN") {
				t.Errorf("%v: want a problem naming TOKEND_ADMIN_LISTEN, got %v", tc.env, err)
			}
			continue
		}
		if err != nil || c.AdminListen != tc.want {
			t.Errorf("%v: AdminListen %q, %v; want %q", tc.env, c.AdminListen, err, tc.want)
		}
	}
}
