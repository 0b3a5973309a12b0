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
