package throttle_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/throttle"
)

func TestLoginBackoff(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		l := throttle.NewLimiter(b.Open(t), c.Now)
		pair := throttle.LoginRules("A@example.com", "192.0.2.1", "")[0]
		for i := range 5 {
			if _, err := l.Reserve(ctx, pair); err != nil {
				t.Fatalf("locked after %d failures: %v", i, err)
			}
		}
		// The 5th attempt locks for 30 s, growing with each further one.
		for i, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute} {
			var le *throttle.LimitedError
			if _, err := l.Reserve(ctx, pair); !errors.As(err, &le) || le.RetryAfter != want {
				t.Fatalf("lock %d: %v, want %s", i, err, want)
			}
			c.Advance(want - time.Second)
			if _, err := l.Reserve(ctx, pair); err == nil {
				t.Fatal("unlocked before the lock ended")
			}
			c.Advance(time.Second)
			if _, err := l.Reserve(ctx, pair); err != nil {
				t.Fatalf("still locked after %s: %v", want, err)
			}
		}
		// Releasing an attempt that was never evaluated gives it back.
		c.Advance(4 * time.Minute)
		r, err := l.Reserve(ctx, pair)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Release(ctx); err != nil {
			t.Fatal(err)
		}
		var le *throttle.LimitedError
		if _, err := l.Reserve(ctx, pair); !errors.As(err, &le) || le.RetryAfter != 4*time.Minute {
			t.Fatalf("after a release the lock is the 8th attempt's (4 min), not the 9th's (8 min): %v", err)
		}
		// A password reset clears the owner's locks.
		if err := l.Clear(ctx, throttle.OwnerKeys("a@example.com", "192.0.2.1")...); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Reserve(ctx, pair); err != nil {
			t.Fatalf("locked after clear: %v", err)
		}
		// The same email in another case is the same account.
		if throttle.LoginRules("a@EXAMPLE.com ", "192.0.2.1", "")[0].Key != pair.Key {
			t.Fatal("login keys are case-sensitive")
		}
	})
}

// TestReserveConcurrent: a burst of concurrent attempts is counted before
// any of them is evaluated, so no more than the free allowance passes.
func TestReserveConcurrent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		l := throttle.NewLimiter(b.Open(t), c.Now)
		rules := throttle.LoginRules("victim@example.com", "192.0.2.9", "")
		var mu sync.Mutex
		admitted, refused := 0, 0
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := l.Reserve(ctx, rules...)
				var le *throttle.LimitedError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					admitted++
				case errors.As(err, &le) && le.RetryAfter > 0:
					refused++
				default:
					t.Errorf("reserve: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if admitted != throttle.LoginPair.Limit || refused != 20-admitted {
			t.Fatalf("%d admitted, %d refused of 20 concurrent attempts; want %d admitted", admitted, refused, throttle.LoginPair.Limit)
		}
	})
}

// TestSucceededSettlement: a success clears the pair's counter and gives
// its attempt back to the account's and the address's.
func TestSucceededSettlement(t *testing.T) {
	ctx := context.Background()
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	db := dbtest.SQLite(t)
	l := throttle.NewLimiter(db, c.Now)
	rules := throttle.LoginRules("o@example.com", "192.0.2.3", "")
	for range 3 {
		if _, err := l.Reserve(ctx, rules...); err != nil {
			t.Fatal(err)
		}
	}
	r, err := l.Reserve(ctx, rules...)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SettleThrottles(ctx, r.Succeeded()); err != nil {
		t.Fatal(err)
	}
	ths, err := db.Throttles(ctx, rules[0].Key, rules[1].Key, rules[2].Key)
	if err != nil {
		t.Fatal(err)
	}
	hits := map[string]int{}
	for _, th := range ths {
		hits[th.Key] = th.Hits
	}
	if _, ok := hits[rules[0].Key]; ok || hits[rules[1].Key] != 3 || hits[rules[2].Key] != 3 {
		t.Fatalf("after 3 failures and a success: %v", hits)
	}
}

func TestCountLimit(t *testing.T) {
	ctx := context.Background()
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := throttle.NewLimiter(dbtest.SQLite(t), c.Now)
	email := throttle.Rule{Key: throttle.EmailKey("reset", "x@example.com"), Policy: throttle.ResetEmail}
	addr := throttle.Rule{Key: throttle.AddressKey("reset", "192.0.2.1"), Policy: throttle.ResetAddress}
	for i := range 3 {
		if err := l.Count(ctx, email, addr); err != nil {
			t.Fatalf("request %d refused: %v", i, err)
		}
		c.Advance(time.Minute)
	}
	var le *throttle.LimitedError
	if err := l.Count(ctx, email, addr); !errors.As(err, &le) || le.RetryAfter != 57*time.Minute {
		t.Fatalf("4th request: %v, want refused until the window ends", err)
	}
	c.Advance(57 * time.Minute)
	if err := l.Count(ctx, email, addr); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// The address limit counts across emails (20 per hour; one is used).
	for i := range 19 {
		r := throttle.Rule{Key: throttle.EmailKey("reset", string(rune('a'+i))+"@example.com"), Policy: throttle.ResetEmail}
		_ = l.Count(ctx, r, addr)
	}
	if err := l.Count(ctx, addr); !errors.As(err, &le) {
		t.Fatal("the address limit did not hold across emails")
	}
}

// TestTrustedSources: a success marks its address and device trusted for
// the account for 30 days; attempts from a trusted source are not counted
// on the account's ceiling nor the address's limit, and a trusted device
// is limited on its own pair instead of the address's.
func TestTrustedSources(t *testing.T) {
	ctx := context.Background()
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	db := dbtest.SQLite(t)
	l := throttle.NewLimiter(db, c.Now)
	counted := func(rules []throttle.Rule) map[string]int {
		t.Helper()
		keys := make([]string, len(rules))
		for i, r := range rules {
			keys[i] = r.Key
		}
		ths, err := db.Throttles(ctx, keys...)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, th := range ths {
			out[th.Key] = th.Hits
		}
		return out
	}
	succeed := func(rules []throttle.Rule) {
		t.Helper()
		r, err := l.Reserve(ctx, rules...)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SettleThrottles(ctx, r.Succeeded()); err != nil {
			t.Fatal(err)
		}
	}
	fail := func(rules []throttle.Rule) {
		t.Helper()
		if _, err := l.Reserve(ctx, rules...); err != nil {
			t.Fatal(err)
		}
	}
	home := throttle.LoginRules("o@example.com", "192.0.2.3", "")
	dev := throttle.LoginRules("o@example.com", "192.0.2.4", "cookie")
	succeed(home)
	succeed(dev)
	fail(home)
	fail(dev)
	h, d := counted(home), counted(dev)
	// home: [pair, acct, addr, trust]; dev: [pair(addr), acct, addr, trust(addr), pair(dev), trust(dev)]
	if h[home[0].Key] != 1 || h[home[1].Key] != 0 || h[home[2].Key] != 0 {
		t.Fatalf("a failure from a trusted address counted %v, want the pair only", h)
	}
	if d[dev[0].Key] != 0 || d[dev[4].Key] != 1 || d[dev[2].Key] != 0 {
		t.Fatalf("a failure from a trusted device counted %v, want its own pair only", d)
	}
	other := throttle.LoginRules("o@example.com", "192.0.2.99", "")
	fail(other)
	if o := counted(other); o[other[0].Key] != 1 || o[other[1].Key] != 1 || o[other[2].Key] != 1 {
		t.Fatalf("a failure from an unknown address counted %v, want every counter", o)
	}
	// Thirty days after the last success the trust has lapsed.
	c.Advance(30*24*time.Hour + time.Second)
	fail(home)
	if h := counted(home); h[home[1].Key] != 1 {
		t.Fatalf("a failure after the trust lapsed counted %v, want the account's ceiling too", h)
	}
}
