package sessions

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/opaque"
)

func TestDerive(t *testing.T) {
	d := deriver{key: bytes.Repeat([]byte{7}, 32)}
	p := opaque.New()
	c1, c2 := d.child(p), d.child(p)
	if !bytes.Equal(c1, c2) || len(c1) != opaque.RawLen {
		t.Fatal("derivation is not deterministic or not 256 bits")
	}
	if bytes.Equal(c1, d.child(opaque.New())) || bytes.Equal(c1, p) {
		t.Fatal("different parents derive the same child")
	}
	if bytes.Equal(c1, (deriver{key: bytes.Repeat([]byte{8}, 32)}).child(p)) {
		t.Fatal("the derivation ignores its key")
	}
	if opaque.Hash(p) == opaque.Hash(c1) || strings.Contains(opaque.Hash(p), string(opaque.Encode(p))) {
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
