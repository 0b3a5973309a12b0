// Package login proves who a user is: each step (a password today; a
// second factor or a passkey later) checks one credential under the
// brute-force limits and returns a Proof of who signed in and how (RFC 8176
// authentication methods, the time). What the proof then opens — a
// refresh-token family for the password grant and /auth/login, a sign-in
// session for the hosted login page — belongs to the sessions package.
package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/users"
)

// ErrFailed is the one answer to every failed sign-in: unknown email, wrong
// password, disabled account.
var ErrFailed = errors.New("invalid email or password")

// ErrPasskeyFailed is the one answer to every failed sign-in with a passkey
// alone: an assertion not accepted, an unknown credential, a disabled
// account.
var ErrPasskeyFailed = errors.New("the passkey was not accepted")

// ThrottledError refuses an attempt while its account or address is locked.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed sign-ins; retry after %s", e.RetryAfter)
}

// Proof is a successful step: the user (with the credential version it
// checked), when and how they authenticated, and the step's counted attempt
// to settle in the transaction that records the success.
type Proof struct {
	User     store.User
	AuthTime time.Time
	AMR      []string
	// Steps are the second steps the account requires before the proof is
	// complete (see Complete); empty when none.
	Steps []string
	res   *throttle.Reservation
}

// Settle is the settlement of the attempt, to apply with what the success
// writes (store.NewSession.Settle, store.NewSignIn.Settle).
func (p *Proof) Settle() store.ThrottleSettlement {
	if p.res == nil {
		return store.ThrottleSettlement{}
	}
	return p.res.Succeeded()
}

// SettleFirstStep settles a password that was right for an account that
// needs a second step: its counters are cleared or given back now, but
// nothing is marked trusted until the second step passes.
func (p *Proof) SettleFirstStep(ctx context.Context, log *slog.Logger) {
	if p.res == nil {
		return
	}
	s := p.res.Succeeded()
	s.Mark = nil
	if err := p.res.Settle(context.WithoutCancel(ctx), s); err != nil && log != nil {
		log.WarnContext(ctx, "settle a sign-in attempt", "err", err)
	}
	p.res = nil
}

// Release gives the attempt back when the success wrote nothing (the
// account changed meanwhile, or the database failed). It never fails the
// caller: a release that does not happen only leaves the attempt counted.
func (p *Proof) Release(ctx context.Context, log *slog.Logger) {
	if p.res == nil {
		return
	}
	if err := p.res.Release(context.WithoutCancel(ctx)); err != nil && log != nil {
		log.WarnContext(ctx, "release a sign-in attempt", "err", err)
	}
}

// Authenticator checks passwords and finds accounts (users.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, email, password string) (store.User, error)
	ByID(ctx context.Context, id string) (store.User, error)
}

// PasskeyVerifier checks a passkey presented alone (passkeys.Service).
type PasskeyVerifier interface {
	// VerifyPasskey checks input (a discoverable credential's assertion
	// with user verification, and the ceremony it answers) and returns the
	// user its credential belongs to and the methods it proved;
	// ErrWrongFactor when it is not accepted.
	VerifyPasskey(ctx context.Context, input string, m audit.Meta) (string, []string, error)
}

// AuditStore records failures.
type AuditStore interface {
	AppendAudit(ctx context.Context, ev store.AuditEvent) error
}

// FormStore remembers the pending sign-ins whose second step passed, so
// that each completes once (store.FormStore).
type FormStore interface {
	UseForm(ctx context.Context, idHash, purpose string, expires time.Time) error
	ReleaseForm(ctx context.Context, idHash string) error
}

// Metrics records sign-ins.
type Metrics interface {
	LoginFailed(reason string)
	LoginThrottled()
}

type noMetrics struct{}

func (noMetrics) LoginFailed(string) {}
func (noMetrics) LoginThrottled()    {}

// Config configures a Service.
type Config struct {
	Users   Authenticator
	Limiter *throttle.Limiter
	// Requirements says which second steps an account requires; Steps
	// are the second steps by name. Without them no account needs one.
	Requirements Requirements
	Steps        map[string]Step
	// Passkeys checks sign-ins with a passkey alone (nil: none).
	Passkeys PasskeyVerifier
	Audit    AuditStore
	// Forms makes every pending sign-in complete once (nil: a pending
	// sign-in can complete again until it expires).
	Forms   FormStore
	Metrics Metrics
	Now     func() time.Time
	Log     *slog.Logger
	// Email is what a proof needs of the account's address (verified.go).
	Email EmailPolicy
}

// Service runs sign-in steps.
type Service struct{ cfg Config }

// New returns a Service.
func New(c Config) *Service {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	return &Service{cfg: c}
}

// Password checks an email and a password. The attempt is counted against
// the brute-force limits before the password is hashed (a *ThrottledError
// when locked); a failure is ErrFailed, after the same work whether the
// email has an account or not, and is audited. The right password of an
// account the EmailPolicy refuses is ErrEmailNotVerified (verified.go).
func (s *Service) Password(ctx context.Context, email string, pw secret.String, m audit.Meta) (*Proof, error) {
	res, err := s.cfg.Limiter.Reserve(ctx, throttle.LoginRules(email, m.Address, m.Device)...)
	if err != nil {
		var le *throttle.LimitedError
		if errors.As(err, &le) {
			s.cfg.Metrics.LoginThrottled()
			s.cfg.Log.WarnContext(ctx, "sign-in throttled", "client_id", m.ClientID, "address", m.Address, "retry_after", le.RetryAfter)
			return nil, &ThrottledError{RetryAfter: le.RetryAfter}
		}
		return nil, err
	}
	u, err := s.cfg.Users.Authenticate(ctx, email, pw.Reveal())
	if err == nil {
		p := &Proof{User: u, AuthTime: s.cfg.Now(), AMR: []string{oauth.AMRPassword}, res: res}
		if err := s.CheckEmail(ctx, p, m); err != nil {
			return nil, err
		}
		if err := s.secondSteps(ctx, p); err != nil {
			p.Release(ctx, s.cfg.Log)
			return nil, err
		}
		return p, nil
	}
	if !errors.Is(err, users.ErrInvalidCredentials) {
		(&Proof{res: res}).Release(ctx, s.cfg.Log)
		return nil, err
	}
	reason := "wrong_password"
	switch {
	case u.ID == "":
		reason = "unknown_email"
	case errors.Is(err, users.ErrDisabled):
		reason = "disabled"
	}
	s.cfg.Metrics.LoginFailed(reason)
	ev := audit.New(audit.LoginFailed, m, u.ID, s.cfg.Now(), map[string]string{"reason": reason})
	if err := s.cfg.Audit.AppendAudit(ctx, *ev); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w (%s)", ErrFailed, reason)
}

// Passkey signs in with a passkey alone: input is what PasskeyVerifier
// checks. The attempt counts against the address's limit of failed passkey
// sign-ins before it is checked (a *ThrottledError when locked). The user
// is the one the passkey's credential and user handle name, refused when
// disabled. A user-verified passkey is two factors by itself (the key, and
// the authenticator's check of the user), so the proof is complete: no
// second step, whatever else the account has. A failure is
// ErrPasskeyFailed, audited.
func (s *Service) Passkey(ctx context.Context, input string, m audit.Meta) (*Proof, error) {
	if s.cfg.Passkeys == nil {
		return nil, fmt.Errorf("%w: passkeys are off", ErrPasskeyFailed)
	}
	res, err := s.cfg.Limiter.Reserve(ctx, throttle.PasskeyRules(m.Address)...)
	if err != nil {
		var le *throttle.LimitedError
		if errors.As(err, &le) {
			s.cfg.Metrics.LoginThrottled()
			s.cfg.Log.WarnContext(ctx, "passkey sign-in throttled", "client_id", m.ClientID, "address", m.Address, "retry_after", le.RetryAfter)
			return nil, &ThrottledError{RetryAfter: le.RetryAfter}
		}
		return nil, err
	}
	fail := func(userID, reason string, cause error) (*Proof, error) {
		s.cfg.Metrics.LoginFailed(reason)
		ev := audit.New(audit.LoginFailed, m, userID, s.cfg.Now(), map[string]string{"reason": reason, "method": "passkey"})
		if err := s.cfg.Audit.AppendAudit(ctx, *ev); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w (%s): %v", ErrPasskeyFailed, reason, cause)
	}
	userID, amr, err := s.cfg.Passkeys.VerifyPasskey(ctx, input, m)
	if errors.Is(err, ErrWrongFactor) {
		return fail("", "passkey_rejected", err)
	}
	if err != nil {
		(&Proof{res: res}).Release(ctx, s.cfg.Log)
		return nil, err
	}
	u, err := s.cfg.Users.ByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return fail("", "unknown_user", err)
	}
	if err != nil {
		(&Proof{res: res}).Release(ctx, s.cfg.Log)
		return nil, err
	}
	if !u.DisabledAt.IsZero() {
		return fail(u.ID, "disabled", errors.New("the account is disabled"))
	}
	p := &Proof{User: u, AuthTime: s.cfg.Now(), AMR: CombineAMR(amr, nil), res: res}
	if err := s.CheckEmail(ctx, p, m); err != nil {
		return nil, err
	}
	return p, nil
}
