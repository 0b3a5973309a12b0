package password

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testParams keep unit tests fast; the benchmark uses DefaultParams.
var testParams = Params{Memory: 64, Time: 1, Threads: 1}

func newHasher(t testing.TB, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(p, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func bcryptHash(t testing.TB, pw string, prefix string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(b)[4:]
}

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams)
	enc, err := h.Hash(ctx, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not a PHC argon2id string", enc)
	}
	enc2, _ := h.Hash(ctx, []byte("correct horse"))
	if enc == enc2 {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	stronger := newHasher(t, Params{Memory: 128, Time: 2, Threads: 1})
	long := strings.Repeat("x", 100)

	tests := []struct {
		name        string
		h           *Hasher
		hash        string
		pw          string
		ok, rehash  bool
		wantErr     error
		errContains string
	}{
		{name: "argon2id match", h: h, hash: enc, pw: "correct horse", ok: true},
		{name: "argon2id mismatch", h: h, hash: enc, pw: "correct horsE"},
		{name: "argon2id empty password", h: h, hash: enc, pw: ""},
		{name: "argon2id weaker than config needs rehash", h: stronger, hash: enc, pw: "correct horse", ok: true, rehash: true},
		{name: "bcrypt 2a match needs rehash", h: h, hash: bcryptHash(t, "hunter22", "$2a$"), pw: "hunter22", ok: true, rehash: true},
		{name: "bcrypt 2b match", h: h, hash: bcryptHash(t, "hunter22", "$2b$"), pw: "hunter22", ok: true, rehash: true},
		{name: "bcrypt 2y match", h: h, hash: bcryptHash(t, "hunter22", "$2y$"), pw: "hunter22", ok: true, rehash: true},
		{name: "bcrypt mismatch", h: h, hash: bcryptHash(t, "hunter22", "$2a$"), pw: "hunter23"},
		{name: "bcrypt long password truncated like its origin", h: h, hash: bcryptHash(t, long[:72], "$2a$"), pw: long, ok: true, rehash: true},
		{name: "bcrypt malformed", h: h, hash: "$2a$10$tooshort", pw: "x", wantErr: ErrMalformedHash},
		{name: "bcrypt absurd cost", h: h, hash: "$2a$31$" + strings.Repeat("a", 53), pw: "x", wantErr: ErrMalformedHash},
		{name: "empty hash", h: h, hash: "", pw: "x", wantErr: ErrMalformedHash},
		{name: "argon2i not accepted", h: h, hash: strings.Replace(enc, "argon2id", "argon2i", 1), pw: "x", wantErr: ErrMalformedHash},
		{name: "wrong version", h: h, hash: strings.Replace(enc, "v=19", "v=16", 1), pw: "x", wantErr: ErrMalformedHash},
		{name: "huge memory refused", h: h, hash: strings.Replace(enc, "m=64", "m=99999999", 1), pw: "x", wantErr: ErrMalformedHash},
		{name: "bad salt", h: h, hash: strings.Replace(enc, "$m=64,t=1,p=1$", "$m=64,t=1,p=1$!!!!", 1), pw: "x", wantErr: ErrMalformedHash},
		{name: "plaintext is not a hash", h: h, hash: "password123", pw: "password123", wantErr: ErrMalformedHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.h.Verify(ctx, tc.hash, []byte(tc.pw))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if CheckHash(tc.hash) == nil {
					t.Fatalf("CheckHash accepted %q", tc.hash)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != tc.ok || res.NeedsRehash != tc.rehash {
				t.Fatalf("Verify = %+v, want ok=%v rehash=%v", res, tc.ok, tc.rehash)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		in   string
		want Params
		err  bool
	}{
		{in: "m=19456,t=2,p=1", want: DefaultParams},
		{in: "t=3,p=2,m=65536", want: Params{Memory: 65536, Time: 3, Threads: 2}},
		{in: "m=19456,t=2", err: true},
		{in: "m=19456,t=2,p=1,x=1", err: true},
		{in: "m=19456,m=2,p=1", err: true},
		{in: "m=4,t=2,p=1", err: true},
		{in: "m=19456,t=0,p=1", err: true},
		{in: "m=19456,t=2,p=0", err: true},
		{in: "m=19456,t=2,p=300", err: true},
		{in: "m=-1,t=2,p=1", err: true},
		{in: "m=99999999999,t=2,p=1", err: true},
		{in: "", err: true},
		{in: "garbage", err: true},
	}
	for _, tc := range tests {
		got, err := ParseParams(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseParams(%q) err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && got != tc.want {
			t.Errorf("ParseParams(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if !tc.err && got.String() != DefaultParams.String() && tc.in == "m=19456,t=2,p=1" {
			t.Errorf("String() round trip failed")
		}
	}
}

// TestBusy fills every slot and checks that the next caller gets ErrBusy
// after its wait instead of queueing without bound.
func TestBusy(t *testing.T) {
	h, err := NewHasher(testParams, 2, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r1, err := h.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := h.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(ctx, []byte("pw")); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with all slots taken: err = %v, want ErrBusy", err)
	}
	if _, err := h.Verify(ctx, bcryptHash(t, "pw", "$2a$"), []byte("pw")); !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify with all slots taken: err = %v, want ErrBusy", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	h.maxWait = time.Hour
	if _, err := h.Hash(cctx, []byte("pw")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with cancelled context: err = %v", err)
	}
	r1()
	if _, err := h.Hash(ctx, []byte("pw")); err != nil {
		t.Fatalf("Hash after a slot was freed: %v", err)
	}
	r2()
}

// TestObserve checks what a Hasher reports of its work: each hash and
// verification once, with the parameters actually computed (those of the
// stored hash for a verification), and nothing once the observer is removed.
func TestObserve(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams)
	weaker, err := newHasher(t, Params{Memory: 32, Time: 1, Threads: 1}).Hash(ctx, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	var got []Work
	h.Observe(func(w Work) { got = append(got, w) })
	enc, err := h.Hash(ctx, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct{ hash, pw string }{{enc, "pw"}, {enc, "wrong"}, {weaker, "pw"}, {bcryptHash(t, "pw", "$2b$"), "wrong"}} {
		if _, err := h.Verify(ctx, v.hash, []byte(v.pw)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Verify(ctx, "$argon2id$nonsense", []byte("pw")); err == nil {
		t.Fatal("a malformed hash verified")
	}
	want := []Work{
		{Alg: "argon2id", Params: testParams, SaltLen: saltLen, KeyLen: keyLen},
		{Verify: true, Alg: "argon2id", Params: testParams, SaltLen: saltLen, KeyLen: keyLen},
		{Verify: true, Alg: "argon2id", Params: testParams, SaltLen: saltLen, KeyLen: keyLen},
		{Verify: true, Alg: "argon2id", Params: Params{Memory: 32, Time: 1, Threads: 1}, SaltLen: saltLen, KeyLen: keyLen},
		{Verify: true, Alg: "bcrypt", Cost: bcrypt.MinCost},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("observed\n%+v\nwant\n%+v", got, want)
	}
	h.Observe(nil)
	if _, err := h.Hash(ctx, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("observed %d computations after Observe(nil)", len(got)-len(want))
	}
}

func TestNewHasherRejectsBadInput(t *testing.T) {
	if _, err := NewHasher(Params{Memory: 1, Time: 1, Threads: 1}, 1, 0); err == nil {
		t.Error("accepted m=1")
	}
	if _, err := NewHasher(testParams, 0, 0); err == nil {
		t.Error("accepted concurrency 0")
	}
}

// BenchmarkHash reports ns/op and B/op per algorithm at production cost:
// argon2id at the OWASP baseline and bcrypt at cost 10 (the common cost of
// imported hashes), each as a full verification.
func BenchmarkHash(b *testing.B) {
	ctx := context.Background()
	h, err := NewHasher(DefaultParams, 64, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	pw := []byte("correct horse battery staple")
	argon, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword(pw, 10)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("argon2id-m19456-t2-p1/hash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.Hash(ctx, pw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("argon2id-m19456-t2-p1/verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := h.Verify(ctx, argon, pw); err != nil || !r.OK {
				b.Fatal(err)
			}
		}
	})
	b.Run("bcrypt-10/verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := h.Verify(ctx, string(bc), pw); err != nil || !r.OK {
				b.Fatal(err)
			}
		}
	})
}
