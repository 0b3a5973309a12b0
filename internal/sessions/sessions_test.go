package sessions

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	raw := newRaw()
	enc := string(encode(raw))
	if len(enc) != encodedLen {
		t.Fatalf("encoded length %d", len(enc))
	}
	if got, ok := parseToken(enc); !ok || !bytes.Equal(got, raw) {
		t.Fatal("round trip failed")
	}
	for _, bad := range []string{"", "short", enc + "A", enc[:42] + "=", strings.Repeat("*", 43), enc[:42] + "\n",
		strings.Repeat("A", 42) + "B"} { // non-canonical final character
		if _, ok := parseToken(bad); ok {
			t.Errorf("parseToken(%q) accepted", bad)
		}
	}
}

func TestDerive(t *testing.T) {
	d := deriver{key: bytes.Repeat([]byte{7}, 32)}
	p := newRaw()
	c1, c2 := d.child(p), d.child(p)
	if !bytes.Equal(c1, c2) || len(c1) != rawLen {
		t.Fatal("derivation is not deterministic or not 256 bits")
	}
	if bytes.Equal(c1, d.child(newRaw())) || bytes.Equal(c1, p) {
		t.Fatal("different parents derive the same child")
	}
	if bytes.Equal(c1, (deriver{key: bytes.Repeat([]byte{8}, 32)}).child(p)) {
		t.Fatal("the derivation ignores its key")
	}
	if hashToken(p) == hashToken(c1) || strings.Contains(hashToken(p), string(encode(p))) {
		t.Fatal("hash reveals the token")
	}
}

func TestScope(t *testing.T) {
	for in, want := range map[string]string{"": "", "openid": "openid", "email openid email": "email openid", "  profile  ": "profile"} {
		if got, ok := parseScope(in); !ok || got != want {
			t.Errorf("parseScope(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"admin", "openid admin", "OPENID"} {
		if _, ok := parseScope(bad); ok {
			t.Errorf("parseScope(%q) accepted", bad)
		}
	}
	if got, ok := narrow("email openid", "openid"); !ok || got != "openid" {
		t.Errorf("narrow = %q %v", got, ok)
	}
	if got, ok := narrow("email openid", ""); !ok || got != "email openid" {
		t.Errorf("narrow empty = %q %v", got, ok)
	}
	if _, ok := narrow("openid", "openid profile"); ok {
		t.Error("narrow widened the scope")
	}
}

func TestSecretRedacted(t *testing.T) {
	s := Secret("abc")
	if v := s.LogValue().String(); strings.Contains(v, "abc") {
		t.Fatalf("LogValue = %q", v)
	}
}
