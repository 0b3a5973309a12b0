// Package throttle applies tokend's brute-force and rate-limit policies to
// counters kept in the database (store.ThrottleStore), so that a limit holds
// across every instance behind a load balancer.
//
// Two shapes of rule exist:
//   - an attempt limit (login): Reserve counts an attempt on every rule's
//     key atomically before the work (the password hash), and refuses it,
//     counting nothing, when a key is locked. Past Limit attempts the key is
//     locked, for a time that grows with every further attempt (Backoff
//     doubling up to MaxLock), or until the window ends when Backoff is
//     zero. When the outcome is known the reservation is settled: a failure
//     keeps its count, a success clears or gives back its count, and an
//     attempt that was never evaluated gives it back. Because the count is
//     taken before the work, a burst of concurrent attempts cannot all pass
//     the check and evaluate: at most Limit of them do;
//   - an event limit (signup, reset mails): Count every attempt; past Limit
//     events in the window the key is refused until the window ends.
//
// An attempt limit may also carry trust markers (Rule.Marks): a success
// marks its source (the address, the browser's device cookie) as one the
// account signed in from, and while a marker lives some rules change for
// attempts from that source (Rule.Unless, Rule.Only): the limits on the
// account as a whole and on the address as a whole do not apply to them.
// Distributed guessing is slowed by the account's ceiling without locking
// its owner out of the places they sign in from.
package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// Store is the counter storage.
type Store interface {
	Throttles(ctx context.Context, keys ...string) ([]store.Throttle, error)
	HitThrottles(ctx context.Context, now time.Time, window time.Duration, keys ...string) ([]store.Throttle, error)
	UpdateThrottles(ctx context.Context, keys []string, decide func([]store.Throttle) ([]store.Throttle, error)) error
	SettleThrottles(ctx context.Context, s store.ThrottleSettlement) error
}

// Policy is how a counter limits.
type Policy struct {
	Window time.Duration
	Limit  int
	// Backoff, when set, locks for Backoff after the Limit-th attempt,
	// doubling with each further attempt, up to MaxLock, counted from the
	// last attempt. Backoff equal to MaxLock slows to one attempt per
	// Backoff instead of locking.
	Backoff time.Duration
	MaxLock time.Duration
	// ClearOnSuccess: a successful attempt deletes the counter (it proved
	// the owner); otherwise it only gives its own attempt back.
	ClearOnSuccess bool
}

// Rule is a policy applied to one key.
type Rule struct {
	Key    string
	Policy Policy
	// Marks, when set, makes the key a marker of that kind of trust rather
	// than a counter: Reserve only reads it, and a success (re)sets it for
	// Policy.Window.
	Marks Trust
	// Unless: the rule does not apply (it is neither checked nor counted)
	// when a live marker of one of these kinds is among the reservation's.
	Unless Trust
	// Only: the rule applies only when a live marker of one of these kinds
	// is among the reservation's.
	Only Trust
}

// Trust is a set of kinds of trust markers.
type Trust uint8

// Kinds of trust markers.
const (
	// TrustAddress: the account signed in from this address.
	TrustAddress Trust = 1 << iota
	// TrustDevice: the account signed in from this browser (its device
	// cookie).
	TrustDevice
)

// applies reports whether r is a counter that applies when the live
// markers are trusted.
func (r Rule) applies(trusted Trust) bool {
	return r.Marks == 0 && r.Unless&trusted == 0 && (r.Only == 0 || r.Only&trusted != 0)
}

// The policies of tokend (documented in the README's Limits table).
var (
	// LoginPair: failed logins for one account from one address. 5 per hour
	// are free; then that address is locked out of that account for 30 s,
	// doubling per attempt, up to 15 min. The owner's success clears it.
	// Keyed on the pair, so an attacker elsewhere cannot lock the owner out.
	LoginPair = Policy{Window: time.Hour, Limit: 5, Backoff: 30 * time.Second, MaxLock: 15 * time.Minute, ClearOnSuccess: true}
	// LoginAccount: the ceiling for one account across every address. Past
	// 100 attempts in an hour, the account takes one attempt per 30 s from
	// anywhere: distributed guessing slows down, and nobody is locked out.
	LoginAccount = Policy{Window: time.Hour, Limit: 100, Backoff: 30 * time.Second, MaxLock: 30 * time.Second}
	// LoginAddress: 50 failed logins from one address in 15 min, whatever
	// the accounts, lock it for the rest of the window.
	LoginAddress = Policy{Window: 15 * time.Minute, Limit: 50}
	// FactorPair and FactorAccount limit second steps (FactorRules).
	FactorPair    = Policy{Window: time.Hour, Limit: 5, Backoff: 30 * time.Second, MaxLock: time.Hour, ClearOnSuccess: true}
	FactorAccount = Policy{Window: time.Hour, Limit: 10, Backoff: 5 * time.Minute, MaxLock: time.Hour, ClearOnSuccess: true}
	// LoginTrusted: an address or a device from which an account signed in
	// is trusted for it for 30 days after its last success: the account's
	// ceiling and the address's limit do not apply to it.
	LoginTrusted = Policy{Window: 30 * 24 * time.Hour}
	// Signup: 10 signups per address per hour.
	Signup = Policy{Window: time.Hour, Limit: 10}
	// ResetEmail: 3 reset mails per email per hour (counted for unknown
	// emails too, so the limit reveals nothing).
	ResetEmail = Policy{Window: time.Hour, Limit: 3}
	// ResetAddress: 20 reset requests per address per hour.
	ResetAddress = Policy{Window: time.Hour, Limit: 20}
	// ResetUse: 30 attempts to use a reset token per address per hour.
	ResetUse = Policy{Window: time.Hour, Limit: 30}
	// PasskeyAddress: 20 failed sign-ins with a passkey alone from one
	// address in 15 min lock it for the rest of the window. A passkey
	// cannot be guessed; the limit bounds replayed, cloned or forged
	// assertions and the work they cost.
	PasskeyAddress = Policy{Window: 15 * time.Minute, Limit: 20}
)

// PasskeyRules are the rules of one sign-in with a passkey alone from addr.
// Which account it is for is known only once it is checked, so the limit is
// the address's.
func PasskeyRules(addr string) []Rule {
	return []Rule{{Key: AddressKey("passkey", addr), Policy: PasskeyAddress}}
}

// LoginRules are the rules of one password attempt for email from addr;
// device is the id of the browser's device cookie ("" when it sent none).
//
//   - the pair limit on account and address always applies, except to a
//     device the account signed in from, which has its own pair limit
//     instead: a neighbour failing behind the same address does not lock
//     the owner's browser out;
//   - the account's ceiling and the address's limit do not apply to an
//     address or a device the account signed in from in the last 30 days.
func LoginRules(email, addr, device string) []Rule {
	acct := accountID(email)
	addr = strings.ToLower(addr)
	rules := []Rule{
		{Key: "login:pair:" + acct + ":" + addr, Policy: LoginPair, Unless: TrustDevice},
		{Key: "login:acct:" + acct, Policy: LoginAccount, Unless: TrustAddress | TrustDevice},
		{Key: AddressKey("login", addr), Policy: LoginAddress, Unless: TrustAddress | TrustDevice},
		{Key: "login:trust:" + acct + ":" + addr, Policy: LoginTrusted, Marks: TrustAddress},
	}
	if device != "" {
		dev := deviceID(device)
		rules = append(rules,
			Rule{Key: "login:pair:" + acct + ":dev:" + dev, Policy: LoginPair, Only: TrustDevice},
			Rule{Key: "login:trust:" + acct + ":dev:" + dev, Policy: LoginTrusted, Marks: TrustDevice})
	}
	return rules
}

// deviceID names a device cookie in counter keys without storing it.
func deviceID(device string) string {
	sum := sha256.Sum256([]byte("device\x00" + device))
	return hex.EncodeToString(sum[:16])
}

// FactorRules are the rules of one second-step attempt (a TOTP or recovery
// code, a passkey) for the user userID, whose email is email, from addr;
// device as in LoginRules. Whoever tries them knows the password already,
// so they are tighter: 5 failures per hour from one address or browser,
// then a lock growing from 30 s to an hour; 10 per hour for the account from
// anywhere, then a lock growing from 5 min to an hour, except for a browser
// the account signed in from (the owner's), which keeps its own limit. The
// second step's success marks the address and the browser trusted, as a
// password does for an account without a second factor.
func FactorRules(userID, email, addr, device string) []Rule {
	acct := accountID(email)
	user := "user:" + userID
	addr = strings.ToLower(addr)
	rules := []Rule{
		{Key: "factor:pair:" + user + ":" + addr, Policy: FactorPair, Unless: TrustDevice},
		{Key: "factor:acct:" + user, Policy: FactorAccount, Unless: TrustDevice},
		{Key: "login:trust:" + acct + ":" + addr, Policy: LoginTrusted, Marks: TrustAddress},
	}
	if device != "" {
		dev := deviceID(device)
		rules = append(rules,
			Rule{Key: "factor:pair:" + user + ":dev:" + dev, Policy: FactorPair, Only: TrustDevice},
			Rule{Key: "login:trust:" + acct + ":dev:" + dev, Policy: LoginTrusted, Marks: TrustDevice})
	}
	return rules
}

// ClientRules are the rules of one client authentication (a secret or an
// assertion) for client id from addr: the same limits as an account's,
// without trust markers.
func ClientRules(id, addr string) []Rule {
	acct := accountID("client:" + id)
	return []Rule{
		{Key: "login:pair:" + acct + ":" + strings.ToLower(addr), Policy: LoginPair},
		{Key: "login:acct:" + acct, Policy: LoginAccount},
		{Key: AddressKey("login", addr), Policy: LoginAddress},
	}
}

// accountID names an account in counter keys without storing its email.
func accountID(email string) string {
	sum := sha256.Sum256([]byte(store.NormalizeEmail(email)))
	return hex.EncodeToString(sum[:16])
}

// EmailKey names a counter for an email without storing the email.
func EmailKey(prefix, email string) string {
	return prefix + ":email:" + accountID(email)
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

// count returns th with one more event at now under p, starting a new
// window when the current one has ended.
func (p Policy) count(th store.Throttle, now time.Time) store.Throttle {
	if th.Hits <= 0 || !now.Before(th.WindowStart.Add(p.Window)) {
		return store.Throttle{Key: th.Key, Hits: 1, WindowStart: now, LastHit: now}
	}
	th.Hits++
	th.LastHit = now
	return th
}

// worse keeps the longer of two refusals.
func worse(cur *LimitedError, key string, d time.Duration) *LimitedError {
	if cur == nil || d > cur.RetryAfter {
		return &LimitedError{Key: key, RetryAfter: d}
	}
	return cur
}

// Reservation is an attempt counted by Reserve, waiting for its outcome.
type Reservation struct {
	l       *Limiter
	counted []Rule // the rules whose keys the attempt was counted on
	trust   []Rule // markers to set on success
	now     time.Time
}

// live reports whether the marker th is set and has not lapsed.
func live(th store.Throttle, now time.Time) bool {
	return th.Hits > 0 && now.Before(th.LastHit)
}

// Reserve counts one attempt on every rule's key, atomically and before the
// work it guards. If any key is locked it counts nothing and returns a
// *LimitedError with the longest wait. Markers (Rule.Marks) are only read,
// and decide which counters apply (Rule.Unless, Rule.Only).
func (l *Limiter) Reserve(ctx context.Context, rules ...Rule) (*Reservation, error) {
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = r.Key
	}
	var (
		refused *LimitedError
		res     *Reservation
	)
	err := l.store.UpdateThrottles(ctx, keys, func(cur []store.Throttle) ([]store.Throttle, error) {
		now := l.now()
		refused, res = nil, &Reservation{l: l, now: now}
		var trusted Trust
		for i, th := range cur {
			if rules[i].Marks != 0 {
				res.trust = append(res.trust, rules[i])
				if live(th, now) {
					trusted |= rules[i].Marks
				}
			}
		}
		next := make([]store.Throttle, len(cur))
		for i, th := range cur {
			r := rules[i]
			next[i] = th
			if !r.applies(trusted) {
				continue
			}
			if d := r.Policy.lockedFor(th, now); d > 0 {
				refused = worse(refused, th.Key, d)
			}
			next[i] = r.Policy.count(th, now)
			res.counted = append(res.counted, r)
		}
		if refused != nil {
			return nil, refused
		}
		return next, nil
	})
	if refused != nil && errors.Is(err, refused) {
		return nil, refused
	}
	if err != nil {
		return nil, fmt.Errorf("reserve an attempt: %w", err)
	}
	return res, nil
}

// Succeeded is the settlement of a successful attempt, to apply in the same
// transaction as what the success writes: counters are cleared or given
// back, and the attempt's source is marked trusted for the account.
func (r *Reservation) Succeeded() store.ThrottleSettlement {
	var s store.ThrottleSettlement
	for _, rule := range r.counted {
		if rule.Policy.ClearOnSuccess {
			s.Clear = append(s.Clear, rule.Key)
		} else {
			s.Release = append(s.Release, rule.Key)
		}
	}
	for _, rule := range r.trust {
		s.Mark = append(s.Mark, store.Throttle{Key: rule.Key, Hits: 1, WindowStart: r.now, LastHit: r.now.Add(rule.Policy.Window)})
	}
	return s
}

// Settle applies s (part of Succeeded, say) on its own.
func (r *Reservation) Settle(ctx context.Context, s store.ThrottleSettlement) error {
	return r.l.store.SettleThrottles(ctx, s)
}

// Release gives the attempt back on every key it was counted on: it was
// never evaluated (the hasher was saturated, the database failed) or must
// not count.
func (r *Reservation) Release(ctx context.Context) error {
	var s store.ThrottleSettlement
	for _, rule := range r.counted {
		s.Release = append(s.Release, rule.Key)
	}
	return r.l.store.SettleThrottles(ctx, s)
}

// Locked refuses with a *LimitedError when a rule's key is locked now. It
// only reads: for checks whose work is too cheap to need a reservation
// (a client secret's HMAC), with Failed counting what fails.
func (l *Limiter) Locked(ctx context.Context, rules ...Rule) error {
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = r.Key
	}
	ths, err := l.store.Throttles(ctx, keys...)
	if err != nil {
		return fmt.Errorf("read throttles: %w", err)
	}
	now := l.now()
	var refused *LimitedError
	for _, th := range ths {
		for _, r := range rules {
			if r.Key == th.Key && r.Marks == 0 {
				if d := r.Policy.lockedFor(th, now); d > 0 {
					refused = worse(refused, th.Key, d)
				}
			}
		}
	}
	if refused != nil {
		return refused
	}
	return nil
}

// Failed counts one failure on every rule's key (markers are not counted).
func (l *Limiter) Failed(ctx context.Context, rules ...Rule) error {
	counters := make([]Rule, 0, len(rules))
	for _, r := range rules {
		if r.Marks == 0 {
			counters = append(counters, r)
		}
	}
	_, err := l.hit(ctx, counters)
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
	var refused *LimitedError
	for i, th := range ths {
		r := rules[i]
		if th.Hits > r.Policy.Limit {
			d := th.WindowStart.Add(r.Policy.Window).Sub(now)
			if d <= 0 {
				d = time.Second
			}
			refused = worse(refused, th.Key, d)
		}
	}
	if refused != nil {
		return refused
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

// Clear deletes counters (a password reset lifts the owner's locks).
func (l *Limiter) Clear(ctx context.Context, keys ...string) error {
	return l.store.SettleThrottles(ctx, store.ThrottleSettlement{Clear: keys})
}

// OwnerKeys are the counters a password reset from addr clears for email:
// the account's ceiling and the owner's own address's lock on it.
func OwnerKeys(email, addr string) []string {
	r := LoginRules(email, addr, "")
	return []string{r[0].Key, r[1].Key}
}
