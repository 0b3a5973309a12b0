package password

import (
	"context"
	"sync"
	"testing"
	"time"
)

// manualTimers stands in for time.AfterFunc: timers fire only when the
// test says so.
type manualTimers struct {
	mu     sync.Mutex
	timers []*manualTimer
}

type manualTimer struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (m *manualTimers) afterFunc(d time.Duration, f func()) func() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{d: d, f: f}
	m.timers = append(m.timers, t)
	return func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// fireAll fires every pending timer (as if the idle period had passed) and
// reports how many there were.
func (m *manualTimers) fireAll() int {
	m.mu.Lock()
	var due []*manualTimer
	for _, t := range m.timers {
		if !t.stopped {
			t.stopped = true
			due = append(due, t)
		}
	}
	m.mu.Unlock()
	for _, t := range due {
		t.f()
	}
	return len(due)
}

// pending counts the timers not yet fired or stopped.
func (m *manualTimers) pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, t := range m.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// TestIdleRelease checks that a Hasher gives its memory back once per
// burst: after the last hash in flight finishes and the idle period passes,
// not per hash, not while a hash is in flight, not again while idle, and
// not for a timer that a new hash made stale.
func TestIdleRelease(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams)
	timers := &manualTimers{}
	var released int
	h.idle.afterFunc, h.idle.free = timers.afterFunc, func() { released++ }

	hash := func() {
		t.Helper()
		if _, err := h.Hash(ctx, []byte("pw")); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, want int) {
		t.Helper()
		if released != want {
			t.Fatalf("%s: released %d times, want %d", step, released, want)
		}
	}

	// A burst of hashes, some overlapping: no release yet.
	r1, err := h.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		hash()
	}
	if n := timers.pending(); n != 0 {
		t.Fatalf("%d idle timers while a hash is in flight", n)
	}
	r1()
	enc, _ := h.Hash(ctx, []byte("pw"))
	if _, err := h.Verify(ctx, enc, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	check("during the burst", 0)
	if n := timers.pending(); n != 1 {
		t.Fatalf("%d idle timers pending after the burst, want 1", n)
	}
	if d := timers.timers[len(timers.timers)-1].d; d != DefaultIdleRelease {
		t.Fatalf("idle period %v, want %v", d, DefaultIdleRelease)
	}
	timers.fireAll()
	check("after the idle period", 1)
	// Idle for longer: nothing more to release.
	if n := timers.fireAll(); n != 0 {
		t.Fatalf("%d timers fired while idle", n)
	}
	check("still idle", 1)

	// A stale timer: set at the end of one hash, overtaken by the next.
	hash()
	stale := timers.timers[len(timers.timers)-1]
	hash()
	stale.f() // fires late, after a newer hash began and ended
	check("a stale timer", 1)
	timers.fireAll()
	check("after the second burst", 2)

	// A timer that fires while a hash is in flight does nothing; the end of
	// that hash starts the next one.
	hash()
	late := timers.timers[len(timers.timers)-1]
	r, err := h.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	late.f()
	check("a hash in flight", 2)
	r()
	timers.fireAll()
	check("after the third burst", 3)

	// A failed acquire (busy) is no hash and starts no timer.
	h2, err := NewHasher(testParams, 1, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	timers2 := &manualTimers{}
	var released2 int
	h2.idle.afterFunc, h2.idle.free = timers2.afterFunc, func() { released2++ }
	hold, err := h2.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Hash(ctx, []byte("pw")); err == nil {
		t.Fatal("Hash with the only slot taken succeeded")
	}
	if n := timers2.pending(); n != 0 {
		t.Fatalf("%d timers after a refused hash with one in flight", n)
	}
	hold()
	timers2.fireAll()
	if released2 != 1 {
		t.Fatalf("released %d times after one burst, want 1", released2)
	}
}

// TestIdleReleaseReal runs the default release (debug.FreeOSMemory) through
// a real timer with a short idle period, waiting for it by a channel rather
// than a sleep.
func TestIdleReleaseReal(t *testing.T) {
	h := newHasher(t, testParams)
	done := make(chan struct{}, 4)
	free := h.idle.free
	h.idle.after = time.Millisecond
	h.idle.free = func() { free(); done <- struct{}{} }
	if _, err := h.Hash(context.Background(), []byte("pw")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("no release a minute after the last hash")
	}
}
