package login

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
)

// Step is a second sign-in step: one kind of factor checking what the user
// presents (a TOTP code, a recovery code, a WebAuthn assertion). Each kind
// of factor is one Step in Config.Steps; the login page offers the steps
// the account has (Requirements).
type Step interface {
	// Check checks input for the user and returns the authentication
	// methods it proved (RFC 8176), or ErrWrongFactor.
	Check(ctx context.Context, userID, input string, m audit.Meta) ([]string, error)
}

// Requirements says which second steps an account has (factors.Service).
type Requirements interface {
	// SecondSteps lists the names of the steps (keys of Config.Steps) the
	// user can sign in with after the password, empty when none is needed.
	SecondSteps(ctx context.Context, userID string) ([]string, error)
}

// ErrWrongFactor is a second step that failed: a wrong, used or old code.
var ErrWrongFactor = errors.New("the code is not right")

// ErrPendingUsed is a pending sign-in that completed already (a copy of its
// page, posted again), or one without an id (sealed before ids existed).
var ErrPendingUsed = errors.New("this pending sign-in was completed already")

// ErrNeedsBrowser refuses a password sign-in that cannot carry the second
// step its account requires (the password grant, /auth/login).
var ErrNeedsBrowser = errors.New("this account requires the browser sign-in")

// DescNeedsBrowser is the description API.md gives that refusal.
const DescNeedsBrowser = "this account requires the browser sign-in"

// Pending is a sign-in waiting for its second step: the first step's
// result, carried across the second step's form (sealed, see formseal) or
// taken from a sign-in session being stepped up. It holds nothing secret.
type Pending struct {
	// ID names this pending sign-in (256 bits from crypto/rand): the
	// second step that completes it records it as used (Config.Forms).
	ID                string    `json:"n"`
	UserID            string    `json:"u"`
	Email             string    `json:"m"`
	CredentialVersion int64     `json:"v"`
	AuthTime          time.Time `json:"t"`
	AMR               []string  `json:"a"`
	// Steps are the second steps the account offered when the first step
	// passed.
	Steps []string `json:"s"`
	// SignInID is the sign-in session a step-up raises ("" for a new
	// sign-in).
	SignInID string `json:"i,omitempty"`
}

// PendingTTL is how long a sign-in waits for its second step.
const PendingTTL = 10 * time.Minute

// pendingPurpose is the purpose a completed pending sign-in is recorded
// under (store.FormStore).
const pendingPurpose = "second_step"

// NewPendingID returns a fresh Pending.ID: 256 random bits, as every
// single-use token of tokend (opaque).
func NewPendingID() string { return opaque.Encode(opaque.New()).Reveal() }

// Complete reports whether the proof needs no further step.
func (p *Proof) Complete() bool { return len(p.Steps) == 0 }

// Pending is the proof as a sign-in waiting for its second step.
func (p *Proof) Pending() Pending {
	return Pending{ID: NewPendingID(), UserID: p.User.ID, Email: p.User.Email, CredentialVersion: p.User.CredentialVersion, AuthTime: p.AuthTime,
		AMR: p.AMR, Steps: p.Steps}
}

// secondSteps fills p.Steps from the account's factors.
func (s *Service) secondSteps(ctx context.Context, p *Proof) error {
	if s.cfg.Requirements == nil {
		return nil
	}
	steps, err := s.cfg.Requirements.SecondSteps(ctx, p.User.ID)
	if err != nil {
		return fmt.Errorf("second steps: %w", err)
	}
	p.Steps = steps
	return nil
}

// SecondStep runs the second step named step for the pending sign-in p
// with the user's input, under the brute-force limits of second factors
// (FactorRules). It returns the completed proof: the methods of both steps,
// and "mfa". A pending sign-in completes once: its id is recorded
// (Config.Forms) before the step is checked and kept when the step passes,
// and a copy of it posted again, or at the same time, is ErrPendingUsed on
// every instance, with the code it carries left unspent.
func (s *Service) SecondStep(ctx context.Context, p Pending, step, input string, m audit.Meta) (*Proof, error) {
	st, ok := s.cfg.Steps[step]
	if !ok || !slices.Contains(p.Steps, step) {
		return nil, fmt.Errorf("%w: step %q is not offered", ErrWrongFactor, step)
	}
	res, err := s.cfg.Limiter.Reserve(ctx, throttle.FactorRules(p.UserID, p.Email, m.Address, m.Device)...)
	if err != nil {
		var le *throttle.LimitedError
		if errors.As(err, &le) {
			s.cfg.Metrics.LoginThrottled()
			s.cfg.Log.WarnContext(ctx, "second step throttled", "client_id", m.ClientID, "address", m.Address, "retry_after", le.RetryAfter)
			return nil, &ThrottledError{RetryAfter: le.RetryAfter}
		}
		return nil, err
	}
	// The pending sign-in is taken before its step is checked, so that a
	// copy of it posted again (or the loser of two posts at once) is
	// refused without spending the code or recovery code it carries; a
	// step that fails gives it back.
	if err := s.usePending(ctx, p); err != nil {
		(&Proof{res: res}).Release(ctx, s.cfg.Log) // nothing was checked: not a guess
		if errors.Is(err, ErrPendingUsed) {
			s.cfg.Metrics.LoginFailed("pending_replayed")
			s.cfg.Log.WarnContext(ctx, "a completed pending sign-in was posted again", "user_id", p.UserID,
				"client_id", m.ClientID, "address", m.Address)
		}
		return nil, err
	}
	amr, err := st.Check(ctx, p.UserID, input, m)
	if err != nil {
		s.releasePending(ctx, p)
	}
	if errors.Is(err, ErrWrongFactor) {
		s.cfg.Metrics.LoginFailed("wrong_factor")
		ev := audit.New(audit.FactorFailed, m, p.UserID, s.cfg.Now(), map[string]string{"step": step})
		if err := s.cfg.Audit.AppendAudit(ctx, *ev); err != nil {
			return nil, err
		}
		return nil, err
	}
	if err != nil {
		(&Proof{res: res}).Release(ctx, s.cfg.Log)
		return nil, err
	}
	return &Proof{User: store.User{ID: p.UserID, Email: p.Email, CredentialVersion: p.CredentialVersion},
		AuthTime: s.cfg.Now(), AMR: CombineAMR(p.AMR, amr), res: res}, nil
}

// EndPending records p as used without a step (the user cancelled the
// sign-in): a copy of its page completes nothing afterwards.
func (s *Service) EndPending(ctx context.Context, p Pending) error {
	if err := s.usePending(ctx, p); err != nil && !errors.Is(err, ErrPendingUsed) {
		return err
	}
	return nil
}

// releasePending gives back p's use after its step failed, so that its page
// can be posted again with the right code. A failure only costs the user a
// new sign-in; it is logged.
func (s *Service) releasePending(ctx context.Context, p Pending) {
	if s.cfg.Forms == nil || p.ID == "" {
		return
	}
	if err := s.cfg.Forms.ReleaseForm(context.WithoutCancel(ctx), pendingHash(p.ID)); err != nil {
		s.cfg.Log.WarnContext(ctx, "cannot give back a pending sign-in after a failed step", "user_id", p.UserID, "err", err)
	}
}

// pendingHash is what the store keeps of a Pending.ID.
func pendingHash(id string) string { return opaque.Hash([]byte(id)) }

// usePending records p as completed (ErrPendingUsed when it was before).
func (s *Service) usePending(ctx context.Context, p Pending) error {
	if s.cfg.Forms == nil {
		return nil
	}
	if p.ID == "" {
		return ErrPendingUsed
	}
	err := s.cfg.Forms.UseForm(ctx, pendingHash(p.ID), pendingPurpose, s.cfg.Now().Add(PendingTTL))
	if errors.Is(err, store.ErrAlreadyExists) {
		return ErrPendingUsed
	}
	if err != nil {
		return fmt.Errorf("record the pending sign-in as used: %w", err)
	}
	return nil
}

// CombineAMR is the methods of two steps together, with "mfa" (RFC 8176)
// when they are of two kinds, sorted.
func CombineAMR(first, second []string) []string {
	out := append(slices.Clone(first), second...)
	factorKinds := 0
	for _, group := range [][]string{{oauth.AMRPassword}, {oauth.AMROTP}, {oauth.AMRHardwareKey, oauth.AMRSoftwareKey}} {
		if slices.ContainsFunc(out, func(m string) bool { return slices.Contains(group, m) }) {
			factorKinds++
		}
	}
	if factorKinds >= 2 {
		out = append(out, oauth.AMRMFA)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
