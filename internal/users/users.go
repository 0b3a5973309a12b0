// Package users owns accounts: validating emails and passwords, hashing
// through the bounded password.Hasher, authenticating (with the same work and
// answer for an unknown email as for a wrong password), upgrading old hashes,
// and disabling accounts.
package users

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/store"
)

// Password length bounds, in bytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
	maxEmailLen    = 254
)

// ErrInvalidCredentials is the one answer to every failed login: unknown
// email, wrong password, disabled account.
var ErrInvalidCredentials = errors.New("invalid email or password")

// ErrDisabled is a failed login of a disabled account. It matches
// ErrInvalidCredentials, so callers answer the same; only the audit log
// tells them apart.
var ErrDisabled = fmt.Errorf("%w: account disabled", ErrInvalidCredentials)

// ValidationError is bad input from the caller.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Store is what users needs from storage.
type Store interface {
	CreateUser(ctx context.Context, u store.User, ev *store.AuditEvent) error
	UserByID(ctx context.Context, id string) (store.User, error)
	UserByEmail(ctx context.Context, email string) (store.User, error)
	ListUsers(ctx context.Context, opts store.ListOptions) ([]store.User, error)
	DisableUser(ctx context.Context, id string, at time.Time, ev *store.AuditEvent) error
	UpdatePasswordHash(ctx context.Context, id, oldHash, newHash string, at time.Time) error
}

// Hasher is the password hasher (password.Hasher).
type Hasher interface {
	Hash(ctx context.Context, pw []byte) (string, error)
	Verify(ctx context.Context, encoded string, pw []byte) (password.Result, error)
}

// Service manages accounts.
type Service struct {
	store  Store
	hasher Hasher
	now    func() time.Time
	log    *slog.Logger
	dummy  string // verified against for unknown emails
}

// New returns a Service. now and log may be nil. It computes one hash up front
// (the dummy that unknown emails are verified against).
func New(ctx context.Context, s Store, h Hasher, now func() time.Time, log *slog.Logger) (*Service, error) {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var pw [32]byte
	_, _ = rand.Read(pw[:])
	dummy, err := h.Hash(ctx, pw[:])
	if err != nil {
		return nil, fmt.Errorf("compute dummy hash: %w", err)
	}
	return &Service{store: s, hasher: h, now: now, log: log, dummy: dummy}, nil
}

// ValidateEmail checks an email address and returns it trimmed and in
// Unicode Normalization Form C (the form it is stored and compared in; see
// store.NormalizeEmail). Control and format characters (categories Cc and
// Cf: zero-width spaces, bidi overrides) are refused: they make two
// addresses that look the same, and they reach mail headers and terminals.
func ValidateEmail(email string) (string, error) {
	e := strings.TrimSpace(email)
	if !utf8.ValidString(e) {
		return "", &ValidationError{"email", "is not valid UTF-8"}
	}
	e = norm.NFC.String(e)
	switch {
	case e == "":
		return "", &ValidationError{"email", "is required"}
	case len(e) > maxEmailLen:
		return "", &ValidationError{"email", fmt.Sprintf("is longer than %d bytes", maxEmailLen)}
	case strings.IndexFunc(e, invisible) >= 0:
		return "", &ValidationError{"email", "contains a control or invisible formatting character"}
	case strings.IndexFunc(e, unicode.IsSpace) >= 0:
		return "", &ValidationError{"email", "is not an email address"}
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return "", &ValidationError{"email", "is not an email address"}
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" || strings.HasPrefix(domain, "[") {
		return "", &ValidationError{"email", "is not an email address"}
	}
	return e, nil
}

// invisible reports a control or format character (Unicode Cc, Cf).
func invisible(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf) }

// ValidatePassword checks a new password's length.
func ValidatePassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return &ValidationError{"password", fmt.Sprintf("must be at least %d bytes", MinPasswordLen)}
	case len(pw) > MaxPasswordLen:
		return &ValidationError{"password", fmt.Sprintf("must be at most %d bytes", MaxPasswordLen)}
	}
	return nil
}

// Account validates an email and a password and hashes the password: the
// record of a new account, with an unverified address, not yet stored.
// Sign-up computes it for every well-formed request, whether or not the
// address has an account, so both cost the same hash.
func (s *Service) Account(ctx context.Context, email, pw string) (store.User, error) {
	e, err := ValidateEmail(email)
	if err != nil {
		return store.User{}, err
	}
	if err := ValidatePassword(pw); err != nil {
		return store.User{}, err
	}
	hash, err := s.hasher.Hash(ctx, []byte(pw))
	if err != nil {
		return store.User{}, fmt.Errorf("hash password: %w", err)
	}
	now := s.now()
	return store.User{ID: uuid.NewString(), Email: e, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}, nil
}

// Create validates, hashes and stores a new user whose address is not
// verified.
func (s *Service) Create(ctx context.Context, email, pw string, m audit.Meta) (store.User, error) {
	return s.create(ctx, email, pw, false, m)
}

// CreateVerified is Create for an address the caller vouches for (an
// operator's `tokend users create --verified`, the dev seed): it is marked
// verified at once.
func (s *Service) CreateVerified(ctx context.Context, email, pw string, m audit.Meta) (store.User, error) {
	return s.create(ctx, email, pw, true, m)
}

func (s *Service) create(ctx context.Context, email, pw string, verified bool, m audit.Meta) (store.User, error) {
	u, err := s.Account(ctx, email, pw)
	if err != nil {
		return store.User{}, err
	}
	var details map[string]string
	if verified {
		u.EmailVerifiedAt = u.CreatedAt
		details = map[string]string{"email_verified": "true"}
	}
	if err := s.store.CreateUser(ctx, u, audit.New(audit.UserCreated, m, u.ID, u.CreatedAt, details)); err != nil {
		return store.User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// Authenticate returns the user whose email and password match. Every
// failure is ErrInvalidCredentials (ErrDisabled for a disabled account) after
// the same amount of hashing work; password.ErrBusy means the hasher is
// saturated. A bcrypt or weaker argon2id hash is replaced on success.
func (s *Service) Authenticate(ctx context.Context, email, pw string) (store.User, error) {
	u, err := s.store.UserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		// Same work as a wrong password, so timing does not reveal
		// which emails have accounts.
		if _, err := s.hasher.Verify(ctx, s.dummy, []byte(pw)); err != nil {
			return store.User{}, err
		}
		return store.User{}, ErrInvalidCredentials
	}
	if err != nil {
		return store.User{}, fmt.Errorf("look up user: %w", err)
	}
	res, err := s.hasher.Verify(ctx, u.PasswordHash, []byte(pw))
	if errors.Is(err, password.ErrMalformedHash) {
		s.log.ErrorContext(ctx, "stored password hash is malformed; the user cannot log in", "user_id", u.ID)
		return store.User{}, ErrInvalidCredentials
	}
	if err != nil {
		return store.User{}, err
	}
	if !res.OK {
		return u, ErrInvalidCredentials
	}
	if u.Disabled() {
		return u, ErrDisabled
	}
	if res.NeedsRehash {
		s.upgrade(ctx, u, pw)
	}
	return u, nil
}

// upgrade replaces u's hash with a fresh argon2id one. Failure only delays
// the upgrade to the next login, so it is logged, not returned.
func (s *Service) upgrade(ctx context.Context, u store.User, pw string) {
	hash, err := s.hasher.Hash(ctx, []byte(pw))
	if err != nil {
		s.log.WarnContext(ctx, "password rehash skipped", "user_id", u.ID, "err", err)
		return
	}
	switch err := s.store.UpdatePasswordHash(ctx, u.ID, u.PasswordHash, hash, s.now()); {
	case err == nil:
		s.log.InfoContext(ctx, "password hash upgraded to argon2id", "user_id", u.ID)
	case errors.Is(err, store.ErrConflict):
		// The password changed meanwhile (a reset); keep the new one.
	default:
		s.log.WarnContext(ctx, "password rehash not stored", "user_id", u.ID, "err", err)
	}
}

// ByID returns a user.
func (s *Service) ByID(ctx context.Context, id string) (store.User, error) {
	return s.store.UserByID(ctx, id)
}

// ByEmail returns a user.
func (s *Service) ByEmail(ctx context.Context, email string) (store.User, error) {
	return s.store.UserByEmail(ctx, email)
}

// List lists users, oldest first.
func (s *Service) List(ctx context.Context, limit int) ([]store.User, error) {
	return s.store.ListUsers(ctx, store.ListOptions{Limit: limit})
}

// Disable disables the user with this email and ends their sessions.
func (s *Service) Disable(ctx context.Context, email string, m audit.Meta) (store.User, error) {
	u, err := s.store.UserByEmail(ctx, email)
	if err != nil {
		return store.User{}, fmt.Errorf("look up user: %w", err)
	}
	now := s.now()
	if err := s.store.DisableUser(ctx, u.ID, now, audit.New(audit.UserDisabled, m, u.ID, now, nil)); err != nil {
		return store.User{}, fmt.Errorf("disable user: %w", err)
	}
	u.DisabledAt = now
	return u, nil
}
