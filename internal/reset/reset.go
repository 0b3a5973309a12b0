// Package reset owns password reset by email, on the single-use links of
// package onetime: a token of purpose password_reset, short-lived, voided by
// a newer request, mailed through the outbox; using it sets the password,
// marks the address verified (the link proved it), voids the account's other
// links and ends every session of the account, in one transaction.
//
// A request answers the same for every email, known or not, after the same
// minimum time, and counts against the same limits, so neither the answer,
// its timing nor the limits reveal which emails have accounts.
package reset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/onetime"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/users"
)

// ErrInvalidToken: a used, expired, voided or unknown token (or a disabled
// account). The password is unchanged.
var ErrInvalidToken = errors.New("invalid or expired reset token")

// Store is what reset needs from storage.
type Store interface {
	UserByEmail(ctx context.Context, email string) (store.User, error)
	UserByID(ctx context.Context, id string) (store.User, error)
}

// Hasher hashes new passwords (password.Hasher).
type Hasher interface {
	Hash(ctx context.Context, pw []byte) (string, error)
}

// Limiter counts requests (throttle.Limiter).
type Limiter interface {
	Count(ctx context.Context, rules ...throttle.Rule) error
	Clear(ctx context.Context, keys ...string) error
}

// Config configures a Service.
type Config struct {
	Store   Store
	Hasher  Hasher
	Limiter Limiter
	// Tokens issues and redeems the links and queues their mails.
	Tokens *onetime.Service
	// ResetURL is the page the link opens; the token goes in the fragment.
	ResetURL string
	TTL      time.Duration
	Now      func() time.Time
	Log      *slog.Logger
	// MinDuration is the least time a request takes, known email or not.
	MinDuration time.Duration
	// Sleep waits (time.Sleep-like, bounded by ctx); tests may replace it.
	Sleep func(ctx context.Context, d time.Duration)
}

// Service runs password resets.
type Service struct{ cfg Config }

// DefaultMinDuration hides the extra transaction of a known email.
const DefaultMinDuration = 100 * time.Millisecond

// New returns a Service.
func New(c Config) *Service {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Sleep == nil {
		c.Sleep = func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
	return &Service{cfg: c}
}

// Forgot handles a reset request for email: for an enabled account it
// queues a mail with a link; for any other email it does nothing, after the
// same time.
func (s *Service) Forgot(ctx context.Context, email string, m audit.Meta) error {
	start := time.Now()
	defer func() {
		if d := s.cfg.MinDuration - time.Since(start); d > 0 {
			s.cfg.Sleep(ctx, d)
		}
	}()
	e, err := users.ValidateEmail(email)
	if err != nil {
		return err
	}
	if err := s.cfg.Limiter.Count(ctx,
		throttle.Rule{Key: throttle.EmailKey("reset", e), Policy: throttle.ResetEmail},
		throttle.Rule{Key: throttle.AddressKey("reset", m.Address), Policy: throttle.ResetAddress}); err != nil {
		return err
	}
	u, err := s.cfg.Store.UserByEmail(ctx, e)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled()) {
		return nil
	}
	if err != nil {
		return err
	}
	err = s.cfg.Tokens.Issue(ctx, onetime.Issue{
		Purpose: s.purpose(), User: u,
		Audit: audit.New(audit.PasswordResetRequested, m, u.ID, s.cfg.Now(), nil),
	})
	if errors.Is(err, store.ErrStale) {
		return nil // the account changed its address or was disabled meanwhile
	}
	if err != nil {
		return fmt.Errorf("queue reset mail: %w", err)
	}
	return nil
}

func (s *Service) purpose() onetime.Purpose {
	return onetime.Purpose{Name: store.PurposePasswordReset, URL: s.cfg.ResetURL, TTL: s.cfg.TTL}
}

// Reset sets a new password with a reset token and ends every session of
// the account.
func (s *Service) Reset(ctx context.Context, token, password string, m audit.Meta) error {
	p, ok := onetime.Parse(token)
	if !ok {
		return ErrInvalidToken
	}
	if err := users.ValidatePassword(password); err != nil {
		return err
	}
	if err := s.cfg.Limiter.Count(ctx, throttle.Rule{Key: throttle.AddressKey("reset-use", m.Address), Policy: throttle.ResetUse}); err != nil {
		return err
	}
	hash, err := s.cfg.Hasher.Hash(ctx, []byte(password))
	if err != nil {
		return err
	}
	// The link proved the address, and a new password voids whatever
	// links an intruder may have had mailed (a change of address).
	tok, err := s.cfg.Tokens.Use(ctx, p, store.OneTimeUse{Purpose: store.PurposePasswordReset, PasswordHash: hash,
		VerifyEmail: true, VoidOthers: true, RevokeSessions: true, RevokeReason: "password reset",
		Audit: audit.New(audit.PasswordResetCompleted, m, "", s.cfg.Now(), nil)})
	if errors.Is(err, onetime.ErrInvalid) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("use reset token: %w", err)
	}
	uid := tok.UserID
	// The owner proved control of the mailbox: lift the account's ceiling
	// and the lock of the address the reset came from, so the new password
	// works at once there.
	if u, err := s.cfg.Store.UserByID(ctx, uid); err == nil {
		if err := s.cfg.Limiter.Clear(ctx, throttle.OwnerKeys(u.Email, m.Address)...); err != nil {
			s.cfg.Log.WarnContext(ctx, "clear login throttle after reset", "user_id", uid, "err", err)
		}
	}
	s.cfg.Log.InfoContext(ctx, "password reset; every session of the account revoked", "user_id", uid)
	return nil
}
