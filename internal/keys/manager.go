package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
)

// ReloadInterval is how often Run reloads the key set from the database. It
// is well inside the 30 s bound of API.md; PublishMargin is that bound.
const (
	ReloadInterval = 10 * time.Second
	PublishMargin  = 30 * time.Second
	leaseTTL       = 2 * time.Minute
	rotationLease  = "key-rotation"
)

// Store is what keys needs from storage.
type Store interface {
	SigningKeys(ctx context.Context, states ...store.KeyState) ([]store.SigningKey, error)
	BootstrapSigningKeys(ctx context.Context, current, next store.SigningKey, ev *store.AuditEvent) error
	RotateSigningKeys(ctx context.Context, r store.KeyRotation, ev *store.AuditEvent) error
	ReplaceNextSigningKey(ctx context.Context, k store.SigningKey, ev *store.AuditEvent) error
	RevokeSigningKey(ctx context.Context, kid string, at time.Time, newNext *store.SigningKey, ev *store.AuditEvent) error
	ExpireSigningKeys(ctx context.Context, now time.Time) (int, error)
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Config configures a Manager.
type Config struct {
	Store  Store
	Sealer *masterkey.Sealer // masterkey.PurposeSigningKeys
	Now    func() time.Time
	Log    *slog.Logger
	// JWKSMaxAge, AccessTokenTTL and RotationPeriod come from TOKEND_*.
	JWKSMaxAge     time.Duration
	AccessTokenTTL time.Duration
	RotationPeriod time.Duration // 0: no scheduled rotation
	// Instance names this process as a lease holder (random when empty).
	Instance string
	// OnChange, when set, is called after every reload with the new set
	// (metrics use it).
	OnChange func(*Set)
}

// Manager runs the key lifecycle and holds the current key set.
type Manager struct {
	cfg      Config
	now      func() time.Time
	log      *slog.Logger
	set      atomic.Pointer[Set]
	mu       sync.Mutex               // serializes reloads
	cache    map[string]crypto.Signer // decrypted private keys by kid
	instance string
	// afterLease is a test hook run between taking the rotation lease and
	// rotating; an error aborts the run without releasing the lease, as a
	// crash would.
	afterLease func() error
}

// NewManager returns a Manager; call Bootstrap (or Reload) before use.
func NewManager(cfg Config) *Manager {
	m := &Manager{cfg: cfg, now: cfg.Now, log: cfg.Log, cache: map[string]crypto.Signer{}, instance: cfg.Instance}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		m.instance = hex.EncodeToString(b[:])
	}
	return m
}

// Set returns the current snapshot (nil before the first load).
func (m *Manager) Set() *Set { return m.set.Load() }

// Signer returns alg's current signing key.
func (m *Manager) Signer(alg string) (*Signer, bool) { return m.set.Load().Signer(alg) }

// PublicKey returns a published key by kid.
func (m *Manager) PublicKey(kid string) (PublicKey, bool) { return m.set.Load().PublicKey(kid) }

// emptyDoc is served before the first load.
var emptyDoc = &JWKSDoc{Body: []byte(`{"keys":[]}`), ETag: `"empty"`, ETagHeader: []string{`"empty"`}, ContentLength: []string{"11"}}

// JWKS returns the precomputed JWKS response.
func (m *Manager) JWKS() *JWKSDoc {
	if s := m.set.Load(); s != nil {
		return s.Doc()
	}
	return emptyDoc
}

// eligibleAt is when a next key may start signing.
func (m *Manager) eligibleAt(next store.SigningKey) time.Time {
	return next.CreatedAt.Add(m.cfg.JWKSMaxAge + PublishMargin)
}

// publishUntil is when a key retired at `at` may leave the JWKS.
func (m *Manager) publishUntil(at time.Time) time.Time {
	return at.Add(PublishMargin + m.cfg.AccessTokenTTL + m.cfg.JWKSMaxAge)
}

// Bootstrap makes sure every algorithm has a current and a next key (the
// first start creates them), then loads the set. Instances starting together
// are safe: the database admits one current key per algorithm.
func (m *Manager) Bootstrap(ctx context.Context) error {
	keys, err := m.cfg.Store.SigningKeys(ctx, store.KeyCurrent, store.KeyNext)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	for _, alg := range Algs {
		cur, next := pick(keys, alg)
		now := m.now()
		switch {
		case cur == nil:
			c, err := m.newRecord(alg, 0, store.KeyCurrent, now)
			if err != nil {
				return err
			}
			n, err := m.newRecord(alg, 0, store.KeyNext, now)
			if err != nil {
				return err
			}
			ev := audit.New(audit.KeyGenerated, audit.Meta{Address: "bootstrap"}, "", now,
				map[string]string{"alg": alg, "current": c.KID, "next": n.KID})
			err = m.cfg.Store.BootstrapSigningKeys(ctx, c, n, ev)
			if errors.Is(err, store.ErrAlreadyExists) {
				continue // another instance bootstrapped first
			}
			if err != nil {
				return fmt.Errorf("bootstrap %s keys: %w", alg, err)
			}
			m.log.InfoContext(ctx, "created signing keys", "alg", alg, "current", c.KID, "next", n.KID)
		case next == nil:
			n, err := m.newRecord(alg, rsaBits(*cur), store.KeyNext, now)
			if err != nil {
				return err
			}
			if err := m.cfg.Store.ReplaceNextSigningKey(ctx, n, nil); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				return fmt.Errorf("create next %s key: %w", alg, err)
			}
		}
	}
	return m.Reload(ctx)
}

func (m *Manager) newRecord(alg string, bits int, state store.KeyState, at time.Time) (store.SigningKey, error) {
	mat, err := generate(alg, bits)
	if err != nil {
		return store.SigningKey{}, err
	}
	return mat.record(m.cfg.Sealer, state, "generated", at)
}

// pick returns alg's current and next keys from keys.
func pick(keys []store.SigningKey, alg string) (cur, next *store.SigningKey) {
	for i := range keys {
		k := &keys[i]
		if k.Alg != alg {
			continue
		}
		switch k.State {
		case store.KeyCurrent:
			cur = k
		case store.KeyNext:
			next = k
		}
	}
	return cur, next
}

// Reload loads the key set from the database and swaps it in.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys, err := m.cfg.Store.SigningKeys(ctx, store.KeyCurrent, store.KeyNext, store.KeyRetired)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	set, err := buildSet(keys, m.now(), func(k store.SigningKey) (crypto.Signer, error) {
		if s, ok := m.cache[k.KID]; ok {
			return s, nil
		}
		s, err := openPrivate(m.cfg.Sealer, k)
		if err != nil {
			return nil, err
		}
		m.cache[k.KID] = s
		return s, nil
	})
	if err != nil {
		return err
	}
	// Forget decrypted keys that no longer sign.
	for kid := range m.cache {
		if _, ok := set.public[kid]; !ok || set.public[kid].State != store.KeyCurrent {
			delete(m.cache, kid)
		}
	}
	m.set.Store(set)
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(set)
	}
	return nil
}

// NotPublishedError refuses a rotation whose next key has not been
// published long enough.
type NotPublishedError struct {
	Alg, KID string
	Until    time.Time
}

func (e *NotPublishedError) Error() string {
	return fmt.Sprintf("the next %s key %s has not been published for TOKEND_JWKS_MAX_AGE yet; it may sign from %s (or use --force)",
		e.Alg, e.KID, e.Until.UTC().Format(time.RFC3339))
}

// RotateOptions adjust a manual rotation.
type RotateOptions struct {
	// Force promotes a next key that has not been published long enough
	// (resource servers with an older cached JWKS must refetch).
	Force bool
	// RSABits is the size of the new RS256 next key (default: the size of
	// the current key, or 2048).
	RSABits int
	Meta    audit.Meta
}

// Rotate rotates alg: next → current, current → retired, a fresh next. It
// returns the new current kid.
func (m *Manager) Rotate(ctx context.Context, alg string, opts RotateOptions) (string, error) {
	kid, err := m.rotate(ctx, alg, opts)
	if err != nil {
		return "", err
	}
	return kid, m.Reload(ctx)
}

func (m *Manager) rotate(ctx context.Context, alg string, opts RotateOptions) (string, error) {
	keys, err := m.cfg.Store.SigningKeys(ctx, store.KeyCurrent, store.KeyNext)
	if err != nil {
		return "", fmt.Errorf("load signing keys: %w", err)
	}
	cur, next := pick(keys, alg)
	if next == nil {
		return "", fmt.Errorf("no next %s key to promote (run tokend serve once to create the keys)", alg)
	}
	now := m.now()
	if until := m.eligibleAt(*next); now.Before(until) && !opts.Force {
		return "", &NotPublishedError{Alg: alg, KID: next.KID, Until: until}
	}
	bits := opts.RSABits
	if bits == 0 && cur != nil {
		bits = rsaBits(*cur)
	}
	nn, err := m.newRecord(alg, bits, store.KeyNext, now)
	if err != nil {
		return "", err
	}
	r := store.KeyRotation{Alg: alg, NextKID: next.KID, NewNext: nn, At: now, PublishUntil: m.publishUntil(now)}
	details := map[string]string{"alg": alg, "current": next.KID, "next": nn.KID}
	if cur != nil {
		r.CurrentKID = cur.KID
		details["retired"] = cur.KID
	}
	if opts.Force {
		details["forced"] = "true"
	}
	if err := m.cfg.Store.RotateSigningKeys(ctx, r, audit.New(audit.KeyRotated, opts.Meta, "", now, details)); err != nil {
		return "", fmt.Errorf("rotate %s keys: %w", alg, err)
	}
	m.log.InfoContext(ctx, "rotated signing keys", "alg", alg, "current", next.KID, "next", nn.KID, "retired", r.CurrentKID)
	return next.KID, nil
}

// RotateDue is one run of the schedule: under the rotation lease, it rotates
// every algorithm whose current key has signed for RotationPeriod, then
// marks retired keys past their window expired. It returns the new current
// kids. Several instances may call it at once; one rotates.
func (m *Manager) RotateDue(ctx context.Context) ([]string, error) {
	now := m.now()
	var rotated []string
	if m.cfg.RotationPeriod > 0 {
		keys, err := m.cfg.Store.SigningKeys(ctx, store.KeyCurrent)
		if err != nil {
			return nil, fmt.Errorf("load signing keys: %w", err)
		}
		var due []string
		for _, alg := range Algs {
			if cur, _ := pick(keys, alg); cur != nil && !now.Before(cur.ActivatedAt.Add(m.cfg.RotationPeriod)) {
				due = append(due, alg)
			}
		}
		if len(due) > 0 {
			got, err := m.cfg.Store.AcquireLease(ctx, rotationLease, m.instance, now, now.Add(leaseTTL))
			if err != nil {
				return nil, fmt.Errorf("take rotation lease: %w", err)
			}
			if !got {
				return nil, nil // another instance is rotating
			}
			if m.afterLease != nil {
				if err := m.afterLease(); err != nil {
					return nil, err
				}
			}
			for _, alg := range due {
				kid, err := m.rotate(ctx, alg, RotateOptions{Meta: audit.Meta{Address: "scheduler"}})
				var npe *NotPublishedError
				switch {
				case errors.As(err, &npe):
					m.log.WarnContext(ctx, "scheduled rotation waits for the next key to be published", "alg", alg, "until", npe.Until)
				case errors.Is(err, store.ErrConflict):
					// Another instance rotated between our read and our write.
				case err != nil:
					_ = m.cfg.Store.ReleaseLease(ctx, rotationLease, m.instance)
					return rotated, err
				default:
					rotated = append(rotated, kid)
				}
			}
			if err := m.cfg.Store.ReleaseLease(ctx, rotationLease, m.instance); err != nil {
				m.log.WarnContext(ctx, "release rotation lease", "err", err)
			}
		}
	}
	if n, err := m.cfg.Store.ExpireSigningKeys(ctx, now); err != nil {
		return rotated, fmt.Errorf("expire retired keys: %w", err)
	} else if n > 0 {
		m.log.InfoContext(ctx, "retired signing keys left the JWKS", "count", n)
	}
	if len(rotated) > 0 {
		return rotated, m.Reload(ctx)
	}
	return rotated, nil
}

// Import stores a PEM private key as alg's next key, replacing the generated
// next key (which never signed). It returns the kid.
func (m *Manager) Import(ctx context.Context, alg string, pemData []byte, meta audit.Meta) (string, error) {
	priv, err := ParsePEM(alg, pemData)
	if err != nil {
		return "", err
	}
	mat, err := newMaterial(alg, priv)
	if err != nil {
		return "", err
	}
	now := m.now()
	rec, err := mat.record(m.cfg.Sealer, store.KeyNext, "imported", now)
	if err != nil {
		return "", err
	}
	ev := audit.New(audit.KeyImported, meta, "", now, map[string]string{"alg": alg, "kid": mat.kid})
	if err := m.cfg.Store.ReplaceNextSigningKey(ctx, rec, ev); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return "", fmt.Errorf("key %s is already stored", mat.kid)
		}
		return "", fmt.Errorf("import key: %w", err)
	}
	return mat.kid, m.Reload(ctx)
}

// Revoke removes kid from the JWKS at once. A revoked current key is
// replaced by its next key first, so signing never stops, and a fresh next
// key is generated.
func (m *Manager) Revoke(ctx context.Context, kid string, meta audit.Meta) error {
	keys, err := m.cfg.Store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	var target *store.SigningKey
	for i := range keys {
		if keys[i].KID == kid {
			target = &keys[i]
		}
	}
	if target == nil {
		return fmt.Errorf("no signing key %s: %w", kid, store.ErrNotFound)
	}
	now := m.now()
	var nn *store.SigningKey
	if target.State == store.KeyCurrent || target.State == store.KeyNext {
		rec, err := m.newRecord(target.Alg, rsaBits(*target), store.KeyNext, now)
		if err != nil {
			return err
		}
		nn = &rec
	}
	ev := audit.New(audit.KeyRevoked, meta, "", now, map[string]string{"alg": target.Alg, "kid": kid, "was": string(target.State)})
	if err := m.cfg.Store.RevokeSigningKey(ctx, kid, now, nn, ev); err != nil {
		return fmt.Errorf("revoke key %s: %w", kid, err)
	}
	m.log.WarnContext(ctx, "revoked signing key", "kid", kid, "alg", target.Alg, "was", target.State)
	return m.Reload(ctx)
}

// List returns every stored key (public data only is used by callers).
func (m *Manager) List(ctx context.Context) ([]store.SigningKey, error) {
	return m.cfg.Store.SigningKeys(ctx)
}

// LeavesJWKS is when a key leaves (or left) the JWKS; zero while it is
// published with no end set.
func LeavesJWKS(k store.SigningKey) time.Time {
	switch k.State {
	case store.KeyRetired, store.KeyExpired:
		return k.PublishUntil
	case store.KeyRevoked:
		return k.RevokedAt
	}
	return time.Time{}
}

// Run reloads the set every ReloadInterval and runs the rotation schedule,
// until ctx ends. Errors are logged; the previous set stays in use.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.RotateDue(ctx); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "scheduled key rotation failed", "err", err)
		}
		if err := m.Reload(ctx); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "reload signing keys failed; keeping the previous set", "err", err)
		}
	}
}
