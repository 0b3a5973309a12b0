package throttle_test

import (
	"context"
	"errors"
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
		acct := throttle.Rule{Key: throttle.EmailKey("login", "A@example.com"), Policy: throttle.LoginAccount}
		for i := range 5 {
			if err := l.Check(ctx, acct); err != nil {
				t.Fatalf("locked after %d failures: %v", i, err)
			}
			if err := l.Fail(ctx, acct); err != nil {
				t.Fatal(err)
			}
		}
		// The 5th failure locks for 30 s, growing with each further failure.
		for i, want := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute} {
			var le *throttle.LimitedError
			if err := l.Check(ctx, acct); !errors.As(err, &le) || le.RetryAfter != want {
				t.Fatalf("lock %d: %v, want %s", i, err, want)
			}
			c.Advance(want - time.Second)
			if err := l.Check(ctx, acct); err == nil {
				t.Fatal("unlocked before the lock ended")
			}
			c.Advance(time.Second)
			if err := l.Check(ctx, acct); err != nil {
				t.Fatalf("still locked after %s: %v", want, err)
			}
			if err := l.Fail(ctx, acct); err != nil {
				t.Fatal(err)
			}
		}
		// A success clears the account's counter.
		if err := l.Clear(ctx, acct.Key); err != nil {
			t.Fatal(err)
		}
		if err := l.Check(ctx, acct); err != nil {
			t.Fatalf("locked after clear: %v", err)
		}
		// The same email in another case is the same account.
		if throttle.EmailKey("login", "a@EXAMPLE.com ") != acct.Key {
			t.Fatal("email keys are case-sensitive")
		}
	})
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
