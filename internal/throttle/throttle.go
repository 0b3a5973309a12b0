// Package throttle applies tokend's brute-force and rate-limit policies to
// counters kept in the database (store.ThrottleStore), so that a limit holds
// across every instance behind a load balancer.
//
// Two shapes of rule exist:
//   - a failure counter (login): Check before the work, Fail after a failed
//     attempt; past Limit failures the key is locked, for a time that grows
//     with every further failure (Backoff doubling up to MaxLock), or until
//     the window ends when Backoff is zero;
//   - an event limit (signup, reset mails): Count every attempt; past Limit
//     events in the window the key is refused until the window ends.
package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// Store is the counter storage.
type Store interface {
	Throttles(ctx context.Context, keys ...string) ([]store.Throttle, error)
	HitThrottles(ctx context.Context, now time.Time, window time.Duration, keys ...string) ([]store.Throttle, error)
	ClearThrottle(ctx context.Context, key string) error
}

// Policy is how a counter limits.
type Policy struct {
	Window time.Duration
	Limit  int
	// Backoff, when set, locks for Backoff after the Limit-th failure,
	// doubling with each further failure, up to MaxLock, counted from the
	// last failure.
	Backoff time.Duration
	MaxLock time.Duration
}

// Rule is a policy applied to one key.
type Rule struct {
	Key    string
	Policy Policy
}

// The policies of tokend (documented in the README).
var (
	// LoginAccount: 5 failed logins per account in an hour are free; then
	// the account is locked 30 s, doubling per failure, up to 15 min.
	LoginAccount = Policy{Window: time.Hour, Limit: 5, Backoff: 30 * time.Second, MaxLock: 15 * time.Minute}
	// LoginAddress: 50 failed logins from one address in 15 min lock it for
	// the rest of the window.
	LoginAddress = Policy{Window: 15 * time.Minute, Limit: 50}
	// Signup: 10 signups per address per hour.
	Signup = Policy{Window: time.Hour, Limit: 10}
	// ResetEmail: 3 reset mails per email per hour (counted for unknown
	// emails too, so the limit reveals nothing).
	ResetEmail = Policy{Window: time.Hour, Limit: 3}
	// ResetAddress: 20 reset requests per address per hour.
	ResetAddress = Policy{Window: time.Hour, Limit: 20}
	// ResetUse: 30 attempts to use a reset token per address per hour.
	ResetUse = Policy{Window: time.Hour, Limit: 30}
)

// EmailKey names a counter for an email without storing the email.
func EmailKey(prefix, email string) string {
	sum := sha256.Sum256([]byte(store.NormalizeEmail(email)))
	return prefix + ":email:" + hex.EncodeToString(sum[:16])
}

// AddressKey names a counter for a client address.
func AddressKey(prefix, addr string) string {
	return prefix + ":addr:" + strings.ToLower(addr)
}

// Limiter applies rules.
type Limiter struct {
	store Store
	now   func() time.Time
}

// NewLimiter returns a Limiter on s (now defaults to time.Now).
func NewLimiter(s Store, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{store: s, now: now}
}

// LimitedError is a refusal with the time to wait.
type LimitedError struct {
	Key        string
	RetryAfter time.Duration
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("rate limited; retry after %s", e.RetryAfter.Round(time.Second))
}

// lockedFor is how long th keeps its key locked under p at now.
func (p Policy) lockedFor(th store.Throttle, now time.Time) time.Duration {
	if th.Hits < p.Limit || !now.Before(th.WindowStart.Add(p.Window)) && p.Backoff == 0 {
		return 0
	}
	var until time.Time
	if p.Backoff > 0 {
		lock := p.MaxLock
		if shift := th.Hits - p.Limit; shift < 20 {
			if d := p.Backoff << shift; d < lock {
				lock = d
			}
		}
		until = th.LastHit.Add(lock)
	} else {
		until = th.WindowStart.Add(p.Window)
	}
	return until.Sub(now)
}

// Check refuses with a *LimitedError when a rule's key is locked now.
func (l *Limiter) Check(ctx context.Context, rules ...Rule) error {
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = r.Key
	}
	ths, err := l.store.Throttles(ctx, keys...)
	if err != nil {
		return fmt.Errorf("read throttles: %w", err)
	}
	now := l.now()
	var worst *LimitedError
	for _, th := range ths {
		for _, r := range rules {
			if r.Key != th.Key {
				continue
			}
			if d := r.Policy.lockedFor(th, now); d > 0 && (worst == nil || d > worst.RetryAfter) {
				worst = &LimitedError{Key: th.Key, RetryAfter: d}
			}
		}
	}
	if worst != nil {
		return worst
	}
	return nil
}

// Fail counts one failure on every rule's key.
func (l *Limiter) Fail(ctx context.Context, rules ...Rule) error {
	_, err := l.hit(ctx, rules)
	return err
}

// Count counts one event on every rule's key and refuses with a
// *LimitedError when that takes a key past its limit.
func (l *Limiter) Count(ctx context.Context, rules ...Rule) error {
	ths, err := l.hit(ctx, rules)
	if err != nil {
		return err
	}
	now := l.now()
	var worst *LimitedError
	for i, th := range ths {
		r := rules[i]
		if th.Hits > r.Policy.Limit {
			d := th.WindowStart.Add(r.Policy.Window).Sub(now)
			if d <= 0 {
				d = time.Second
			}
			if worst == nil || d > worst.RetryAfter {
				worst = &LimitedError{Key: th.Key, RetryAfter: d}
			}
		}
	}
	if worst != nil {
		return worst
	}
	return nil
}

// hit counts one event per rule, grouping rules of the same window into one
// transaction. The result is in the order of rules.
func (l *Limiter) hit(ctx context.Context, rules []Rule) ([]store.Throttle, error) {
	now := l.now()
	out := make([]store.Throttle, len(rules))
	done := make([]bool, len(rules))
	for i, r := range rules {
		if done[i] {
			continue
		}
		var keys []string
		for j := i; j < len(rules); j++ {
			if rules[j].Policy.Window == r.Policy.Window {
				keys = append(keys, rules[j].Key)
			}
		}
		ths, err := l.store.HitThrottles(ctx, now, r.Policy.Window, keys...)
		if err != nil {
			return nil, fmt.Errorf("count throttles: %w", err)
		}
		for _, th := range ths {
			for j := i; j < len(rules); j++ {
				if !done[j] && rules[j].Key == th.Key && rules[j].Policy.Window == r.Policy.Window {
					out[j], done[j] = th, true
				}
			}
		}
	}
	return out, nil
}

// Clear resets a key (a successful login clears its account's failures).
func (l *Limiter) Clear(ctx context.Context, key string) error {
	return l.store.ClearThrottle(ctx, key)
}
