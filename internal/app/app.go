// Package app wires tokend's components together: given a configuration, an
// open store, the master key and a clock, it builds the key manager, the
// services and the HTTP handler, and runs the background workers. It is the
// one wiring shared by `tokend serve` and the end-to-end tests, so that
// tests exercise exactly what production runs.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tokend/tokend/internal/authorize"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/csrf"
	"github.com/tokend/tokend/internal/factors"
	"github.com/tokend/tokend/internal/formseal"
	"github.com/tokend/tokend/internal/grants"
	"github.com/tokend/tokend/internal/httpapi"
	"github.com/tokend/tokend/internal/introspect"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/metrics"
	"github.com/tokend/tokend/internal/onetime"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/passkeys"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/prune"
	"github.com/tokend/tokend/internal/reset"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store/sqlstore"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/users"
	"github.com/tokend/tokend/internal/verify"
)

// HashWait is how long a password hash waits for a free slot before the
// request is answered 429.
const HashWait = 2 * time.Second

// Options are the inputs of New.
type Options struct {
	Config    config.Config
	Store     *sqlstore.DB
	MasterKey *masterkey.Key
	// PreviousMasterKey (TOKEND_MASTER_KEY_PREVIOUS) only opens what it
	// sealed, during a master-key rotation; nil otherwise.
	PreviousMasterKey *masterkey.Key
	Now               func() time.Time // time.Now when nil
	Log               *slog.Logger
	// Instance names this process in leases (random when empty).
	Instance string
	// MailTLS is the SMTP client's TLS configuration (system roots when
	// nil; tests trust their own server).
	MailTLS *tls.Config
	// ResetMinDuration overrides reset.DefaultMinDuration when not zero;
	// it is also the minimum time of a sign-up, a re-sent confirmation and
	// a change of address.
	ResetMinDuration time.Duration
	// Version is reported in tokend_build_info.
	Version string
	// WrapHasher, when set, wraps the password hasher the accounts use
	// (tests observe or pace the hashing with it).
	WrapHasher func(users.Hasher) users.Hasher
}

// App is a wired tokend.
type App struct {
	Config   config.Config
	Store    *sqlstore.DB
	Log      *slog.Logger
	Now      func() time.Time
	Keys     *keys.Manager
	DataKeys *masterkey.DataKeys // keys of keyed hashes; the refresh MAC's are DataKeys.MAC(masterkey.PurposeRefreshMAC)
	Hasher   *password.Hasher
	Users    *users.Service
	Issuer   *tokens.Issuer
	Verifier *tokens.Verifier
	Limiter  *throttle.Limiter
	Clients  *clients.Service
	// ClientAuth authenticates clients at the OAuth endpoints.
	ClientAuth *clients.Authenticator
	Login      *login.Service
	Factors    *factors.Service
	// Passkeys runs WebAuthn ceremonies; nil when the issuer's host is an IP
	// address (or http on a host other than localhost).
	Passkeys *passkeys.Service
	Sessions *sessions.Service
	Grants   *grants.Registry
	Codes    *authorize.Codes
	// Introspection answers RFC 7662 requests.
	Introspection *introspect.Service
	Outbox        *mail.Outbox
	// Tokens issues and redeems the single-use links that are mailed.
	Tokens *onetime.Service
	Reset  *reset.Service
	// Verify runs sign-up and email verification.
	Verify  *verify.Service
	Metrics *metrics.Metrics
	// Prune deletes expired, revoked and old data on its schedule.
	Prune *prune.Runner
	HTTP  *httpapi.Server
	// Admin serves the operators' listener (/metrics).
	Admin *httpapi.Server
}

// New builds the application and makes sure the signing keys exist.
func New(ctx context.Context, o Options) (*App, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	a := &App{Config: cfg, Store: o.Store, Log: o.Log, Now: o.Now}
	// Sealed values open with either master key; keyed hashes use data
	// keys, which a master-key rotation re-seals but never changes.
	ring := &masterkey.Keyring{Current: o.MasterKey, Previous: o.PreviousMasterKey}
	a.Keys = NewKeyManager(cfg, o.Store, ring, o.Now, o.Log, o.Instance)
	a.Metrics = metrics.New(metrics.Options{Version: o.Version, DB: o.Store.Writer().DB, DBName: o.Store.Dialect(),
		KeyAges: a.keyAges, PendingMail: o.Store.PendingMail})
	if err := a.Keys.Bootstrap(ctx); err != nil {
		return nil, err
	}
	var err error
	if a.Prune, err = NewPruner(cfg, o.Store, o.Now, o.Log, o.Instance, a.Metrics); err != nil {
		return nil, err
	}
	if a.Hasher, err = password.NewHasher(cfg.Argon2, cfg.HashMaxConcurrent, HashWait); err != nil {
		return nil, err
	}
	var hasher users.Hasher = a.Hasher
	if o.WrapHasher != nil {
		hasher = o.WrapHasher(a.Hasher)
	}
	if a.Users, err = users.New(ctx, o.Store, hasher, o.Now, o.Log); err != nil {
		return nil, err
	}
	a.Issuer = tokens.NewIssuer(tokens.IssuerConfig{Keys: a.Keys, Issuer: cfg.Issuer, Audience: cfg.Audience,
		Alg: cfg.SigningAlg, TTL: cfg.AccessTokenTTL, Now: o.Now})
	a.Verifier = tokens.NewVerifier(a.Keys, cfg.Issuer, o.Now, 0)
	a.Limiter = throttle.NewLimiter(o.Store, o.Now)
	dataKeys, err := ring.LoadDataKeys(ctx, o.Store, o.Now())
	if err != nil {
		return nil, err
	}
	a.DataKeys = dataKeys
	secretHasher := clients.NewHasher(dataKeys.MustCurrent(masterkey.PurposeClientSecrets))
	a.Clients = clients.New(o.Store, secretHasher)
	a.ClientAuth = &clients.Authenticator{Clients: a.Clients, Hasher: secretHasher, Limiter: a.Limiter, Now: o.Now,
		Audiences: []string{cfg.Issuer + "/oauth/token", cfg.Issuer},
		Methods:   []clients.Method{clients.None{}, clients.SecretBasic{}, clients.SecretPost{}, clients.PrivateKeyJWT{}}}
	brand, err := pages.LoadBrand(cfg.BrandingDir)
	if err != nil {
		return nil, err
	}
	a.Factors = factors.New(factors.Config{Store: o.Store, Secrets: ring.Sealer(masterkey.PurposeTOTP),
		RecoveryKey: dataKeys.MustCurrent(masterkey.PurposeRecoveryCodes), Issuer: brand.Name, Now: o.Now})
	steps := map[string]login.Step{
		factors.StepTOTP:     factors.TOTPStep{Factors: a.Factors},
		factors.StepRecovery: factors.RecoveryStep{Factors: a.Factors},
	}
	var passkeyCheck login.PasskeyVerifier
	a.Passkeys, err = passkeys.New(passkeys.Config{Issuer: cfg.Issuer, Name: brand.Name, Store: o.Store, Enroll: a.Factors, Now: o.Now})
	switch {
	case errors.Is(err, passkeys.ErrUnavailable):
		o.Log.Info("passkeys are off: " + err.Error())
	case err != nil:
		return nil, err
	default:
		steps[factors.StepWebAuthn] = passkeys.Step{Passkeys: a.Passkeys}
		passkeyCheck = a.Passkeys
	}
	a.Login = login.New(login.Config{Users: a.Users, Limiter: a.Limiter, Audit: o.Store, Forms: o.Store, Metrics: a.Metrics, Now: o.Now, Log: o.Log,
		Email: login.EmailPolicy{RequireVerified: cfg.RequireVerifiedEmail}, Requirements: a.Factors, Steps: steps,
		Passkeys: passkeyCheck})
	a.Sessions = sessions.New(sessions.Config{
		Store:            o.Store,
		Clients:          a.Clients,
		Issuer:           a.Issuer,
		MACKeys:          dataKeys.MAC(masterkey.PurposeRefreshMAC),
		DeriveKey:        dataKeys.MustCurrent(masterkey.PurposeRefresh),
		Now:              o.Now,
		Log:              o.Log,
		RefreshTTL:       cfg.RefreshTokenTTL,
		SessionMaxAge:    cfg.SessionMaxAge,
		ReuseGrace:       cfg.RefreshReuseGrace,
		Metrics:          a.Metrics,
		RefreshRateLimit: cfg.RefreshRateLimit,
		SignInMaxAge:     cfg.LoginSessionMaxAge,
	})
	a.Codes = &authorize.Codes{Store: o.Store, Now: o.Now, Log: o.Log}
	a.Introspection = &introspect.Service{Verifier: a.Verifier, Store: o.Store, Refresh: a.Sessions, Clients: a.Clients,
		Issuer: cfg.Issuer, Now: o.Now}
	idTokens := grants.IDTokens{Issuer: a.Issuer, Users: a.Users}
	a.Grants = grants.NewRegistry(
		grants.AuthorizationCode{Codes: a.Codes, Sessions: a.Sessions, IDTokens: idTokens},
		grants.Refresh{Sessions: a.Sessions, IDTokens: idTokens},
		grants.Password{Login: a.Login, Sessions: a.Sessions},
		grants.ClientCredentials{Issuer: a.Issuer, Metrics: a.Metrics},
	)
	renderer, err := pages.New(brand)
	if err != nil {
		return nil, err
	}
	sender, err := newSender(cfg, o)
	if err != nil {
		return nil, err
	}
	mailSealer := ring.Sealer(masterkey.PurposeMail)
	a.Outbox = mail.NewOutbox(mail.OutboxConfig{Store: o.Store, Sealer: mailSealer, Sender: sender, From: cfg.MailFrom,
		Now: o.Now, Log: o.Log, Holder: o.Instance, Metrics: a.Metrics})
	minDur := reset.DefaultMinDuration
	if o.ResetMinDuration != 0 {
		minDur = o.ResetMinDuration
	}
	a.Tokens = onetime.New(onetime.Config{Store: o.Store, MailSealer: mailSealer,
		DataSealer: ring.Sealer(masterkey.PurposeOneTimeData), Outbox: a.Outbox, Metrics: a.Metrics, Now: o.Now})
	a.Reset = reset.New(reset.Config{Store: o.Store, Hasher: a.Hasher, Limiter: a.Limiter, Tokens: a.Tokens,
		ResetURL: cfg.ResetURL, TTL: cfg.ResetTokenTTL, Now: o.Now, Log: o.Log, MinDuration: minDur})
	a.Verify = verify.New(verify.Config{Accounts: a.Users, Store: o.Store, Tokens: a.Tokens, Limiter: a.Limiter,
		VerifyURL: cfg.Issuer + "/verify", ForgotURL: cfg.Issuer + "/forgot", Now: o.Now, Log: o.Log, MinDuration: minDur})
	// Forms carry server state across tokend's pages (sealed: see formseal).
	forms := formseal.Sealer{AEAD: ring.Sealer(masterkey.PurposeAuthorize), Now: o.Now}
	a.HTTP = httpapi.New(httpapi.Config{
		Log:            o.Log,
		Now:            o.Now,
		Ready:          a.Ready,
		Metrics:        a.Metrics,
		Issuer:         cfg.Issuer,
		JWKSMaxAge:     cfg.JWKSMaxAge,
		Keys:           a.Keys,
		Users:          a.Users,
		Clients:        a.Clients,
		ClientAuth:     a.ClientAuth,
		Introspection:  a.Introspection,
		Login:          a.Login,
		Factors:        a.Factors,
		Passkeys:       a.Passkeys,
		Sessions:       a.Sessions,
		Grants:         a.Grants,
		Codes:          a.Codes,
		Requests:       authorize.Sealer{Forms: forms},
		Forms:          forms,
		CSRF:           csrf.New(dataKeys.MustCurrent(masterkey.PurposeCSRF)),
		Pages:          renderer,
		SignInMaxAge:   cfg.LoginSessionMaxAge,
		Verifier:       a.Verifier,
		Limiter:        a.Limiter,
		AllowedOrigins: cfg.AllowedOrigins,
		SecureCookies:  SecureCookies(cfg),
		Signup:         cfg.Signup,
		Reset:          a.Reset,
		Verify:         a.Verify,
	})
	a.Admin = httpapi.NewAdmin(httpapi.AdminConfig{Log: o.Log, Now: o.Now, Metrics: a.Metrics.Handler()})
	return a, nil
}

// newSender is the SMTP sender of TOKEND_SMTP_URL, or the dev mailer.
func newSender(cfg config.Config, o Options) (mail.Sender, error) {
	if cfg.SMTPURL == "" {
		if !cfg.Dev {
			o.Log.Warn("TOKEND_SMTP_URL is not set: reset mails will not be delivered")
		}
		return &mail.Dev{Log: o.Log, DevMode: cfg.Dev}, nil
	}
	s, err := mail.NewSMTP(cfg.SMTPURL.Reveal())
	if err != nil {
		return nil, fmt.Errorf("TOKEND_SMTP_URL: %w", err)
	}
	s.TLS = o.MailTLS
	return s, nil
}

// SecureCookies reports whether the refresh cookie carries Secure: always,
// except in dev mode on an http loopback issuer (where some browsers would
// drop it). The sign-in and CSRF cookies are __Host- cookies, Secure always.
func SecureCookies(cfg config.Config) bool {
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return true
	}
	return !(cfg.Dev && u.Scheme == "http" && config.IsLoopback(u.Hostname()))
}

// NewKeyManager builds the signing-key manager (also used by `tokend keys`).
func NewKeyManager(cfg config.Config, db *sqlstore.DB, ring *masterkey.Keyring, now func() time.Time, log *slog.Logger, instance string) *keys.Manager {
	return keys.NewManager(keys.Config{
		Store:          db,
		Sealer:         ring.Sealer(masterkey.PurposeSigningKeys),
		Now:            now,
		Log:            log,
		JWKSMaxAge:     cfg.JWKSMaxAge,
		AccessTokenTTL: cfg.AccessTokenTTL,
		RotationPeriod: cfg.KeyRotationPeriod,
		Instance:       instance,
	})
}

// keyAges reports how long each algorithm's current key has signed.
func (a *App) keyAges() map[string]time.Duration {
	out := map[string]time.Duration{}
	now := a.Now()
	for _, alg := range keys.Algs {
		if s, ok := a.Keys.Signer(alg); ok {
			out[alg] = now.Sub(s.ActivatedAt)
		}
	}
	return out
}

// Handler is the HTTP API.
func (a *App) Handler() http.Handler { return a.HTTP }

// AdminHandler is the admin listener's handler.
func (a *App) AdminHandler() http.Handler { return a.Admin }

// Ready is /readyz: the database answers and a current key of the default
// algorithm is loaded.
func (a *App) Ready(ctx context.Context) error {
	if err := a.Store.Ping(ctx); err != nil {
		return err
	}
	if _, ok := a.Keys.Signer(a.Config.SigningAlg); !ok {
		return &httpapi.NotReadyError{Reason: fmt.Sprintf("no current %s signing key is loaded", a.Config.SigningAlg)}
	}
	return nil
}

// Run runs the background workers until ctx ends: key reload and rotation
// schedule, mail delivery, and the pruning schedule (unless
// TOKEND_PRUNE_INTERVAL is 0).
func (a *App) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.Keys.Run(ctx) }()
	go func() { defer wg.Done(); a.Outbox.Run(ctx) }()
	if a.Config.PruneInterval > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); a.Prune.Run(ctx) }()
	}
	wg.Wait()
}

// NewPruner builds the pruning runner of cfg (`tokend prune` uses it too);
// m may be nil.
func NewPruner(cfg config.Config, db *sqlstore.DB, now func() time.Time, log *slog.Logger, instance string, m *metrics.Metrics) (*prune.Runner, error) {
	pc := prune.Config{
		Store:    db,
		Now:      now,
		Log:      log,
		Pruners:  prune.Defaults(prune.Options{AuditRetention: cfg.AuditRetention}),
		Interval: cfg.PruneInterval,
		Instance: instance,
	}
	if m != nil {
		pc.Observe = func(res prune.Result) {
			rows := map[string]int{}
			for _, k := range res.Kinds {
				rows[k.Kind] += k.Rows
			}
			m.Pruned(rows, res.Longest)
		}
	}
	return prune.New(pc)
}
