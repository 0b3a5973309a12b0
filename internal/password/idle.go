package password

import (
	"runtime/debug"
	"sync"
	"time"
)

// DefaultIdleRelease is how long a Hasher must have had no hash in flight
// before it hands its memory back to the operating system.
const DefaultIdleRelease = 2 * time.Second

// idleRelease returns the memory of a burst of hashes once the burst is
// over. Each argon2id computation allocates its whole working memory (19 MiB
// at the default parameters) and drops it when done; the garbage collector
// frees it, but the Go runtime keeps freed pages mapped and returns them to
// the kernel only slowly, so a process that ran its hashing slots full keeps
// their memory resident long after the last login. When the last hash in
// flight finishes, an idle timer starts; a new hash stops it; when it fires
// with nothing in flight, free runs once. It runs again only after another
// hash: once per idle transition, never per hash.
type idleRelease struct {
	after time.Duration
	// afterFunc schedules f after d and returns a function that cancels it
	// (time.AfterFunc's Stop); tests replace it to fire timers by hand.
	afterFunc func(d time.Duration, f func()) (stop func() bool)
	// free returns the memory (debug.FreeOSMemory: a full collection, then
	// every free page back to the kernel).
	free func()

	mu       sync.Mutex
	inFlight int
	dirty    bool   // a hash ran since the last release
	gen      uint64 // counts begins, so a timer from an earlier idle period is ignored
	stop     func() bool
}

func newIdleRelease(after time.Duration) *idleRelease {
	return &idleRelease{after: after, free: debug.FreeOSMemory,
		afterFunc: func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }}
}

// begin marks a hash as started.
func (r *idleRelease) begin() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight++
	r.dirty = true
	r.gen++
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
}

// end marks a hash as finished; the last one in flight starts the idle
// timer.
func (r *idleRelease) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if r.inFlight > 0 || !r.dirty || r.after <= 0 {
		return
	}
	gen := r.gen
	r.stop = r.afterFunc(r.after, func() { r.fire(gen) })
}

// fire runs when an idle timer expires: it releases the memory unless a
// hash started since the timer was set.
func (r *idleRelease) fire(gen uint64) {
	r.mu.Lock()
	if gen != r.gen || r.inFlight > 0 || !r.dirty {
		r.mu.Unlock()
		return
	}
	r.dirty = false
	r.stop = nil
	free := r.free
	r.mu.Unlock()
	// Outside the lock: a full collection takes a while, and a hash that
	// starts meanwhile must not wait for it.
	free()
}
