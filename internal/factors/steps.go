package factors

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
)

// Names of the second steps factors provides (login.Config.Steps).
const (
	StepTOTP     = "totp"
	StepRecovery = "recovery"
	StepWebAuthn = "webauthn"
)

// SecondSteps implements login.Requirements: an account with an
// authenticator app signs in with its code or a recovery code; one with a
// passkey, with the passkey (or a recovery code).
func (s *Service) SecondSteps(ctx context.Context, userID string) ([]string, error) {
	sum, err := s.Summary(ctx, userID)
	if err != nil {
		return nil, err
	}
	var steps []string
	if sum.HasWebAuthn() {
		steps = append(steps, StepWebAuthn)
	}
	if sum.HasTOTP() {
		steps = append(steps, StepTOTP)
	}
	if sum.Required() && sum.RecoveryCodes > 0 {
		steps = append(steps, StepRecovery)
	}
	if sum.Required() && len(steps) == 0 {
		// A factor kind this build cannot check: refuse rather than let
		// the password alone through.
		return nil, fmt.Errorf("account %s has factors but none tokend can check", userID)
	}
	return steps, nil
}

// TOTPStep is the second step of an authenticator app's code.
type TOTPStep struct{ Factors *Service }

// Check implements login.Step.
func (t TOTPStep) Check(ctx context.Context, userID, input string, _ audit.Meta) ([]string, error) {
	err := t.Factors.CheckTOTP(ctx, userID, input)
	if errors.Is(err, ErrWrongCode) {
		return nil, login.ErrWrongFactor
	}
	if err != nil {
		return nil, err
	}
	return []string{oauth.AMROTP}, nil
}

// RecoveryStep is the second step of a recovery code: a one-time code (amr
// "otp").
type RecoveryStep struct{ Factors *Service }

// Check implements login.Step.
func (r RecoveryStep) Check(ctx context.Context, userID, input string, m audit.Meta) ([]string, error) {
	err := r.Factors.CheckRecoveryCode(ctx, userID, input, m)
	if errors.Is(err, ErrWrongCode) {
		return nil, login.ErrWrongFactor
	}
	if err != nil {
		return nil, err
	}
	return []string{oauth.AMROTP}, nil
}
