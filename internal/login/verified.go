package login

import (
	"context"
	"errors"

	"github.com/tokend/tokend/internal/audit"
)

// ErrEmailNotVerified refuses a sign-in with the right password to an
// account whose address is not verified yet, while the EmailPolicy requires
// one (TOKEND_REQUIRE_VERIFIED_EMAIL). It is told only after the right
// password, never after a wrong one, so it tells nothing to someone who
// does not have the password.
var ErrEmailNotVerified = errors.New("email address not verified")

// EmailPolicy is what a proof needs of the account's address before it
// opens anything. It is applied in one place, Service.Password, which every
// password sign-in goes through (the password grant, /auth/login and the
// login page); a later step (a passkey alone) applies it with CheckEmail.
type EmailPolicy struct {
	// RequireVerified refuses accounts whose address is not verified.
	RequireVerified bool
}

// CheckEmail refuses p with ErrEmailNotVerified when the policy requires a
// verified address and p's user has none. The refused attempt is given
// back to the brute-force limits (the credential was right: it is no
// failure, and marks no trust) and audited as a failed login with the
// reason email_not_verified.
func (s *Service) CheckEmail(ctx context.Context, p *Proof, m audit.Meta) error {
	if !s.cfg.Email.RequireVerified || p.User.EmailVerified() {
		return nil
	}
	p.Release(ctx, s.cfg.Log)
	const reason = "email_not_verified"
	s.cfg.Metrics.LoginFailed(reason)
	ev := audit.New(audit.LoginFailed, m, p.User.ID, s.cfg.Now(), map[string]string{"reason": reason})
	if err := s.cfg.Audit.AppendAudit(ctx, *ev); err != nil {
		return err
	}
	return ErrEmailNotVerified
}
