// Package onetime is the one mechanism behind every single-use link tokend
// mails — password reset, the confirmation of a sign-up, the confirmation of
// a new address — and behind the notices it mails without a link of their
// own.
//
// A token is 256 bits from crypto/rand, sent only in the fragment of the
// link (#token=…, which browsers never send to a server) and stored only as
// its SHA-256, with a purpose, an expiry and, when the purpose needs it,
// data sealed under the master key (bound to the token's hash). The token,
// its mail (the link sealed under the master key) and the audit event are
// written in one transaction; a new token voids the user's older ones of the
// same purpose and drops their unsent mails, so at most one per user and
// purpose is usable (a partial unique index holds it under concurrency).
// Using a token is one conditional update that only a live token of the
// right purpose passes, with the purpose's effects on the account in the
// same transaction: exactly one of concurrent uses wins.
package onetime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/store"
)

// ErrInvalid is the one answer to a token that cannot be used: malformed,
// unknown, of another purpose, used, voided, expired, or its account
// disabled.
var ErrInvalid = errors.New("invalid, expired or already used link")

// Store is what onetime needs from storage.
type Store interface {
	IssueOneTime(ctx context.Context, n store.NewOneTime) error
	OneTimeToken(ctx context.Context, hash string) (store.OneTimeToken, error)
	UseOneTime(ctx context.Context, u store.OneTimeUse) (store.OneTimeToken, error)
	QueueMail(ctx context.Context, job store.MailJob, ev *store.AuditEvent) error
}

// Waker is told that a mail was queued (mail.Outbox).
type Waker interface{ Wake() }

// Metrics counts queued mails.
type Metrics interface{ MailQueued() }

// Config configures a Service.
type Config struct {
	Store Store
	// MailSealer seals mail payloads (masterkey.PurposeMail); DataSealer
	// seals the tokens' data (masterkey.PurposeOneTimeData).
	MailSealer *masterkey.Sealer
	DataSealer *masterkey.Sealer
	Outbox     Waker
	Metrics    Metrics
	Now        func() time.Time
}

// Service issues and redeems single-use tokens and queues mail.
type Service struct{ cfg Config }

// New returns a Service.
func New(c Config) *Service {
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Service{cfg: c}
}

// Purpose is a kind of link: what its token is for, the page it opens and
// how long it lives.
type Purpose struct {
	Name store.OneTimePurpose
	// URL is the page the link opens; the token goes in its fragment.
	URL string
	TTL time.Duration
}

// Issue is a token to mail.
type Issue struct {
	Purpose Purpose
	// User is the account the token is for. Its Email is the address the
	// account must still have when the token is written (a change of
	// address in between makes Issue fail with store.ErrStale).
	User store.User
	// SignUp creates User in the same transaction (store.ErrEmailTaken
	// when the address has an account; nothing is written then).
	SignUp bool
	// To is the address mailed (User.Email when empty).
	To string
	// Data is kept with the token, sealed, and given back by Lookup.
	Data []byte
	// Notice, when set, is queued in the same transaction.
	Notice *Notice
	Audit  *store.AuditEvent
}

// Issue writes a new token of in.Purpose for in.User with its mail. It
// returns the store's error as is (store.ErrEmailTaken, store.ErrStale),
// for the caller to answer without telling anything away.
func (s *Service) Issue(ctx context.Context, in Issue) error {
	now := s.cfg.Now()
	raw := opaque.New()
	hash := opaque.Hash(raw)
	to := in.To
	if to == "" {
		to = in.User.Email
	}
	jobID := uuid.NewString()
	expires := now.Add(in.Purpose.TTL)
	kind := string(in.Purpose.Name)
	payload, err := mail.Seal(s.cfg.MailSealer, jobID, mail.Payload{Kind: kind, To: to,
		Link: in.Purpose.URL + "#token=" + string(opaque.Encode(raw)), ExpiresAt: expires})
	if err != nil {
		return err
	}
	var data []byte
	if len(in.Data) > 0 {
		data = s.cfg.DataSealer.Seal(in.Data, dataAD(hash))
	}
	n := store.NewOneTime{
		UserEmail: in.User.Email,
		Token: store.OneTimeToken{Hash: hash, Purpose: in.Purpose.Name, UserID: in.User.ID, Data: data, CreatedAt: now,
			ExpiresAt: expires},
		Mail: store.MailJob{ID: jobID, Kind: kind, UserID: in.User.ID, Payload: payload, CreatedAt: now, NextAttemptAt: now,
			ExpiresAt: expires},
		Audit: in.Audit,
	}
	if in.Notice != nil {
		job, err := s.noticeJob(*in.Notice, now)
		if err != nil {
			return err
		}
		n.Notice = &job
	}
	if in.SignUp {
		u := in.User
		n.CreateUser, n.UserEmail = &u, ""
	}
	if err := s.cfg.Store.IssueOneTime(ctx, n); err != nil {
		return fmt.Errorf("issue %s token: %w", kind, err)
	}
	s.queued()
	return nil
}

// Notice is a mail without a token of its own.
type Notice struct {
	Kind   string // mail.KindSignupExisting, mail.KindEmailChangeNotice
	UserID string
	To     string
	// Link and LoginURL are the pages the notice points to (no secret).
	Link, LoginURL string
	// TTL is how long delivery is tried.
	TTL time.Duration
	// Audit is written with the notice by Notify (Issue writes its own).
	Audit *store.AuditEvent
}

// Notify queues a notice with its audit event.
func (s *Service) Notify(ctx context.Context, n Notice) error {
	job, err := s.noticeJob(n, s.cfg.Now())
	if err != nil {
		return err
	}
	if err := s.cfg.Store.QueueMail(ctx, job, n.Audit); err != nil {
		return fmt.Errorf("queue %s mail: %w", n.Kind, err)
	}
	s.queued()
	return nil
}

func (s *Service) noticeJob(n Notice, now time.Time) (store.MailJob, error) {
	jobID := uuid.NewString()
	expires := now.Add(n.TTL)
	payload, err := mail.Seal(s.cfg.MailSealer, jobID, mail.Payload{Kind: n.Kind, To: n.To, Link: n.Link, LoginURL: n.LoginURL,
		ExpiresAt: expires})
	if err != nil {
		return store.MailJob{}, err
	}
	return store.MailJob{ID: jobID, Kind: n.Kind, UserID: n.UserID, Payload: payload, CreatedAt: now, NextAttemptAt: now,
		ExpiresAt: expires}, nil
}

func (s *Service) queued() {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.MailQueued()
	}
	if s.cfg.Outbox != nil {
		s.cfg.Outbox.Wake()
	}
}

// Presented is a well-formed token as a client presented it.
type Presented struct{ hash string }

// Parse reads a presented token; it refuses anything that is not exactly
// a token (which then never reaches the database).
func Parse(token string) (Presented, bool) {
	raw, ok := opaque.Parse(token)
	if !ok {
		return Presented{}, false
	}
	return Presented{hash: opaque.Hash(raw)}, true
}

// Token is a presented token that was usable when it was looked up.
type Token struct {
	Presented
	Purpose store.OneTimePurpose
	UserID  string
	// Data is the data issued with it, opened.
	Data []byte
}

// Lookup returns the token p if it is usable now (ErrInvalid otherwise),
// with its data. Using it may still fail: a concurrent use may win.
func (s *Service) Lookup(ctx context.Context, p Presented) (Token, error) {
	if p.hash == "" {
		return Token{}, ErrInvalid
	}
	t, err := s.cfg.Store.OneTimeToken(ctx, p.hash)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, ErrInvalid
	}
	if err != nil {
		return Token{}, err
	}
	if !t.UsedAt.IsZero() || !t.VoidedAt.IsZero() || !s.cfg.Now().Before(t.ExpiresAt) {
		return Token{}, ErrInvalid
	}
	var data []byte
	if len(t.Data) > 0 {
		if data, err = s.cfg.DataSealer.Open(t.Data, dataAD(p.hash)); err != nil {
			return Token{}, fmt.Errorf("open the data of a %s token: %w", t.Purpose, err)
		}
	}
	return Token{Presented: p, Purpose: t.Purpose, UserID: t.UserID, Data: data}, nil
}

// Use consumes p for u.Purpose with u's effects (u.Hash and u.At are
// filled in) and returns the token as it was. A token that cannot be used
// is ErrInvalid; other store errors (store.ErrEmailTaken) are returned.
func (s *Service) Use(ctx context.Context, p Presented, u store.OneTimeUse) (store.OneTimeToken, error) {
	if p.hash == "" {
		return store.OneTimeToken{}, ErrInvalid
	}
	u.Hash, u.At = p.hash, s.cfg.Now()
	if u.Audit != nil {
		ev := *u.Audit
		ev.CreatedAt = u.At
		u.Audit = &ev
	}
	t, err := s.cfg.Store.UseOneTime(ctx, u)
	if errors.Is(err, store.ErrNotFound) {
		return store.OneTimeToken{}, ErrInvalid
	}
	if err != nil {
		return store.OneTimeToken{}, fmt.Errorf("use %s token: %w", u.Purpose, err)
	}
	return t, nil
}

// dataAD binds sealed data to its token.
func dataAD(hash string) []byte { return []byte("tokend one-time token " + hash) }
