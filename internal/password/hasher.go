package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrBusy means every hashing slot stayed taken for the whole wait: the
// server is saturated and the caller should answer 429 and retry later.
var ErrBusy = errors.New("password hashing is saturated")

// bcryptMaxLen is bcrypt's input limit. Systems that produced the imported
// hashes truncated longer passwords, so verification truncates the same way.
const bcryptMaxLen = 72

// Hasher hashes and verifies passwords with at most Concurrency
// computations at once.
type Hasher struct {
	params  Params
	slots   chan struct{}
	maxWait time.Duration
	observe atomic.Pointer[func(Work)]
	idle    *idleRelease
}

// Work is one hash computation of a Hasher, as reported to an observer
// (see [Hasher.Observe]).
type Work struct {
	Verify  bool   // a verification; false for a new hash
	Alg     string // "argon2id" or "bcrypt"
	Params  Params // argon2id's cost parameters
	SaltLen int    // argon2id's salt, in bytes
	KeyLen  int    // argon2id's derived key, in bytes
	Cost    int    // bcrypt's cost
}

// Observe makes h call f after each hash it computes, with what it computed
// (nil stops it). It exists so that a test can check exactly that two code
// paths do the same hashing work (a login for an unknown email and a wrong
// password, say) instead of timing them on a machine that may be busy. f
// runs on the caller's goroutine before Hash or Verify returns; it is safe
// to set while h is in use.
func (h *Hasher) Observe(f func(Work)) {
	if f == nil {
		h.observe.Store(nil)
		return
	}
	h.observe.Store(&f)
}

// did reports w to the observer, if any.
func (h *Hasher) did(w Work) {
	if f := h.observe.Load(); f != nil {
		(*f)(w)
	}
}

// NewHasher returns a Hasher producing argon2id hashes with p, running at most
// concurrency hashes at once; a caller waits up to maxWait for a slot.
func NewHasher(p Params, concurrency int, maxWait time.Duration) (*Hasher, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if concurrency < 1 {
		return nil, fmt.Errorf("hash concurrency %d: must be at least 1", concurrency)
	}
	return &Hasher{params: p, slots: make(chan struct{}, concurrency), maxWait: maxWait,
		idle: newIdleRelease(DefaultIdleRelease)}, nil
}

// Params returns the parameters of new hashes.
func (h *Hasher) Params() Params { return h.params }

// acquire takes a slot, waiting at most maxWait. Releasing the last slot
// in use starts the idle timer that returns the hashes' memory (see
// idleRelease).
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.slots <- struct{}{}:
		return h.took(), nil
	default:
	}
	t := time.NewTimer(h.maxWait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return h.took(), nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// took records a slot just taken and returns the function that gives it
// back.
func (h *Hasher) took() func() {
	h.idle.begin()
	return func() {
		<-h.slots
		h.idle.end()
	}
}

// Hash returns a new argon2id PHC string for pw.
func (h *Hasher) Hash(ctx context.Context, pw []byte) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	enc := hashArgon2(pw, h.params)
	h.did(Work{Alg: "argon2id", Params: h.params, SaltLen: saltLen, KeyLen: keyLen})
	return enc, nil
}

func hashArgon2(pw []byte, p Params) string {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		panic("password: crypto/rand failed: " + err.Error())
	}
	key := argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, keyLen)
	return phc{params: p, salt: salt, key: key}.String()
}

// Result is the outcome of a verification.
type Result struct {
	OK bool
	// NeedsRehash is set on success when the hash is bcrypt or argon2id with
	// weaker parameters than the Hasher's: the caller should store a new hash.
	NeedsRehash bool
}

// Verify checks pw against encoded, a PHC argon2id string or a bcrypt hash.
// A wrong password is Result{OK: false} with a nil error; errors are reserved
// for malformed hashes, saturation (ErrBusy) and cancellation.
func (h *Hasher) Verify(ctx context.Context, encoded string, pw []byte) (Result, error) {
	if isBcrypt(encoded) {
		cost, err := bcrypt.Cost([]byte(encoded))
		if err != nil || cost > 16 {
			// Refuse absurd costs: 2^31 rounds would pin a core for days.
			return Result{}, fmt.Errorf("%w: bcrypt", ErrMalformedHash)
		}
		release, err := h.acquire(ctx)
		if err != nil {
			return Result{}, err
		}
		defer release()
		if len(pw) > bcryptMaxLen {
			pw = pw[:bcryptMaxLen]
		}
		err = bcrypt.CompareHashAndPassword([]byte(encoded), pw)
		h.did(Work{Verify: true, Alg: "bcrypt", Cost: cost})
		switch {
		case err == nil:
			return Result{OK: true, NeedsRehash: true}, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return Result{}, nil
		default:
			return Result{}, fmt.Errorf("%w: bcrypt", ErrMalformedHash)
		}
	}
	parsed, err := parsePHC(encoded)
	if err != nil {
		return Result{}, err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()
	p := parsed.params
	key := argon2.IDKey(pw, parsed.salt, p.Time, p.Memory, p.Threads, uint32(len(parsed.key)))
	h.did(Work{Verify: true, Alg: "argon2id", Params: p, SaltLen: len(parsed.salt), KeyLen: len(parsed.key)})
	if subtle.ConstantTimeCompare(key, parsed.key) != 1 {
		return Result{}, nil
	}
	return Result{OK: true, NeedsRehash: p.weakerThan(h.params) || p.Threads != h.params.Threads ||
		len(parsed.key) < keyLen || len(parsed.salt) < saltLen}, nil
}

// CheckHash reports whether encoded is a hash Verify understands, without
// computing anything (for imports).
func CheckHash(encoded string) error {
	if isBcrypt(encoded) {
		if cost, err := bcrypt.Cost([]byte(encoded)); err != nil || cost > 16 {
			return fmt.Errorf("%w: bcrypt", ErrMalformedHash)
		}
		return nil
	}
	_, err := parsePHC(encoded)
	return err
}
