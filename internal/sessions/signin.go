package sessions

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
)

// StartSignInRequest starts a sign-in session at tokend for a proven user.
type StartSignInRequest struct {
	User     store.User // with the credential version the sign-in checked
	AuthTime time.Time
	AMR      []string
	Settle   store.ThrottleSettlement
	Meta     audit.Meta
}

// StartSignIn writes a sign-in session (ErrStale when the account changed
// since the sign-in) and returns it and the value of its cookie: its id and
// a 256-bit secret, of which only the SHA-256 is stored.
func (s *Service) StartSignIn(ctx context.Context, r StartSignInRequest) (secret.String, store.SignIn, error) {
	now := s.now()
	raw := opaque.New()
	si := store.SignIn{ID: uuid.NewString(), SecretHash: opaque.Hash(raw), UserID: r.User.ID, AuthTime: r.AuthTime, AMR: r.AMR,
		UserAgent: truncate(r.Meta.UserAgent, 256), Address: r.Meta.Address, CreatedAt: now, LastUsedAt: now,
		ExpiresAt: now.Add(s.cfg.SignInMaxAge)}
	err := s.store.CreateSignIn(ctx, store.NewSignIn{SignIn: si, CredentialVersion: r.User.CredentialVersion, Settle: r.Settle,
		Audit: audit.New(audit.LoginSucceeded, r.Meta, r.User.ID, now, map[string]string{"signin": si.ID})})
	switch {
	case errors.Is(err, store.ErrStale):
		return "", store.SignIn{}, ErrStale
	case err != nil:
		return "", store.SignIn{}, fmt.Errorf("create sign-in session: %w", err)
	}
	return secret.String(si.ID + "." + opaque.Encode(raw).Reveal()), si, nil
}

// StepUpSignIn records a second factor in the sign-in session id (its amr
// and auth_time), settling the step's throttles; ErrStale when the session
// ended meanwhile. It returns the session as it now is.
func (s *Service) StepUpSignIn(ctx context.Context, id string, amr []string, settle store.ThrottleSettlement, m audit.Meta) (store.SignIn, error) {
	now := s.now()
	si, err := s.store.SignIn(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.SignIn{}, ErrStale
	}
	if err != nil {
		return store.SignIn{}, fmt.Errorf("step up sign-in session: %w", err)
	}
	err = s.store.StepUpSignIn(ctx, id, amr, now, settle, audit.New(audit.SignInSteppedUp, m, si.UserID, now,
		map[string]string{"signin": id, "amr": strings.Join(amr, " ")}))
	if errors.Is(err, store.ErrStale) {
		return store.SignIn{}, ErrStale
	}
	if err != nil {
		return store.SignIn{}, fmt.Errorf("step up sign-in session: %w", err)
	}
	si.AMR, si.AuthTime, si.LastUsedAt = amr, now, now
	return si, nil
}

// SignInFromCookie returns the live sign-in session a cookie value names,
// or false: malformed, unknown, ended, expired, or a secret that does not
// match (compared in constant time).
func (s *Service) SignInFromCookie(ctx context.Context, value string) (store.SignIn, bool, error) {
	id, enc, ok := strings.Cut(value, ".")
	if !ok {
		return store.SignIn{}, false, nil
	}
	raw, ok := opaque.Parse(enc)
	if !ok || uuid.Validate(id) != nil {
		return store.SignIn{}, false, nil
	}
	si, err := s.store.SignIn(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.SignIn{}, false, nil
	}
	if err != nil {
		return store.SignIn{}, false, err
	}
	if subtle.ConstantTimeCompare([]byte(opaque.Hash(raw)), []byte(si.SecretHash)) != 1 || si.Revoked() || !s.now().Before(si.ExpiresAt) {
		return store.SignIn{}, false, nil
	}
	return si, true, nil
}

// EndSignIn ends a sign-in session and revokes the families started
// through it (a logout). Ending an ended session changes nothing.
func (s *Service) EndSignIn(ctx context.Context, si store.SignIn, typ string, m audit.Meta) error {
	now := s.now()
	_, err := s.store.RevokeSignIn(ctx, si.ID, "", now, typ, audit.New(typ, m, si.UserID, now, map[string]string{"signin": si.ID}))
	return err
}

// SignIn returns a sign-in session by id, whatever its state.
func (s *Service) SignIn(ctx context.Context, id string) (store.SignIn, error) {
	return s.store.SignIn(ctx, id)
}
