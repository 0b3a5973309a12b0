package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokens"
)

// Store is what sessions needs from storage.
type Store interface {
	UserByID(ctx context.Context, id string) (store.User, error)
	CreateSession(ctx context.Context, s store.NewSession) error
	ExchangeCode(ctx context.Context, x store.CodeExchange) (store.AuthCode, store.User, error)
	RotateFamily(ctx context.Context, r store.FamilyRotation) (store.RefreshFamily, error)
	RotateRefreshToken(ctx context.Context, r store.Rotation) (store.RefreshToken, store.RefreshFamily, error)
	RefreshToken(ctx context.Context, hash string) (store.RefreshToken, store.RefreshFamily, error)
	RevokeFamily(ctx context.Context, familyID string, at time.Time, reason string, ev *store.AuditEvent) (bool, error)
	RevokeUserFamily(ctx context.Context, userID, familyID string, at time.Time, reason string, ev *store.AuditEvent) error
	RevokeUserFamilies(ctx context.Context, userID, except string, at time.Time, reason string, ev *store.AuditEvent) (int, error)
	RecentRotations(ctx context.Context, familyID string, since time.Time) (int, error)
	Family(ctx context.Context, id string) (store.RefreshFamily, error)
	ListSessions(ctx context.Context, userID string, now time.Time) ([]store.RefreshFamily, error)
	CreateSignIn(ctx context.Context, s store.NewSignIn) error
	StepUpSignIn(ctx context.Context, id string, amr []string, at time.Time, settle store.ThrottleSettlement, ev *store.AuditEvent) error
	SignIn(ctx context.Context, id string) (store.SignIn, error)
	ListSignIns(ctx context.Context, userID string, now time.Time) ([]store.SignIn, error)
	RevokeSignIn(ctx context.Context, id, userID string, at time.Time, reason string, ev *store.AuditEvent) (bool, error)
	RevokeUserSignIns(ctx context.Context, userID, except string, at time.Time, reason string) (int, error)
}

// Clients reads clients (clients.Service).
type Clients interface {
	Get(ctx context.Context, id string) (store.Client, error)
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
}

type noMetrics struct{}

func (noMetrics) TokenIssued(string, string) {}
func (noMetrics) RefreshReuse()              {}

// Config configures a Service.
type Config struct {
	Store   Store
	Clients Clients
	Issuer  Issuer
	// MACKeys MAC refresh tokens (masterkey.PurposeRefreshMAC).
	MACKeys MACKeys
	// DeriveKey derives the child of a token of the old format
	// (masterkey.PurposeRefresh), to serve repeats of tokens rotated
	// before one row per session.
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
	// SignInMaxAge is the lifetime of a sign-in session
	// (TOKEND_LOGIN_SESSION_MAX_AGE).
	SignInMaxAge time.Duration
}

// Service runs refresh-token families and sign-in sessions.
type Service struct {
	cfg     Config
	store   Store
	now     func() time.Time
	log     *slog.Logger
	metrics Metrics
	keys    MACKeys
	derive  deriver
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, store: cfg.Store, now: cfg.Now, log: cfg.Log, metrics: cfg.Metrics, keys: cfg.MACKeys,
		derive: deriver{key: cfg.DeriveKey}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	return s
}

// Result is what opening or refreshing a session returns.
type Result struct {
	Access           tokens.Token
	Refresh          Secret
	RefreshExpiresAt time.Time
	Scope            string
	SessionID        string
	// UserID, SignInID, AuthTime and AMR describe the authentication the
	// session came from (for ID tokens).
	UserID   string
	SignInID string
	AuthTime time.Time
	AMR      []string
}

// OpenRequest opens a refresh-token family for a proven user.
type OpenRequest struct {
	// User is who signed in, with the credential version the sign-in
	// checked; AuthTime and AMR say when and how.
	User     store.User
	AuthTime time.Time
	AMR      []string
	// Settle settles the sign-in's throttles in the session's transaction.
	Settle store.ThrottleSettlement
	Client store.Client
	Scope  string // already validated for the client
	Grant  string // for metrics
	Meta   audit.Meta
}

// pending is a session ready to be written, and what it returns once it is.
type pending struct {
	session store.NewSession
	result  *Result
}

// prepare builds a family at generation 1 and its access token. Signing
// comes before writing, so a signing failure leaves no orphan row.
func (s *Service) prepare(u string, client store.Client, scope, signInID string, authTime time.Time, amr []string, m audit.Meta) (*pending, error) {
	now := s.now()
	fam := store.RefreshFamily{ID: uuid.NewString(), UserID: u, ClientID: client.ID, Scope: scope,
		UserAgent: truncate(m.UserAgent, 256), Address: m.Address, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionMaxAge),
		SignInID: signInID, AuthTime: authTime, AMR: amr, ClientKind: client.Kind, Generation: 1, RotatedAt: now}
	fam.IdleExpiresAt = minTime(now.Add(s.cfg.RefreshTTL), fam.ExpiresAt)
	refresh, err := mint(s.keys, fam.ID, 1)
	if err != nil {
		return nil, err
	}
	access, err := s.cfg.Issuer.Issue(tokens.Grant{Subject: u, ClientID: client.ID, SessionID: fam.ID, Scope: scope,
		Audience: client.Audience, Alg: client.Alg})
	if err != nil {
		return nil, err
	}
	ev := audit.New(audit.LoginSucceeded, m, u, now, map[string]string{"session": fam.ID})
	return &pending{
		session: store.NewSession{Family: fam, Audit: ev},
		result: &Result{Access: access, Refresh: refresh, RefreshExpiresAt: fam.IdleExpiresAt, Scope: scope,
			SessionID: fam.ID, UserID: u, SignInID: signInID, AuthTime: authTime, AMR: amr},
	}, nil
}

// ErrStale: the account changed (a reset, a disable, a logout) between the
// sign-in and the session's write; nothing was written.
var ErrStale = errors.New("the account or its sign-in session changed")

// Open writes a new family for r's user, in the same transaction as the
// settlement of the sign-in's throttles, if the user is still enabled with
// the credential the sign-in checked (ErrStale otherwise).
func (s *Service) Open(ctx context.Context, r OpenRequest) (*Result, error) {
	p, err := s.prepare(r.User.ID, r.Client, r.Scope, "", r.AuthTime, r.AMR, r.Meta)
	if err != nil {
		return nil, err
	}
	p.session.CredentialVersion = r.User.CredentialVersion
	p.session.Settle = r.Settle
	switch err := s.store.CreateSession(ctx, p.session); {
	case errors.Is(err, store.ErrStale):
		return nil, ErrStale
	case err != nil:
		return nil, fmt.Errorf("create session: %w", err)
	}
	s.metrics.TokenIssued(r.Grant, p.result.Access.Alg)
	return p.result, nil
}

// ErrCodeUnusable: the code could not be exchanged (see
// store.ExchangeCode); nothing was written.
var ErrCodeUnusable = errors.New("authorization code not usable")

// CodeRequest is a code presented at the token endpoint, with what it must
// be bound to.
type CodeRequest struct {
	Hash        string
	Client      store.Client
	RedirectURI string
	// Challenge is the S256 of the presented code_verifier ("" when none).
	Challenge string
	Meta      audit.Meta
}

// OpenFromCode consumes an authorization code and writes the family it
// starts, in one transaction (one statement on Postgres), then signs the
// access token of the session. It returns the result, the code and its
// user; ErrCodeUnusable when the code cannot be exchanged.
func (s *Service) OpenFromCode(ctx context.Context, r CodeRequest) (*Result, store.AuthCode, store.User, error) {
	now := s.now()
	famID := uuid.NewString()
	refresh, err := mint(s.keys, famID, 1)
	if err != nil {
		return nil, store.AuthCode{}, store.User{}, err
	}
	famExpires := now.Add(s.cfg.SessionMaxAge)
	tokExpires := minTime(now.Add(s.cfg.RefreshTTL), famExpires)
	code, u, err := s.store.ExchangeCode(ctx, store.CodeExchange{Hash: r.Hash, ClientID: r.Client.ID, RedirectURI: r.RedirectURI,
		Challenge: r.Challenge, At: now, FamilyID: famID, FamilyExpiresAt: famExpires,
		TokenExpiresAt: tokExpires, ClientKind: r.Client.Kind, UserAgent: truncate(r.Meta.UserAgent, 256), Address: r.Meta.Address,
		Audit: audit.New(audit.LoginSucceeded, r.Meta, "", now, map[string]string{"session": famID})})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, store.AuthCode{}, store.User{}, ErrCodeUnusable
	case err != nil:
		return nil, store.AuthCode{}, store.User{}, fmt.Errorf("exchange code: %w", err)
	}
	// Signed after the write: the code says whose session it is. Signing
	// fails only while no key is loaded (the server is not ready); the
	// client's retry is then a replay, which revokes the session.
	access, err := s.cfg.Issuer.Issue(tokens.Grant{Subject: code.UserID, ClientID: r.Client.ID, SessionID: famID, Scope: code.Scope,
		Audience: r.Client.Audience, Alg: r.Client.Alg})
	if err != nil {
		return nil, store.AuthCode{}, store.User{}, err
	}
	s.metrics.TokenIssued(oauth.GrantAuthorizationCode, access.Alg)
	return &Result{Access: access, Refresh: refresh, RefreshExpiresAt: tokExpires, Scope: code.Scope, SessionID: famID,
		UserID: code.UserID, SignInID: code.SignInID, AuthTime: code.AuthTime, AMR: code.AMR}, code, u, nil
}

// RefreshRequest rotates a refresh token.
type RefreshRequest struct {
	Token    string
	Kind     store.ClientKind
	ClientID string // required for native clients; web tokens carry theirs
	Scope    string // optional narrowing (RFC 6749 §6)
	Meta     audit.Meta
}

// Lookup returns the refresh token a presented token is (of either format)
// with its family, whatever its state; ErrNotFound (wrapped) for anything
// that is not a token tokend issued. A token of the current format is
// reported from its family: live (UsedAt zero) if it is the family's
// generation, used at the family's last rotation if it is an older one.
func (s *Service) Lookup(ctx context.Context, token string) (store.RefreshToken, store.RefreshFamily, error) {
	if raw, ok := opaque.Parse(token); ok {
		return s.store.RefreshToken(ctx, opaque.Hash(raw))
	}
	t, ok, _ := parseToken(s.keys, token)
	if !ok {
		return store.RefreshToken{}, store.RefreshFamily{}, fmt.Errorf("look up refresh token: %w", store.ErrNotFound)
	}
	fam, err := s.store.Family(ctx, t.family)
	if err != nil {
		return store.RefreshToken{}, store.RefreshFamily{}, err
	}
	if t.generation > fam.Generation {
		return store.RefreshToken{}, store.RefreshFamily{}, fmt.Errorf("look up refresh token: %w", store.ErrNotFound)
	}
	tok := store.RefreshToken{FamilyID: fam.ID, UserID: fam.UserID, ClientID: fam.ClientID, ClientKind: fam.ClientKind,
		Scope: fam.Scope, CreatedAt: fam.RotatedAt, ExpiresAt: fam.IdleExpiresAt}
	if t.generation < fam.Generation {
		tok.UsedAt = fam.RotatedAt
	}
	return tok, fam, nil
}

// checkScope refuses, before anything is written, a scope wider than the
// one the live token was granted: a bad parameter must not cost the client
// its refresh token (rotated, then never handed over, then taken for reuse
// on the next try). Tokens that will not rotate anyway (unknown, another
// client's, used, revoked) take the normal path, so a replay with a bogus
// scope is still detected as reuse.
func (s *Service) checkScope(ctx context.Context, r RefreshRequest) error {
	tok, fam, err := s.Lookup(ctx, r.Token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case !tok.UsedAt.IsZero() || fam.Revoked() || tok.ClientKind != r.Kind || (r.ClientID != "" && tok.ClientID != r.ClientID):
		return nil
	}
	if _, ok := oauth.Narrow(tok.Scope, r.Scope); !ok {
		return ErrInvalidScope
	}
	return nil
}

// maxWalk bounds how many grace-window rotations a repeat of a token of
// the old format may follow.
const maxWalk = 8

// Refresh rotates r.Token: one conditional UPDATE of its family's row. A
// token of the old format (a family created before one row per session)
// takes the migration path instead (refreshLegacy).
func (s *Service) Refresh(ctx context.Context, r RefreshRequest) (*Result, error) {
	if raw, ok := opaque.Parse(r.Token); ok {
		return s.refreshLegacy(ctx, r, raw)
	}
	t, ok, reason := parseToken(s.keys, r.Token)
	if !ok {
		return nil, grantErr("%s", reason)
	}
	if r.Scope != "" {
		if err := s.checkScope(ctx, r); err != nil {
			return nil, err
		}
	}
	now := s.now()
	fam, err := s.store.RotateFamily(ctx, store.FamilyRotation{FamilyID: t.family, Generation: t.generation, ClientKind: r.Kind,
		ClientID: r.ClientID, At: now, IdleExpiresAt: now.Add(s.cfg.RefreshTTL),
		RateLimit: s.cfg.RefreshRateLimit, RateSince: now.Add(-time.Minute)})
	switch {
	case err == nil:
		return s.issue(ctx, fam, r.Scope)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return s.familyNotRotated(ctx, r, t, now)
}

// familyNotRotated explains why a token did not rotate, and serves a
// repeat of the previous generation inside the grace window: the answer is
// the token of the family's generation, computed again, never stored.
func (s *Service) familyNotRotated(ctx context.Context, r RefreshRequest, t refreshToken, now time.Time) (*Result, error) {
	fam, err := s.store.Family(ctx, t.family)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, grantErr("unknown refresh token")
	case err != nil:
		return nil, err
	case fam.ClientKind != r.Kind || (r.ClientID != "" && fam.ClientID != r.ClientID):
		return nil, grantErr("refresh token of another client")
	case fam.Revoked():
		return nil, grantErr("session revoked (%s)", fam.RevokeReason)
	case !now.Before(fam.ExpiresAt):
		return nil, grantErr("refresh token expired")
	case t.generation > fam.Generation:
		// Only a MAC under our key gets here: a database restored to an
		// older state, say. Nothing to revoke.
		return nil, grantErr("refresh token of a generation the session has not reached")
	case t.generation == fam.Generation:
		if !now.Before(fam.IdleExpiresAt) {
			return nil, grantErr("refresh token expired")
		}
		return s.liveNotRotated(ctx, r, fam, now)
	case t.generation == fam.Generation-1 && now.Sub(fam.RotatedAt) <= s.cfg.ReuseGrace:
		if !now.Before(fam.IdleExpiresAt) {
			return nil, grantErr("refresh token expired")
		}
		if err := s.checkUser(ctx, r, fam, now); err != nil {
			return nil, err
		}
		return s.issue(ctx, fam, r.Scope)
	}
	details := map[string]string{"session": fam.ID, "client": fam.ClientID, "generation": strconv.FormatInt(t.generation, 10),
		"live_generation": strconv.FormatInt(fam.Generation, 10)}
	if t.generation == fam.Generation-1 {
		details["used_at"] = fam.RotatedAt.UTC().Format(time.RFC3339)
	}
	return s.reuse(ctx, r, fam, details, now)
}

// reuse revokes the family of a token presented after it was rotated out
// (and past the grace window), with an audit event.
func (s *Service) reuse(ctx context.Context, r RefreshRequest, fam store.RefreshFamily, details map[string]string, now time.Time) (*Result, error) {
	ev := audit.New(audit.RefreshReuseDetected, r.Meta, fam.UserID, now, details)
	if _, err := s.store.RevokeFamily(ctx, fam.ID, now, "refresh token reuse", ev); err != nil {
		return nil, fmt.Errorf("revoke session after reuse: %w", err)
	}
	s.metrics.RefreshReuse()
	s.log.WarnContext(ctx, "refresh token reuse detected; session revoked", "session", fam.ID, "user_id", fam.UserID,
		"client_id", fam.ClientID, "address", r.Meta.Address)
	return nil, grantErr("refresh token reuse; session revoked")
}

// checkUser revokes the family of a user who is gone or disabled.
func (s *Service) checkUser(ctx context.Context, r RefreshRequest, fam store.RefreshFamily, now time.Time) error {
	u, err := s.store.UserByID(ctx, fam.UserID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil || u.Disabled() {
		ev := audit.New(audit.SessionRevoked, r.Meta, fam.UserID, now, map[string]string{"session": fam.ID, "reason": "user disabled"})
		if _, err := s.store.RevokeFamily(ctx, fam.ID, now, "user disabled", ev); err != nil {
			return fmt.Errorf("revoke a disabled user's session: %w", err)
		}
		return grantErr("the account is disabled")
	}
	return nil
}

// liveNotRotated explains a live token of a live family that did not
// rotate: its user is disabled (the family is revoked now), the family
// rotates too often (429, the token stays usable), or a revoke or another
// rotation raced with this one.
func (s *Service) liveNotRotated(ctx context.Context, r RefreshRequest, fam store.RefreshFamily, now time.Time) (*Result, error) {
	if err := s.checkUser(ctx, r, fam, now); err != nil {
		return nil, err
	}
	if limit := s.cfg.RefreshRateLimit; limit > 0 {
		n, err := s.store.RecentRotations(ctx, fam.ID, now.Add(-time.Minute))
		if err != nil {
			return nil, err
		}
		if n >= limit {
			s.log.WarnContext(ctx, "refresh rate limited", "session", fam.ID, "client_id", fam.ClientID, "rotations_last_minute", n)
			// The count is of a fixed one-minute window on the session's
			// row: a minute from now it has certainly begun again.
			return nil, &ThrottledError{RetryAfter: time.Minute}
		}
	}
	return nil, grantErr("session changed concurrently")
}

// refreshLegacy rotates a token of the old format: it consumes the token's
// row and moves its family to generation 1, whose token (of the current
// format) is the answer. From then on the family has one row.
func (s *Service) refreshLegacy(ctx context.Context, r RefreshRequest, raw []byte) (*Result, error) {
	if r.Scope != "" {
		if err := s.checkScope(ctx, r); err != nil {
			return nil, err
		}
	}
	now := s.now()
	hash := opaque.Hash(raw)
	_, fam, err := s.store.RotateRefreshToken(ctx, store.Rotation{Hash: hash, ClientKind: r.Kind, ClientID: r.ClientID,
		At: now, IdleExpiresAt: now.Add(s.cfg.RefreshTTL), RateLimit: s.cfg.RefreshRateLimit, RateSince: now.Add(-time.Minute)})
	switch {
	case err == nil:
		return s.issue(ctx, fam, r.Scope)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return s.legacyNotRotated(ctx, r, hash, s.derive.child(raw), now)
}

// legacyNotRotated explains why a token of the old format did not rotate,
// and serves a repeat inside the grace window.
func (s *Service) legacyNotRotated(ctx context.Context, r RefreshRequest, hash string, childRaw []byte, now time.Time) (*Result, error) {
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
		return s.liveNotRotated(ctx, r, fam, now)
	case now.Sub(tok.UsedAt) <= s.cfg.ReuseGrace:
		return s.legacyRepeat(ctx, r, fam, childRaw, now)
	}
	return s.reuse(ctx, r, fam, map[string]string{"session": fam.ID, "client": tok.ClientID,
		"used_at": tok.UsedAt.UTC().Format(time.RFC3339)}, now)
}

// legacyRepeat serves a token of the old format presented again within the
// grace window: it walks the derived chain in refresh_tokens to the live
// token and returns it; when the chain ends where the family moved to the
// current format, it returns the family's generation 1 (if that is still
// the live one, and issued within the grace window).
func (s *Service) legacyRepeat(ctx context.Context, r RefreshRequest, fam store.RefreshFamily, childRaw []byte, now time.Time) (*Result, error) {
	for range maxWalk {
		c, cfam, err := s.store.RefreshToken(ctx, opaque.Hash(childRaw))
		switch {
		case errors.Is(err, store.ErrNotFound):
			f, err := s.store.Family(ctx, fam.ID)
			switch {
			case err != nil:
				return nil, err
			case f.Revoked():
				return nil, grantErr("session revoked")
			case f.Generation == 1 && now.Sub(f.RotatedAt) <= s.cfg.ReuseGrace && now.Before(f.IdleExpiresAt):
				return s.issue(ctx, f, r.Scope)
			}
			// Rotated again since, or the derivation key changed (a new
			// master key): the repeat cannot be served, but it is no attack.
			return nil, grantErr("refresh token already rotated")
		case err != nil:
			return nil, err
		case c.FamilyID != fam.ID || cfam.Revoked():
			return nil, grantErr("session revoked")
		case !now.Before(c.ExpiresAt):
			return nil, grantErr("refresh token expired")
		case c.UsedAt.IsZero():
			return s.respond(ctx, cfam, opaque.Encode(childRaw), c.ExpiresAt, r.Scope)
		case now.Sub(c.UsedAt) > s.cfg.ReuseGrace:
			return nil, grantErr("refresh token already rotated")
		}
		childRaw = s.derive.child(childRaw)
	}
	return nil, grantErr("refresh token rotated too often")
}

// issue answers a rotation with the token of the family's generation.
func (s *Service) issue(ctx context.Context, fam store.RefreshFamily, scope string) (*Result, error) {
	refresh, err := mint(s.keys, fam.ID, fam.Generation)
	if err != nil {
		return nil, err
	}
	return s.respond(ctx, fam, refresh, fam.IdleExpiresAt, scope)
}

// respond signs an access token for the family and returns it with the
// refresh token.
func (s *Service) respond(ctx context.Context, fam store.RefreshFamily, refresh Secret, refreshExpires time.Time, scope string) (*Result, error) {
	granted, ok := oauth.Narrow(fam.Scope, scope)
	if !ok {
		return nil, ErrInvalidScope
	}
	client, err := s.cfg.Clients.Get(ctx, fam.ClientID)
	if err != nil {
		return nil, fmt.Errorf("client of the session: %w", err)
	}
	access, err := s.cfg.Issuer.Issue(tokens.Grant{Subject: fam.UserID, ClientID: fam.ClientID, SessionID: fam.ID,
		Scope: granted, Audience: client.Audience, Alg: client.Alg})
	if err != nil {
		return nil, err
	}
	s.metrics.TokenIssued(oauth.GrantRefreshToken, access.Alg)
	res := &Result{Access: access, Refresh: refresh, RefreshExpiresAt: refreshExpires, Scope: granted,
		SessionID: fam.ID, UserID: fam.UserID}
	if oauth.HasScope(granted, oauth.ScopeOpenID) {
		// What the ID token of this refresh says about the authentication.
		res.SignInID, res.AuthTime, res.AMR = fam.SignInID, fam.AuthTime, fam.AMR
	}
	return res, nil
}

// Revoke revokes the session of a refresh token (of any generation) of the
// given client (kind, and id when set). Unknown, malformed or foreign
// tokens change nothing and are not an error (RFC 7009 §2.2).
func (s *Service) Revoke(ctx context.Context, token string, kind store.ClientKind, clientID string, typ string, m audit.Meta) error {
	tok, fam, err := s.Lookup(ctx, token)
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

// Session is one of a user's live sessions: an app's refresh-token family
// (TypeApp) or a sign-in session at tokend in a browser (TypeBrowser).
type Session struct {
	ID         string
	Type       string
	ClientID   string // empty for a browser sign-in session
	CreatedAt  time.Time
	LastUsedAt time.Time
	UserAgent  string
	Current    bool
}

// Session types.
const (
	TypeApp     = "app"
	TypeBrowser = "browser"
)

// List returns the user's live sessions, newest first; current marks the
// family the caller's access token came from.
func (s *Service) List(ctx context.Context, userID, current string) ([]Session, error) {
	now := s.now()
	fams, err := s.store.ListSessions(ctx, userID, now)
	if err != nil {
		return nil, err
	}
	sis, err := s.store.ListSignIns(ctx, userID, now)
	if err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(fams)+len(sis))
	for _, f := range fams {
		out = append(out, Session{ID: f.ID, Type: TypeApp, ClientID: f.ClientID, CreatedAt: f.CreatedAt, LastUsedAt: f.LastUsedAt,
			UserAgent: f.UserAgent, Current: f.ID == current})
	}
	for _, si := range sis {
		out = append(out, Session{ID: si.ID, Type: TypeBrowser, CreatedAt: si.CreatedAt, LastUsedAt: si.LastUsedAt, UserAgent: si.UserAgent})
	}
	slices.SortStableFunc(out, func(a, b Session) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// RevokeSession revokes one of the user's sessions (a family, or a sign-in
// session with the families started through it); ErrNotFound when the user
// has no such live session.
func (s *Service) RevokeSession(ctx context.Context, userID, id string, m audit.Meta) error {
	now := s.now()
	ev := audit.New(audit.SessionRevoked, m, userID, now, map[string]string{"session": id})
	err := s.store.RevokeUserFamily(ctx, userID, id, now, "revoked by the user", ev)
	if errors.Is(err, store.ErrNotFound) {
		_, err = s.store.RevokeSignIn(ctx, id, userID, now, "revoked by the user", ev)
	}
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// RevokeOthers revokes every session of the user but current (a family) and
// the sign-in session it was started through.
func (s *Service) RevokeOthers(ctx context.Context, userID, current string, m audit.Meta) (int, error) {
	now := s.now()
	keep := ""
	if f, err := s.store.Family(ctx, current); err == nil && f.UserID == userID {
		keep = f.SignInID
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	n, err := s.store.RevokeUserSignIns(ctx, userID, keep, now, "revoked by the user")
	if err != nil {
		return 0, err
	}
	k, err := s.store.RevokeUserFamilies(ctx, userID, current, now, "revoked by the user",
		audit.New(audit.SessionRevoked, m, userID, now, map[string]string{"all_but": current}))
	return n + k, err
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
