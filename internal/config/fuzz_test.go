package config

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzConfig: any value of any TOKEND_* variable yields a configuration or
// problems of one line each, never a panic, and never echoes a secret
// value back.
func FuzzConfig(f *testing.F) {
	for i, s := range settings {
		f.Add(i, s.def)
	}
	f.Add(0, "postgres://u:pw@h/db?sslmode=disable")
	f.Add(0, "sqlite:")
	f.Add(13, "c2VjcmV0")
	f.Add(19, "m=4294967295,t=1,p=1")
	f.Fuzz(func(t *testing.T, which int, value string) {
		if which < 0 {
			which = -which
		}
		s := settings[which%len(settings)]
		_, err := FromEnv(func(k string) string {
			if k == s.env {
				return value
			}
			return ""
		})
		if err == nil {
			return
		}
		probs, ok := err.(Problems)
		if !ok {
			t.Fatalf("FromEnv returned %T", err)
		}
		for _, p := range probs {
			if strings.Contains(p, "\n") {
				t.Fatalf("a problem spans lines: %q", p)
			}
			if s.secret && len(value) >= 8 && strings.Contains(p, value) && !strings.Contains(guidance, value) {
				t.Fatalf("a problem echoes the secret %s value", s.env)
			}
		}
	})
}

// guidance is the advice problems print; a value that is part of it (say
// "postgres") is not echoed when a problem shows it.
const guidance = "use postgres://, postgresql:// or sqlite:PATH) (use postgres://user@host/db or sqlite:PATH) " +
	"smtp://[user:pass@]host:port or smtps://… sqlite: needs a file path (sqlite:data/tokend.db) " +
	"not a valid postgres URL (postgres://user[:password]@host[:port]/dbname) the postgres URL names no database"

// FuzzDatabaseURL: CheckDatabaseURL never panics and never prints a
// password it was given; RedactURL keeps no password of a URL (userinfo or
// a password-like query parameter) and nothing of a value that is not one.
func FuzzDatabaseURL(f *testing.F) {
	for _, s := range []string{"postgres://u:secretpw@host:5432/db", "postgresql://h/db?x=%zz", "sqlite:data/x.db", "sqlite::memory:",
		"mysql://x", "", "postgres://[::1", "smtp://u:pw@h:25?password=p", "secretpw@0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckDatabaseURL(s); err != nil && strings.Contains(s, ":secretpw@") && strings.Contains(err.Error(), "secretpw") {
			t.Fatalf("CheckDatabaseURL(%q) shows the password: %v", s, err)
		}
		out := RedactURL(s)
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			if s != "" && out != "<redacted>" {
				t.Fatalf("RedactURL(%q) = %q, want it redacted whole", s, out)
			}
			return
		}
		rest := out[min(len(u.Scheme)+1, len(out)):] // the scheme is kept as is
		if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(rest, pw) && !strings.Contains("redacted", pw) {
			t.Fatalf("RedactURL(%q) = %q keeps the password", s, out)
		}
		for k, vs := range u.Query() {
			for _, v := range vs {
				if strings.Contains(strings.ToLower(k), "pass") && len(v) >= 4 && strings.Contains(rest, v) && !strings.Contains("redacted", v) {
					t.Fatalf("RedactURL(%q) = %q keeps the %s parameter", s, out, k)
				}
			}
		}
	})
}
