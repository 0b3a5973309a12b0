package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/users"
)

// Store is what sessions needs from storage.
type Store interface {
	ClientByID(ctx context.Context, id string) (store.Client, error)
	UserByID(ctx context.Context, id string) (store.User, error)
	AppendAudit(ctx context.Context, ev store.AuditEvent) error
	CreateSession(ctx context.Context, s store.NewSession) error
	RotateRefreshToken(ctx context.Context, r store.Rotation) (parent, child store.RefreshToken, err error)
	RefreshToken(ctx context.Context, hash string) (store.RefreshToken, store.RefreshFamily, error)
	RevokeFamily(ctx context.Context, familyID string, at time.Time, reason string, ev *store.AuditEvent) (bool, error)
	RevokeUserFamily(ctx context.Context, userID, familyID string, at time.Time, reason string, ev *store.AuditEvent) error
	RevokeUserFamilies(ctx context.Context, userID, except string, at time.Time, reason string, ev *store.AuditEvent) (int, error)
	Family(ctx context.Context, id string) (store.RefreshFamily, error)
	ListSessions(ctx context.Context, userID string, now time.Time) ([]store.RefreshFamily, error)
	RecentRotations(ctx context.Context, familyID string, since time.Time) (int, error)
	PruneSessions(ctx context.Context, before time.Time) (int, error)
	PruneThrottles(ctx context.Context, before time.Time) (int, error)
}

// Authenticator checks passwords (users.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, email, password string) (store.User, error)
}

// Issuer signs access tokens (tokens.Issuer).
type Issuer interface {
	Issue(g tokens.Grant) (tokens.Token, error)
}

// Metrics records what sessions do. Every method must be safe on a nil
// receiver of the implementation or be given a no-op.
type Metrics interface {
	TokenIssued(grant, alg string)
	RefreshReuse()
	LoginFailed(reason string)
	LoginThrottled()
}

type noMetrics struct{}

func (noMetrics) TokenIssued(string, string) {}
func (noMetrics) RefreshReuse()              {}
func (noMetrics) LoginFailed(string)         {}
func (noMetrics) LoginThrottled()            {}

// Config configures a Service.
type Config struct {
	Store   Store
	Users   Authenticator
	Issuer  Issuer
	Limiter *throttle.Limiter
	// DeriveKey derives a refresh token's child (masterkey.PurposeRefresh).
	DeriveKey     []byte
	Now           func() time.Time
	Log           *slog.Logger
	Metrics       Metrics
	RefreshTTL    time.Duration
	SessionMaxAge time.Duration
	ReuseGrace    time.Duration
	// RefreshRateLimit caps the rotations of one family per minute (0: no
	// cap); past it a refresh gets 429 and its token stays usable.
	RefreshRateLimit int
}

// Service runs logins, refreshes and sessions.
type Service struct {
	cfg     Config
	store   Store
	now     func() time.Time
	log     *slog.Logger
	metrics Metrics
	derive  deriver
	clients *clientCache
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, store: cfg.Store, now: cfg.Now, log: cfg.Log, metrics: cfg.Metrics, derive: deriver{key: cfg.DeriveKey}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	s.clients = &clientCache{store: cfg.Store, ttl: 30 * time.Second, m: map[string]cachedClient{}}
	return s
}

// Result is what a login or refresh returns.
type Result struct {
	Access           tokens.Token
	Refresh          Secret
	RefreshExpiresAt time.Time
	Scope            string
	SessionID        string
}

// LoginRequest is a password login.
type LoginRequest struct {
	Email    string
	Password secret.String
	ClientID string
	Kind     store.ClientKind // the endpoint's client kind
	Scope    string
	Meta     audit.Meta
}

// Client returns a client of the given kind, or ErrInvalidClient.
func (s *Service) Client(ctx context.Context, id string, kind store.ClientKind) (store.Client, error) {
	if id == "" {
		return store.Client{}, ErrInvalidClient
	}
	c, err := s.clients.get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Kind != kind) {
		return store.Client{}, ErrInvalidClient
	}
	return c, err
}

// Login checks the password and opens a session on the client. The attempt
// is counted against the brute-force limits before the password is hashed,
// and the session is written only if the account is still enabled with the
// password that was checked.
func (s *Service) Login(ctx context.Context, r LoginRequest) (*Result, error) {
	client, err := s.Client(ctx, r.ClientID, r.Kind)
	if err != nil {
		return nil, err
	}
	scope, ok := parseScope(r.Scope)
	if !ok {
		return nil, ErrInvalidScope
	}
	res, err := s.cfg.Limiter.Reserve(ctx, throttle.LoginRules(r.Email, r.Meta.Address)...)
	if err != nil {
		var le *throttle.LimitedError
		if errors.As(err, &le) {
			s.metrics.LoginThrottled()
			s.log.WarnContext(ctx, "login throttled", "client_id", r.ClientID, "address", r.Meta.Address, "retry_after", le.RetryAfter)
			return nil, &ThrottledError{RetryAfter: le.RetryAfter}
		}
		return nil, err
	}
	u, err := s.cfg.Users.Authenticate(ctx, r.Email, r.Password.Reveal())
	if err != nil {
		if errors.Is(err, users.ErrInvalidCredentials) {
			return nil, s.loginFailed(ctx, r, u, err)
		}
		s.release(ctx, res)
		return nil, err
	}
	now := s.now()
	fam := store.RefreshFamily{ID: uuid.NewString(), UserID: u.ID, ClientID: client.ID, Scope: scope,
		UserAgent: truncate(r.Meta.UserAgent, 256), Address: r.Meta.Address, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionMaxAge)}
	raw := opaque.New()
	tok := store.RefreshToken{Hash: opaque.Hash(raw), FamilyID: fam.ID, UserID: u.ID, ClientID: client.ID,
		ClientKind: client.Kind, Scope: scope, CreatedAt: now, ExpiresAt: minTime(now.Add(s.cfg.RefreshTTL), fam.ExpiresAt)}
	// Sign before writing: if signing fails no orphan session is left.
	access, err := s.cfg.Issuer.Issue(tokens.Grant{Subject: u.ID, ClientID: client.ID, SessionID: fam.ID, Scope: scope,
		Audience: client.Audience, Alg: client.Alg})
	if err != nil {
		s.release(ctx, res)
		return nil, err
	}
	ev := audit.New(audit.LoginSucceeded, r.Meta, u.ID, now, map[string]string{"session": fam.ID})
	err = s.store.CreateSession(ctx, store.NewSession{Family: fam, Token: tok, Audit: ev,
		CredentialVersion: u.CredentialVersion, Settle: res.Succeeded()})
	if errors.Is(err, store.ErrStale) {
		// The password was reset or the account disabled while this login
		// was being checked: what it checked is no longer the credential.
		s.release(ctx, res)
		return nil, grantErr("the account changed during the login")
	}
	if err != nil {
		s.release(ctx, res)
		return nil, fmt.Errorf("create session: %w", err)
	}
	s.metrics.TokenIssued("password", access.Alg)
	return &Result{Access: access, Refresh: opaque.Encode(raw), RefreshExpiresAt: tok.ExpiresAt, Scope: scope, SessionID: fam.ID}, nil
}

// release gives back an attempt that was not evaluated. A failure only
// leaves the attempt counted, so it is logged, not returned.
func (s *Service) release(ctx context.Context, res *throttle.Reservation) {
	if err := res.Release(context.WithoutCancel(ctx)); err != nil {
		s.log.WarnContext(ctx, "release a login attempt", "err", err)
	}
}

// loginFailed records a failed login (its attempt stays counted) and
// returns the one answer.
func (s *Service) loginFailed(ctx context.Context, r LoginRequest, u store.User, cause error) error {
	reason := "wrong_password"
	switch {
	case u.ID == "":
		reason = "unknown_email"
	case errors.Is(cause, users.ErrDisabled):
		reason = "disabled"
	}
	s.metrics.LoginFailed(reason)
	ev := audit.New(audit.LoginFailed, r.Meta, u.ID, s.now(), map[string]string{"reason": reason})
	if err := s.store.AppendAudit(ctx, *ev); err != nil {
		return err
	}
	return grantErr("login failed (%s)", reason)
}

// RefreshRequest rotates a refresh token.
type RefreshRequest struct {
	Token    string
	Kind     store.ClientKind
	ClientID string // required for native clients; web tokens carry theirs
	Scope    string // optional narrowing (RFC 6749 §6)
	Meta     audit.Meta
}

// checkScope refuses, before anything is written, a scope wider than the
// one the live token at hash was granted: a bad parameter must not cost the
// client its refresh token (rotated, then never handed over, then taken for
// reuse on the next try). Tokens that will not rotate anyway (unknown,
// another client's, used, revoked) take the normal path, so a replay with
// a bogus scope is still detected as reuse.
func (s *Service) checkScope(ctx context.Context, r RefreshRequest, hash string) error {
	tok, fam, err := s.store.RefreshToken(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case !tok.UsedAt.IsZero() || fam.Revoked() || tok.ClientKind != r.Kind || (r.ClientID != "" && tok.ClientID != r.ClientID):
		return nil
	}
	if _, ok := narrow(tok.Scope, r.Scope); !ok {
		return ErrInvalidScope
	}
	return nil
}

// maxWalk bounds how many grace-window rotations a repeat may follow.
const maxWalk = 8

// Refresh rotates r.Token.
func (s *Service) Refresh(ctx context.Context, r RefreshRequest) (*Result, error) {
	raw, ok := opaque.Parse(r.Token)
	if !ok {
		return nil, grantErr("malformed refresh token")
	}
	if r.Kind == store.ClientNative {
		if _, err := s.Client(ctx, r.ClientID, r.Kind); err != nil {
			return nil, err
		}
	}
	now := s.now()
	hash := opaque.Hash(raw)
	if r.Scope != "" {
		if err := s.checkScope(ctx, r, hash); err != nil {
			return nil, err
		}
	}
	childRaw := s.derive.child(raw)
	parent, child, err := s.store.RotateRefreshToken(ctx, store.Rotation{Hash: hash, ClientKind: r.Kind, ClientID: r.ClientID,
		ChildHash: opaque.Hash(childRaw), At: now, ChildExpiresAt: now.Add(s.cfg.RefreshTTL),
		RateLimit: s.cfg.RefreshRateLimit, RateSince: now.Add(-time.Minute)})
	switch {
	case err == nil:
		return s.issue(ctx, parent, child, childRaw, r.Scope)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return s.notRotated(ctx, r, hash, childRaw, now)
}

// notRotated explains why a token did not rotate, and serves a repeat
// inside the grace window.
func (s *Service) notRotated(ctx context.Context, r RefreshRequest, hash string, childRaw []byte, now time.Time) (*Result, error) {
	tok, fam, err := s.store.RefreshToken(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, grantErr("unknown refresh token")
	case err != nil:
		return nil, err
	case tok.ClientKind != r.Kind || (r.ClientID != "" && tok.ClientID != r.ClientID):
		return nil, grantErr("refresh token of another client")
	case fam.Revoked():
		return nil, grantErr("session revoked (%s)", fam.RevokeReason)
	case !now.Before(tok.ExpiresAt):
		return nil, grantErr("refresh token expired")
	case tok.UsedAt.IsZero():
		return s.liveNotRotated(ctx, r, tok, fam, now)
	case now.Sub(tok.UsedAt) <= s.cfg.ReuseGrace:
		return s.repeat(ctx, r, tok, fam, childRaw, now)
	}
	ev := audit.New(audit.RefreshReuseDetected, r.Meta, tok.UserID, now,
		map[string]string{"session": fam.ID, "client": tok.ClientID, "used_at": tok.UsedAt.UTC().Format(time.RFC3339)})
	if _, err := s.store.RevokeFamily(ctx, fam.ID, now, "refresh token reuse", ev); err != nil {
		return nil, fmt.Errorf("revoke session after reuse: %w", err)
	}
	s.metrics.RefreshReuse()
	s.log.WarnContext(ctx, "refresh token reuse detected; session revoked", "session", fam.ID, "user_id", tok.UserID,
		"client_id", tok.ClientID, "address", r.Meta.Address)
	return nil, grantErr("refresh token reuse; session revoked")
}

// liveNotRotated explains an unused, unexpired token of a live family that
// did not rotate: its user is disabled (the family is revoked now), the
// family rotates too often (429, the token stays usable), or a revoke raced
// with the rotation.
func (s *Service) liveNotRotated(ctx context.Context, r RefreshRequest, tok store.RefreshToken, fam store.RefreshFamily, now time.Time) (*Result, error) {
	u, err := s.store.UserByID(ctx, tok.UserID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err != nil || u.Disabled() {
		ev := audit.New(audit.SessionRevoked, r.Meta, tok.UserID, now, map[string]string{"session": fam.ID, "reason": "user disabled"})
		if _, err := s.store.RevokeFamily(ctx, fam.ID, now, "user disabled", ev); err != nil {
			return nil, fmt.Errorf("revoke a disabled user's session: %w", err)
		}
		return nil, grantErr("the account is disabled")
	}
	if limit := s.cfg.RefreshRateLimit; limit > 0 {
		n, err := s.store.RecentRotations(ctx, fam.ID, now.Add(-time.Minute))
		if err != nil {
			return nil, err
		}
		if n >= limit {
			s.log.WarnContext(ctx, "refresh rate limited", "session", fam.ID, "client_id", tok.ClientID, "rotations_last_minute", n)
			return nil, &ThrottledError{RetryAfter: max(time.Second, time.Minute/time.Duration(limit))}
		}
	}
	// A revoke raced with the rotation: treat it as revoked.
	return nil, grantErr("session changed concurrently")
}

// repeat serves a token presented again within the grace window: it walks
// the derived chain to the family's live token and returns it.
func (s *Service) repeat(ctx context.Context, r RefreshRequest, parent store.RefreshToken, fam store.RefreshFamily, childRaw []byte, now time.Time) (*Result, error) {
	for range maxWalk {
		c, cfam, err := s.store.RefreshToken(ctx, opaque.Hash(childRaw))
		switch {
		case errors.Is(err, store.ErrNotFound):
			// The derivation key changed (a new master key) since the
			// rotation: the repeat cannot be served, but it is no attack.
			return nil, grantErr("refresh token already rotated")
		case err != nil:
			return nil, err
		case c.FamilyID != fam.ID || cfam.Revoked():
			return nil, grantErr("session revoked")
		case !now.Before(c.ExpiresAt):
			return nil, grantErr("refresh token expired")
		case c.UsedAt.IsZero():
			return s.issue(ctx, parent, c, childRaw, r.Scope)
		case now.Sub(c.UsedAt) > s.cfg.ReuseGrace:
			return nil, grantErr("refresh token already rotated")
		}
		childRaw = s.derive.child(childRaw)
	}
	return nil, grantErr("refresh token rotated too often")
}

// issue signs an access token for the rotated family and returns the child.
func (s *Service) issue(ctx context.Context, parent, child store.RefreshToken, childRaw []byte, scope string) (*Result, error) {
	granted, ok := narrow(parent.Scope, scope)
	if !ok {
		return nil, ErrInvalidScope
	}
	client, err := s.clients.get(ctx, parent.ClientID)
	if err != nil {
		return nil, fmt.Errorf("client of the session: %w", err)
	}
	access, err := s.cfg.Issuer.Issue(tokens.Grant{Subject: parent.UserID, ClientID: parent.ClientID, SessionID: parent.FamilyID,
		Scope: granted, Audience: client.Audience, Alg: client.Alg})
	if err != nil {
		return nil, err
	}
	s.metrics.TokenIssued("refresh_token", access.Alg)
	return &Result{Access: access, Refresh: opaque.Encode(childRaw), RefreshExpiresAt: child.ExpiresAt, Scope: granted, SessionID: parent.FamilyID}, nil
}

// Revoke revokes the session of a refresh token of the given client (kind,
// and id when set). Unknown, malformed or foreign tokens change nothing and
// are not an error (RFC 7009 §2.2).
func (s *Service) Revoke(ctx context.Context, token string, kind store.ClientKind, clientID string, typ string, m audit.Meta) error {
	raw, ok := opaque.Parse(token)
	if !ok {
		return nil
	}
	tok, fam, err := s.store.RefreshToken(ctx, opaque.Hash(raw))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if tok.ClientKind != kind || (clientID != "" && tok.ClientID != clientID) {
		return nil
	}
	now := s.now()
	_, err = s.store.RevokeFamily(ctx, fam.ID, now, typ, audit.New(typ, m, tok.UserID, now, map[string]string{"session": fam.ID}))
	return err
}

// Session is one of a user's live sessions.
type Session struct {
	ID         string
	ClientID   string
	CreatedAt  time.Time
	LastUsedAt time.Time
	UserAgent  string
	Current    bool
}

// List returns the user's live sessions, newest first; current marks the
// one the caller's access token came from.
func (s *Service) List(ctx context.Context, userID, current string) ([]Session, error) {
	fams, err := s.store.ListSessions(ctx, userID, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]Session, len(fams))
	for i, f := range fams {
		out[i] = Session{ID: f.ID, ClientID: f.ClientID, CreatedAt: f.CreatedAt, LastUsedAt: f.LastUsedAt, UserAgent: f.UserAgent, Current: f.ID == current}
	}
	return out, nil
}

// RevokeSession revokes one of the user's sessions; ErrNotFound when the
// user has no such live session.
func (s *Service) RevokeSession(ctx context.Context, userID, id string, m audit.Meta) error {
	now := s.now()
	err := s.store.RevokeUserFamily(ctx, userID, id, now, "revoked by the user",
		audit.New(audit.SessionRevoked, m, userID, now, map[string]string{"session": id}))
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// RevokeOthers revokes every session of the user but current.
func (s *Service) RevokeOthers(ctx context.Context, userID, current string, m audit.Meta) (int, error) {
	now := s.now()
	return s.store.RevokeUserFamilies(ctx, userID, current, now, "revoked by the user",
		audit.New(audit.SessionRevoked, m, userID, now, map[string]string{"all_but": current}))
}

// Active reports whether a session can still be used: not revoked, not
// past its absolute expiry.
func (s *Service) Active(ctx context.Context, id string) (bool, error) {
	f, err := s.store.Family(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !f.Revoked() && s.now().Before(f.ExpiresAt), nil
}

// Prune deletes expired sessions and counters older than a day.
func (s *Service) Prune(ctx context.Context) error {
	before := s.now().Add(-24 * time.Hour)
	n, err := s.store.PruneSessions(ctx, before)
	if err != nil {
		return err
	}
	m, err := s.store.PruneThrottles(ctx, before)
	if err != nil {
		return err
	}
	if n+m > 0 {
		s.log.InfoContext(ctx, "pruned expired sessions and counters", "rows", n+m)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// truncate cuts s to at most n bytes, never inside a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clientCache keeps clients for a short time: they are read on every login
// and refresh and change only through the CLI (a new client is visible at
// once; the cache only serves clients it has already seen).
type clientCache struct {
	store Store
	ttl   time.Duration
	mu    sync.Mutex
	m     map[string]cachedClient
}

type cachedClient struct {
	c       store.Client
	expires time.Time
}

func (cc *clientCache) get(ctx context.Context, id string) (store.Client, error) {
	now := time.Now() // the cache ages in real time, independent of test clocks
	cc.mu.Lock()
	e, ok := cc.m[id]
	cc.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.c, nil
	}
	c, err := cc.store.ClientByID(ctx, id)
	if err != nil {
		return store.Client{}, err
	}
	cc.mu.Lock()
	if len(cc.m) > 10000 {
		clear(cc.m)
	}
	cc.m[id] = cachedClient{c: c, expires: now.Add(cc.ttl)}
	cc.mu.Unlock()
	return c, nil
}
