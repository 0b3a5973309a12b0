// Package factors manages an account's second factors: a TOTP authenticator
// (RFC 6238) with its recovery codes, and WebAuthn credentials (passkeys).
// It enrols them, lists and removes them, and checks a presented code; the
// login package asks it whether an account needs a second step and runs the
// step.
package factors

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/totp"
)

// Store is the factor storage (store.FactorStore).
type Store interface {
	Factors(ctx context.Context, userID string) ([]store.Factor, error)
	AddFactor(ctx context.Context, f store.Factor, recoveryHashes []string, ev *store.AuditEvent) error
	UseTOTPStep(ctx context.Context, id string, step int64, at time.Time) (bool, error)
	UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time, ev *store.AuditEvent) (bool, error)
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, at time.Time, ev *store.AuditEvent) error
	RemoveFactor(ctx context.Context, userID, id string, ev *store.AuditEvent) error
	RemoveFactors(ctx context.Context, userID string, ev *store.AuditEvent) (int, error)
}

// AEAD seals TOTP secrets (masterkey.Sealer for masterkey.PurposeTOTP).
type AEAD interface {
	Seal(plaintext, ad []byte) []byte
	Open(ciphertext, ad []byte) ([]byte, error)
}

// Config configures a Service.
type Config struct {
	Store Store
	// Secrets seals TOTP secrets; RecoveryKey keys the recovery codes'
	// hashes (masterkey.PurposeRecoveryCodes).
	Secrets     AEAD
	RecoveryKey []byte
	// Issuer names tokend in authenticator apps (the brand's name).
	Issuer string
	Now    func() time.Time
}

// Service manages factors.
type Service struct{ cfg Config }

// New returns a Service.
func New(c Config) *Service {
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Service{cfg: c}
}

// Errors of the factor operations.
var (
	// ErrWrongCode is a code that is not the factor's now (wrong, too old,
	// or used already), or a recovery code the account does not have.
	ErrWrongCode = errors.New("the code is not right")
	// ErrHasTOTP: an account has one authenticator app at most.
	ErrHasTOTP = errors.New("an authenticator app is set up already")
	// ErrNotFound: the account has no such factor.
	ErrNotFound = errors.New("no such factor")
)

// RecoveryCodeCount is how many recovery codes an account gets.
const RecoveryCodeCount = 10

// Summary is what an account has.
type Summary struct {
	Factors       []store.Factor
	RecoveryCodes int // unused
}

// HasTOTP reports whether the account has an authenticator app.
func (s Summary) HasTOTP() bool { return s.kind(store.FactorTOTP) }

// HasWebAuthn reports whether the account has a passkey.
func (s Summary) HasWebAuthn() bool { return s.kind(store.FactorWebAuthn) }

// Required reports whether signing in to the account needs a second
// factor.
func (s Summary) Required() bool { return len(s.Factors) > 0 }

func (s Summary) kind(k string) bool {
	for _, f := range s.Factors {
		if f.Kind == k {
			return true
		}
	}
	return false
}

// Summary returns the account's factors and how many recovery codes it has
// left.
func (s *Service) Summary(ctx context.Context, userID string) (Summary, error) {
	fs, err := s.cfg.Store.Factors(ctx, userID)
	if err != nil {
		return Summary{}, fmt.Errorf("list factors: %w", err)
	}
	sum := Summary{Factors: fs}
	if len(fs) > 0 {
		if sum.RecoveryCodes, err = s.cfg.Store.RecoveryCodesLeft(ctx, userID); err != nil {
			return Summary{}, fmt.Errorf("count recovery codes: %w", err)
		}
	}
	return sum, nil
}

// Enrolment is a TOTP secret waiting for its first code.
type Enrolment struct {
	Secret  []byte
	URI     string // otpauth://, for the QR code
	Encoded string // base32, for typing in
}

// NewTOTP returns a fresh secret for account (its email, as authenticator
// apps label it).
func (s *Service) NewTOTP(account string) Enrolment { return s.Enrolment(account, totp.NewSecret()) }

// Enrolment is the enrolment of secret for account.
func (s *Service) Enrolment(account string, sec []byte) Enrolment {
	return Enrolment{Secret: sec, URI: totp.URI(s.cfg.Issuer, account, sec), Encoded: totp.Encode(sec)}
}

// ConfirmTOTP adds the authenticator whose secret is sec once code proves
// the user has it, and returns the recovery codes to show (once) when the
// account had none.
func (s *Service) ConfirmTOTP(ctx context.Context, userID string, sec []byte, code string, m audit.Meta) ([]secret.String, error) {
	now := s.cfg.Now()
	step, ok := totp.Match(sec, code, now)
	if !ok {
		return nil, ErrWrongCode
	}
	sum, err := s.Summary(ctx, userID)
	if err != nil {
		return nil, err
	}
	if sum.HasTOTP() {
		return nil, ErrHasTOTP
	}
	id := uuid.NewString()
	f := store.Factor{ID: id, UserID: userID, Kind: store.FactorTOTP, Name: "Authenticator app",
		SecretSealed: base64.RawURLEncoding.EncodeToString(s.cfg.Secrets.Seal(sec, []byte(id))), LastStep: step, CreatedAt: now}
	var codes []secret.String
	var hashes []string
	if sum.RecoveryCodes == 0 {
		codes, hashes = s.newRecoveryCodes(userID)
	}
	err = s.cfg.Store.AddFactor(ctx, f, hashes, audit.New(audit.FactorAdded, m, userID, now, map[string]string{"kind": f.Kind, "factor": id}))
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, ErrHasTOTP
	}
	if err != nil {
		return nil, fmt.Errorf("add factor: %w", err)
	}
	return codes, nil
}

// AddPasskey adds the WebAuthn factor f (a passkey registered by the
// passkeys package) and returns the recovery codes to show (once) when the
// account had none. A credential id registered already is
// store.ErrAlreadyExists.
func (s *Service) AddPasskey(ctx context.Context, f store.Factor, m audit.Meta) ([]secret.String, error) {
	if f.Kind != store.FactorWebAuthn {
		return nil, fmt.Errorf("add passkey: a factor of kind %q", f.Kind)
	}
	left, err := s.cfg.Store.RecoveryCodesLeft(ctx, f.UserID)
	if err != nil {
		return nil, fmt.Errorf("count recovery codes: %w", err)
	}
	var codes []secret.String
	var hashes []string
	if left == 0 {
		codes, hashes = s.newRecoveryCodes(f.UserID)
	}
	ev := audit.New(audit.FactorAdded, m, f.UserID, f.CreatedAt, map[string]string{"kind": f.Kind, "factor": f.ID})
	if err := s.cfg.Store.AddFactor(ctx, f, hashes, ev); err != nil {
		return nil, err
	}
	return codes, nil
}

// CheckTOTP checks code against the account's authenticator; each code is
// accepted once, across every instance.
func (s *Service) CheckTOTP(ctx context.Context, userID, code string) error {
	fs, err := s.cfg.Store.Factors(ctx, userID)
	if err != nil {
		return fmt.Errorf("list factors: %w", err)
	}
	for _, f := range fs {
		if f.Kind != store.FactorTOTP {
			continue
		}
		sec, err := s.open(f)
		if err != nil {
			return err
		}
		step, ok := totp.Match(sec, code, s.cfg.Now())
		if !ok || step <= f.LastStep {
			return ErrWrongCode
		}
		used, err := s.cfg.Store.UseTOTPStep(ctx, f.ID, step, s.cfg.Now())
		if err != nil {
			return fmt.Errorf("use totp step: %w", err)
		}
		if !used {
			return ErrWrongCode // another request used it first
		}
		return nil
	}
	return ErrWrongCode
}

func (s *Service) open(f store.Factor) ([]byte, error) {
	ct, err := base64.RawURLEncoding.DecodeString(f.SecretSealed)
	if err != nil {
		return nil, fmt.Errorf("totp factor %s: malformed sealed secret", f.ID)
	}
	sec, err := s.cfg.Secrets.Open(ct, []byte(f.ID))
	if err != nil {
		return nil, fmt.Errorf("totp factor %s: %w", f.ID, err)
	}
	return sec, nil
}

// CheckRecoveryCode uses one of the account's recovery codes.
func (s *Service) CheckRecoveryCode(ctx context.Context, userID, code string, m audit.Meta) error {
	now := s.cfg.Now()
	ok, err := s.cfg.Store.UseRecoveryCode(ctx, userID, s.hashRecovery(userID, code), now,
		audit.New(audit.RecoveryCodeUsed, m, userID, now, nil))
	if err != nil {
		return fmt.Errorf("use recovery code: %w", err)
	}
	if !ok {
		return ErrWrongCode
	}
	return nil
}

// RenewRecoveryCodes replaces the account's recovery codes and returns the
// new ones (to show once).
func (s *Service) RenewRecoveryCodes(ctx context.Context, userID string, m audit.Meta) ([]secret.String, error) {
	now := s.cfg.Now()
	codes, hashes := s.newRecoveryCodes(userID)
	if err := s.cfg.Store.ReplaceRecoveryCodes(ctx, userID, hashes, now, audit.New(audit.RecoveryCodesRenewed, m, userID, now, nil)); err != nil {
		return nil, fmt.Errorf("renew recovery codes: %w", err)
	}
	return codes, nil
}

// Remove removes one of the account's factors (the recovery codes go with
// the last one).
func (s *Service) Remove(ctx context.Context, userID, id string, m audit.Meta) error {
	now := s.cfg.Now()
	err := s.cfg.Store.RemoveFactor(ctx, userID, id, audit.New(audit.FactorRemoved, m, userID, now, map[string]string{"factor": id}))
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("remove factor: %w", err)
	}
	return nil
}

// Reset removes every factor and recovery code of the account (an
// operator's `tokend users reset-factors`), and returns how many factors
// there were.
func (s *Service) Reset(ctx context.Context, userID string, m audit.Meta) (int, error) {
	now := s.cfg.Now()
	n, err := s.cfg.Store.RemoveFactors(ctx, userID, audit.New(audit.FactorsReset, m, userID, now, nil))
	if err != nil {
		return 0, fmt.Errorf("reset factors: %w", err)
	}
	return n, nil
}

// recoveryAlphabet has no letters that read as digits or as each other.
const recoveryAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

// newRecoveryCodes returns fresh codes (xxxxx-xxxxx, about 49 bits each)
// and their hashes.
func (s *Service) newRecoveryCodes(userID string) ([]secret.String, []string) {
	codes := make([]secret.String, RecoveryCodeCount)
	hashes := make([]string, RecoveryCodeCount)
	for i := range codes {
		c := make([]byte, 0, 11)
		for len(c) < 11 {
			if len(c) == 5 {
				c = append(c, '-')
				continue
			}
			c = append(c, recoveryAlphabet[uniform(len(recoveryAlphabet))])
		}
		codes[i] = secret.String(c)
		hashes[i] = s.hashRecovery(userID, string(c))
	}
	return codes, hashes
}

// uniform returns a uniformly random int in [0, n), n ≤ 256 (rejection
// sampling: no modulo bias).
func uniform(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("factors: crypto/rand failed: " + err.Error())
		}
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// hashRecovery is the stored form of a recovery code of userID: HMAC-SHA256
// under a key derived from the master key, of the code as typed less
// spaces, dashes and case.
func (s *Service) hashRecovery(userID, code string) string {
	code = strings.ToLower(strings.NewReplacer("-", "", " ", "", "\t", "").Replace(strings.TrimSpace(code)))
	m := hmac.New(sha256.New, s.cfg.RecoveryKey)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return "v1:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
