// Package verify proves that the owner of an account controls its email
// address: the confirmation mail of a sign-up, sending it again, and the
// change of an account's address, confirmed from the new address. Its links
// are package onetime's single-use tokens (purposes verify_email and
// change_email, 24 hours), opened on the verification page
// ({issuer}/verify#token=…).
//
// Sign-up tells nobody whether an address has an account: every
// well-formed request gets the same answer after the same work (one
// password hash, one lookup, one write), the same minimum time and the same
// limits; for an address that has an account, its owner is mailed instead
// ("someone tried to create an account with your address").
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/onetime"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/users"
)

// ErrInvalidToken: a verification link that is used, expired, voided,
// unknown or not a verification link (or whose new address was taken
// meanwhile). Nothing changed.
var ErrInvalidToken = errors.New("invalid or expired verification link")

// TTL is how long a verification link works.
const TTL = 24 * time.Hour

// Accounts makes the record of a new account (users.Service).
type Accounts interface {
	Account(ctx context.Context, email, pw string) (store.User, error)
}

// Store is what verify reads.
type Store interface {
	UserByEmail(ctx context.Context, email string) (store.User, error)
	UserByID(ctx context.Context, id string) (store.User, error)
	AppendAudit(ctx context.Context, ev store.AuditEvent) error
}

// Limiter counts requests (throttle.Limiter).
type Limiter interface {
	Count(ctx context.Context, rules ...throttle.Rule) error
}

// Config configures a Service.
type Config struct {
	Accounts Accounts
	Store    Store
	Tokens   *onetime.Service
	Limiter  Limiter
	// VerifyURL is the page the links open ({issuer}/verify); the token
	// goes in the fragment. ForgotURL is the forgotten-password page the
	// notices point to.
	VerifyURL, ForgotURL string
	// TTL is the links' lifetime (TTL when zero).
	TTL time.Duration
	Now func() time.Time
	Log *slog.Logger
	// MinDuration is the least time a sign-up, a re-send or a change of
	// address takes, whatever the address.
	MinDuration time.Duration
	// Sleep waits (time.Sleep-like, bounded by ctx); tests may replace it.
	Sleep func(ctx context.Context, d time.Duration)
}

// Service runs email verification.
type Service struct{ cfg Config }

// New returns a Service.
func New(c Config) *Service {
	if c.TTL == 0 {
		c.TTL = TTL
	}
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

// pad makes a request last at least MinDuration from start.
func (s *Service) pad(ctx context.Context, start time.Time) {
	if d := s.cfg.MinDuration - time.Since(start); d > 0 {
		s.cfg.Sleep(ctx, d)
	}
}

// mailRules are the limits of every verification mail: per address mailed
// and per client address, counted whether or not the address has an
// account, so the limits reveal nothing. They are the limits of reset
// mails, on counters of their own.
func mailRules(email, addr string) []throttle.Rule {
	return []throttle.Rule{
		{Key: throttle.EmailKey("verify", email), Policy: throttle.ResetEmail},
		{Key: throttle.AddressKey("verify", addr), Policy: throttle.ResetAddress},
	}
}

func (s *Service) purpose(p store.OneTimePurpose) onetime.Purpose {
	return onetime.Purpose{Name: p, URL: s.cfg.VerifyURL, TTL: s.cfg.TTL}
}

// SignUp creates an account whose address is not verified yet and mails
// the confirmation link; for an address that has an account, it mails its
// owner instead (loginURL, when not empty, is where they sign in). Either
// way it answers the same, after one password hash and at least
// MinDuration. A malformed email or password is a *users.ValidationError
// and counts nothing; every other request counts against the sign-up limit
// of the client address and the mail limit of the address.
func (s *Service) SignUp(ctx context.Context, email, pw string, m audit.Meta, loginURL string) error {
	start := time.Now()
	defer s.pad(ctx, start)
	e, err := users.ValidateEmail(email)
	if err != nil {
		return err
	}
	if err := users.ValidatePassword(pw); err != nil {
		return err
	}
	if err := s.cfg.Limiter.Count(ctx,
		throttle.Rule{Key: throttle.AddressKey("signup", m.Address), Policy: throttle.Signup},
		throttle.Rule{Key: throttle.EmailKey("verify", e), Policy: throttle.ResetEmail}); err != nil {
		return err
	}
	existing, err := s.cfg.Store.UserByEmail(ctx, e)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	found := err == nil
	// The same hash for a taken address as for a new one.
	u, err := s.cfg.Accounts.Account(ctx, e, pw)
	if err != nil {
		return err
	}
	if found {
		return s.taken(ctx, existing, m, loginURL)
	}
	err = s.cfg.Tokens.Issue(ctx, onetime.Issue{Purpose: s.purpose(store.PurposeVerifyEmail), User: u, SignUp: true,
		Audit: audit.New(audit.UserCreated, m, u.ID, u.CreatedAt, nil)})
	if errors.Is(err, store.ErrEmailTaken) {
		// Another sign-up for the address won the race.
		if existing, err = s.cfg.Store.UserByEmail(ctx, e); err != nil {
			return err
		}
		return s.taken(ctx, existing, m, loginURL)
	}
	return err
}

// taken mails the owner of an address someone tried to sign up with.
func (s *Service) taken(ctx context.Context, u store.User, m audit.Meta, loginURL string) error {
	ev := audit.New(audit.SignupAddressTaken, m, u.ID, s.cfg.Now(), nil)
	if u.Disabled() {
		return s.cfg.Store.AppendAudit(ctx, *ev)
	}
	return s.cfg.Tokens.Notify(ctx, onetime.Notice{Kind: mail.KindSignupExisting, UserID: u.ID, To: u.Email,
		Link: s.cfg.ForgotURL, LoginURL: loginURL, TTL: s.cfg.TTL, Audit: ev})
}

// Resend mails a new confirmation link to the account with this address,
// if it has one that is enabled and not verified yet (voiding the older
// link); otherwise it does nothing, after the same time and against the
// same limits.
func (s *Service) Resend(ctx context.Context, email string, m audit.Meta) error {
	start := time.Now()
	defer s.pad(ctx, start)
	e, err := users.ValidateEmail(email)
	if err != nil {
		return err
	}
	if err := s.cfg.Limiter.Count(ctx, mailRules(e, m.Address)...); err != nil {
		return err
	}
	u, err := s.cfg.Store.UserByEmail(ctx, e)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Disabled() || u.EmailVerified())) {
		return nil
	}
	if err != nil {
		return err
	}
	err = s.cfg.Tokens.Issue(ctx, onetime.Issue{Purpose: s.purpose(store.PurposeVerifyEmail), User: u,
		Audit: audit.New(audit.EmailVerificationRequested, m, u.ID, s.cfg.Now(), nil)})
	if errors.Is(err, store.ErrStale) {
		return nil // the account changed meanwhile
	}
	return err
}

// changeData is what a change_email token carries (sealed).
type changeData struct {
	// Email is the new address.
	Email string `json:"email"`
	// Keep is the session that asked for the change: it survives it.
	Keep string `json:"keep,omitempty"`
}

// ChangeEmail starts changing the address of the account userID to
// newEmail: it mails a confirmation link to the new address and a notice to
// the old one. The change happens when the link is used (Verify); the
// session keep (the one that asked) then survives, every other session of
// the account ends. For an address another account has, nothing is mailed,
// after the same time. A request for the account's own address does
// nothing.
func (s *Service) ChangeEmail(ctx context.Context, userID, keep, newEmail string, m audit.Meta) error {
	start := time.Now()
	defer s.pad(ctx, start)
	e, err := users.ValidateEmail(newEmail)
	if err != nil {
		return err
	}
	if err := s.cfg.Limiter.Count(ctx, mailRules(e, m.Address)...); err != nil {
		return err
	}
	u, err := s.cfg.Store.UserByID(ctx, userID)
	if err != nil {
		return fmt.Errorf("look up user: %w", err)
	}
	other, err := s.cfg.Store.UserByEmail(ctx, e)
	switch {
	case err == nil && other.ID != u.ID:
		return s.cfg.Store.AppendAudit(ctx, *audit.New(audit.EmailChangeRequested, m, u.ID, s.cfg.Now(),
			map[string]string{"refused": "the address has another account"}))
	case err == nil && other.Email == e:
		return nil // already the account's address
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	data, err := json.Marshal(changeData{Email: e, Keep: keep})
	if err != nil {
		return err
	}
	err = s.cfg.Tokens.Issue(ctx, onetime.Issue{Purpose: s.purpose(store.PurposeChangeEmail), User: u, To: e, Data: data,
		Notice: &onetime.Notice{Kind: mail.KindEmailChangeNotice, UserID: u.ID, To: u.Email, Link: s.cfg.ForgotURL, TTL: s.cfg.TTL},
		Audit:  audit.New(audit.EmailChangeRequested, m, u.ID, s.cfg.Now(), nil)})
	if errors.Is(err, store.ErrStale) {
		return nil // the account changed meanwhile
	}
	return err
}

// Verify uses a verification link: a sign-up's marks the address verified;
// an email change's replaces the address with the new one (verified), voids
// the account's other links (they went to the old address) and ends every
// session but the one that asked for the change. Anything else is
// ErrInvalidToken, and nothing changes.
func (s *Service) Verify(ctx context.Context, token string, m audit.Meta) error {
	p, ok := onetime.Parse(token)
	if !ok {
		return ErrInvalidToken
	}
	if err := s.cfg.Limiter.Count(ctx, throttle.Rule{Key: throttle.AddressKey("verify-use", m.Address), Policy: throttle.ResetUse}); err != nil {
		return err
	}
	tok, err := s.cfg.Tokens.Lookup(ctx, p)
	if errors.Is(err, onetime.ErrInvalid) {
		return ErrInvalidToken
	}
	if err != nil {
		return err
	}
	var use store.OneTimeUse
	switch tok.Purpose {
	case store.PurposeVerifyEmail:
		use = store.OneTimeUse{Purpose: store.PurposeVerifyEmail, VerifyEmail: true,
			Audit: audit.New(audit.EmailVerified, m, "", s.cfg.Now(), nil)}
	case store.PurposeChangeEmail:
		var d changeData
		if err := json.Unmarshal(tok.Data, &d); err != nil || d.Email == "" {
			return fmt.Errorf("the data of a change_email token: %v", err)
		}
		use = store.OneTimeUse{Purpose: store.PurposeChangeEmail, NewEmail: d.Email, VoidOthers: true,
			RevokeSessions: true, KeepFamily: d.Keep, RevokeReason: "email address changed",
			Audit: audit.New(audit.EmailChanged, m, "", s.cfg.Now(), nil)}
	default:
		return ErrInvalidToken // a reset link is not a verification link
	}
	_, err = s.cfg.Tokens.Use(ctx, p, use)
	switch {
	case errors.Is(err, onetime.ErrInvalid):
		return ErrInvalidToken
	case errors.Is(err, store.ErrEmailTaken):
		s.cfg.Log.InfoContext(ctx, "email change refused: the new address has an account now", "user_id", tok.UserID)
		return ErrInvalidToken
	case err != nil:
		return err
	}
	s.cfg.Log.InfoContext(ctx, "email address verified", "user_id", tok.UserID, "purpose", string(tok.Purpose))
	return nil
}
