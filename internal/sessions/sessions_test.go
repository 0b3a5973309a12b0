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

// keyring is a MACKeys with a current version and older ones.
type keyring struct {
	current uint32
	keys    map[uint32][]byte
}

func (k keyring) Current() (uint32, []byte) { return k.current, k.keys[k.current] }
func (k keyring) Key(v uint32) ([]byte, bool) {
	b, ok := k.keys[v]
	return b, ok
}

func TestTokenFormat(t *testing.T) {
	k1 := keyring{current: 1, keys: map[uint32][]byte{1: bytes.Repeat([]byte{1}, 32)}}
	fam := "0a3c6cc4-5e3c-4fd0-9b7a-0e6f3d1f2a11"
	tok, err := mint(k1, fam, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.Reveal()) != 82 || strings.ContainsAny(tok.Reveal(), "=+/.") {
		t.Fatalf("token %d characters, not unpadded base64url", len(tok.Reveal()))
	}
	got, ok, reason := parseToken(k1, tok.Reveal())
	if !ok || got.family != fam || got.generation != 42 || got.keyVersion != 1 {
		t.Fatalf("parse = %+v %v %s", got, ok, reason)
	}
	if again, _ := mint(k1, fam, 42); again != tok {
		t.Fatal("minting is not deterministic")
	}
	if other, _ := mint(k1, fam, 43); other == tok {
		t.Fatal("two generations share a token")
	}
	// A new current key: old tokens check while their version is known.
	k2 := keyring{current: 2, keys: map[uint32][]byte{1: k1.keys[1], 2: bytes.Repeat([]byte{2}, 32)}}
	if _, ok, _ := parseToken(k2, tok.Reveal()); !ok {
		t.Fatal("a token under a known older version does not check")
	}
	newer, _ := mint(k2, fam, 42)
	if got, ok, _ := parseToken(k2, newer.Reveal()); !ok || got.keyVersion != 2 {
		t.Fatal("a token under the new version does not check")
	}
	if _, ok, reason := parseToken(k1, newer.Reveal()); ok || !strings.Contains(reason, "unknown key version") {
		t.Fatalf("an unknown version: %v %s", ok, reason)
	}
	// The same version under another key is a bad MAC.
	k3 := keyring{current: 1, keys: map[uint32][]byte{1: bytes.Repeat([]byte{3}, 32)}}
	if _, ok, reason := parseToken(k3, tok.Reveal()); ok || !strings.Contains(reason, "bad MAC") {
		t.Fatalf("another key: %v %s", ok, reason)
	}
	if _, err := mint(k1, "not-a-uuid", 1); err == nil {
		t.Fatal("minted a token for a family id that is not a UUID")
	}
}
