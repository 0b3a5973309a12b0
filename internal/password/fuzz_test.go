package password

import (
	"context"
	"testing"
	"time"
)

// FuzzHashString: any stored hash string is parsed without panicking, a
// parsed PHC string re-encodes to an equivalent one, and a verification
// that passes the bounds runs (with a tiny password) and says no.
func FuzzHashString(f *testing.F) {
	h, _ := NewHasher(Params{Memory: 64, Time: 1, Threads: 1}, 2, time.Second)
	good, _ := h.Hash(context.Background(), []byte("seed password"))
	for _, s := range []string{good, "$2a$04$KpX7/UtECpGDQMHMnjaeLOX5zJrpnGw4VWL0nvRhPDoZMkdtbJ6Qe",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdA$aGFzaA",
		"", "$", "$2y$", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckHash(s)
		if p, perr := parsePHC(s); perr == nil {
			again, err2 := parsePHC(p.String())
			if err2 != nil || again.String() != p.String() {
				t.Fatalf("PHC round trip failed for %q", s)
			}
			if err != nil {
				t.Fatalf("parsePHC accepted what CheckHash refused: %q", s)
			}
			// Only verify cheap hashes: the bounds allow up to 1 GiB, which is
			// not something to run thousands of times a second.
			if p.params.Memory > 1024 || p.params.Time > 2 {
				return
			}
		}
		if err != nil || isBcrypt(s) {
			return
		}
		res, verr := h.Verify(context.Background(), s, []byte("not the password"))
		if verr == nil && res.OK {
			t.Fatalf("a fuzzed hash %q accepted an arbitrary password", s)
		}
	})
}
