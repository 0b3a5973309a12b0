package main

// This file is the part to copy into your own resource server: it verifies
// tokend access tokens (RFC 9068 JWTs) offline against tokend's JWKS, which
// it caches in memory. It needs only the standard library,
// github.com/golang-jwt/jwt/v5 and github.com/go-jose/go-jose/v4.

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Outcomes of [Verifier.Verify]. Every error it returns wraps exactly one of
// them, with context; compare with errors.Is. Callers map them to responses:
// the first four mean "invalid_token" (RFC 6750 §3.1), ErrKeysUnavailable is
// the server's problem, not the client's.
var (
	// ErrMalformed: not a compact JWS at all (segments, base64, JSON, size).
	ErrMalformed = errors.New("malformed token")
	// ErrExpired: a genuine token whose exp (plus leeway) has passed and that
	// has nothing else wrong with it; the client should refresh.
	ErrExpired = errors.New("token expired")
	// ErrUnknownKey: the kid is not in the JWKS, even after a refetch.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrInvalid: anything else: bad signature, wrong alg, typ, iss or aud,
	// iat or nbf in the future, a required claim missing.
	ErrInvalid = errors.New("invalid token")
	// ErrKeysUnavailable: no JWKS has ever been loaded (the issuer is down or
	// answers garbage), so no token can be checked.
	ErrKeysUnavailable = errors.New("signing keys unavailable")
)

// Defaults and bounds. They are constants rather than knobs because they are
// the contract with tokend (see /work/shared/API.md, "Discovery and keys").
const (
	// DefaultRefetchInterval is how old the keys must be before an unknown
	// kid makes us refetch them, and the pause between retries while the
	// JWKS endpoint fails.
	DefaultRefetchInterval = 30 * time.Second
	// DefaultFetchTimeout bounds one JWKS request.
	DefaultFetchTimeout = 5 * time.Second

	defaultCacheAge = 5 * time.Minute // without Cache-Control: max-age
	minCacheAge     = 30 * time.Second
	maxCacheAge     = 24 * time.Hour
	maxJWKSBytes    = 1 << 20 // 1 MiB
	maxTokenBytes   = 16 << 10
	minRSABits      = 2048
)

// Claims is what a verified access token says (RFC 9068 §2.2).
type Claims struct {
	Subject   string    // sub: the user's stable id
	ClientID  string    // client_id: the application the token was issued to
	SessionID string    // sid: the login session (refresh-token family)
	Scope     string    // scope: space-separated, may be empty
	Audience  []string  // aud
	IssuedAt  time.Time // iat
	ExpiresAt time.Time // exp
	ID        string    // jti: unique per token
}

// VerifierConfig is everything a [Verifier] needs. Issuer, Audience and
// JWKSURL are required; the zero value of every other field picks the
// default named beside it.
type VerifierConfig struct {
	Issuer   string // exact iss value, e.g. "http://127.0.0.1:8080"
	Audience string // the aud this API accepts
	JWKSURL  string // usually the jwks_uri of the issuer's discovery document

	// Leeway absorbs clock skew on exp, nbf and iat. Zero means none; the
	// command's --leeway defaults to 30s.
	Leeway time.Duration

	HTTPClient      *http.Client     // default: a client without its own timeout
	Logger          *slog.Logger     // default: discard
	Now             func() time.Time // default: time.Now
	RefetchInterval time.Duration    // default: DefaultRefetchInterval
	FetchTimeout    time.Duration    // default: DefaultFetchTimeout
}

// Verifier checks tokend access tokens. It is safe for concurrent use.
type Verifier struct {
	now    func() time.Time
	parser *jwt.Parser // immutable once built, safe to share
	keys   *jwksCache
}

// NewVerifier returns a Verifier for cfg. It does not fetch anything; call
// [Verifier.Refresh] to load the keys before the first request.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("new verifier: issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("new verifier: audience is required")
	}
	if u, err := url.Parse(cfg.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("new verifier: JWKS URL %q is not an absolute http(s) URL", clip(cfg.JWKSURL))
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("new verifier: leeway must not be negative")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RefetchInterval <= 0 {
		cfg.RefetchInterval = DefaultRefetchInterval
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}

	v := &Verifier{
		now: cfg.Now,
		keys: &jwksCache{
			url:             cfg.JWKSURL,
			client:          cfg.HTTPClient,
			logger:          cfg.Logger,
			now:             cfg.Now,
			refetchInterval: cfg.RefetchInterval,
			fetchTimeout:    cfg.FetchTimeout,
		},
	}
	v.parser = jwt.NewParser(
		// Pin the algorithms: this alone refuses "none" and every HMAC alg,
		// so an attacker cannot sign with our public key as an HMAC secret.
		jwt.WithValidMethods([]string{"RS256", "EdDSA"}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(v.now),
		// Refuse non-canonical base64 (non-zero padding bits), so one token
		// has exactly one spelling.
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

// Refresh fetches the JWKS now, whatever the cache holds. On failure the
// cached keys stay in use. Call it at start to warm the cache.
func (v *Verifier) Refresh(ctx context.Context) error {
	v.keys.mu.Lock()
	call := v.keys.startLocked(ctx)
	v.keys.mu.Unlock()
	return v.keys.wait(ctx, call)
}

// Verify checks rawToken (the part after "Bearer ") and returns its claims.
// The token itself never appears in the error.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if rawToken == "" {
		return nil, fmt.Errorf("verify access token: %w: empty", ErrMalformed)
	}
	if len(rawToken) > maxTokenBytes {
		return nil, fmt.Errorf("verify access token: %w: longer than %d bytes", ErrMalformed, maxTokenBytes)
	}

	// keyErr keeps the keyfunc's own error, already classified, because
	// golang-jwt wraps it in its generic "token is unverifiable".
	var keyErr error
	var c accessTokenClaims
	_, err := v.parser.ParseWithClaims(rawToken, &c, func(t *jwt.Token) (any, error) {
		key, err := v.keyFor(ctx, t)
		keyErr = err
		return key, err
	})
	if keyErr != nil {
		return nil, fmt.Errorf("verify access token: %w", keyErr)
	}
	if err != nil {
		return nil, fmt.Errorf("verify access token: %w", classify(err))
	}
	return &Claims{
		Subject:   c.Subject,
		ClientID:  c.ClientID,
		SessionID: c.SessionID,
		Scope:     c.Scope,
		Audience:  []string(c.Audience),
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
		ID:        c.ID,
	}, nil
}

// keyFor is the jwt.Keyfunc. golang-jwt calls it after checking alg against
// WithValidMethods and before checking the signature, so the header checks
// here run before any network traffic a token could cause.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	// RFC 9068 §4: typ must be "at+jwt" (or "application/at+jwt"); this
	// keeps ID tokens and other JWTs signed by the same keys out.
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, fmt.Errorf("%w: typ is %q, not at+jwt", ErrInvalid, clip(typ))
	}
	// RFC 7515 §4.1.11: extensions we do not understand must be refused.
	if _, ok := t.Header["crit"]; ok {
		return nil, fmt.Errorf("%w: unsupported crit header", ErrInvalid)
	}
	// Keys come only from the configured JWKS; jku, jwk and x5u headers are
	// ignored on purpose.
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid in header", ErrInvalid)
	}
	alg := t.Method.Alg()

	keys, err := v.keys.keysFor(ctx, kid)
	if err != nil {
		return nil, err
	}
	// The key must be of the type the alg needs: an RSA key for RS256, an
	// Ed25519 key for EdDSA. golang-jwt would refuse a mismatch too, but we
	// do not rely on that.
	for _, k := range keys {
		if k.Algorithm != alg {
			continue
		}
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			if alg == "RS256" {
				return pub, nil
			}
		case ed25519.PublicKey:
			if alg == "EdDSA" {
				return pub, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: key %q cannot verify %s", ErrInvalid, clip(kid), alg)
}

// classify maps a golang-jwt error to our sentinels, keeping it wrapped.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenInvalidIssuer) &&
		!errors.Is(err, jwt.ErrTokenInvalidAudience) && !errors.Is(err, jwt.ErrTokenRequiredClaimMissing) &&
		!errors.Is(err, jwt.ErrTokenUsedBeforeIssued) && !errors.Is(err, jwt.ErrTokenNotValidYet):
		// Only "expired" when nothing else is wrong: a client told its token
		// expired will refresh, which does not help with a wrong audience.
		return fmt.Errorf("%w: %w", ErrExpired, err)
	default:
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
}

// accessTokenClaims is the RFC 9068 payload as golang-jwt decodes it.
type accessTokenClaims struct {
	jwt.RegisteredClaims
	ClientID  string `json:"client_id"`
	SessionID string `json:"sid"`
	Scope     string `json:"scope"`
}

// Validate adds the claims RFC 9068 §2.2 requires and golang-jwt does not
// check; the parser calls it after its own checks.
func (c accessTokenClaims) Validate() error {
	var missing []string
	if c.Subject == "" {
		missing = append(missing, "sub")
	}
	if c.ID == "" {
		missing = append(missing, "jti")
	}
	if c.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if c.IssuedAt == nil {
		missing = append(missing, "iat")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", jwt.ErrTokenRequiredClaimMissing, strings.Join(missing, ", "))
	}
	return nil
}

// jwksCache holds the issuer's public keys. A fetch happens when the cache is
// cold, when it is older than the JWKS's max-age (revalidated with the ETag),
// and when a token names an unknown kid and the last fetch started at least
// refetchInterval ago. Callers that need a fetch while one is running wait
// for that one instead of starting another.
type jwksCache struct {
	url             string
	client          *http.Client
	logger          *slog.Logger
	now             func() time.Time
	refetchInterval time.Duration
	fetchTimeout    time.Duration

	mu       sync.Mutex
	set      jose.JSONWebKeySet // usable keys only; see usableKey
	loaded   bool               // set holds a JWKS we fetched
	etag     string             // validator of set, for If-None-Match
	staleAt  time.Time          // revalidate from then on
	fetchAt  time.Time          // start of the last fetch, whatever its cause
	lastErr  error              // last fetch error, for ErrKeysUnavailable
	inflight *fetchCall         // the fetch in progress, if any
	onWait   func()             // test hook: called when a caller starts waiting
}

// fetchCall is one JWKS fetch that any number of callers can wait for.
type fetchCall struct {
	done chan struct{} // closed when err is set and the cache updated
	err  error
}

// keysFor returns the usable keys whose kid is kid.
func (c *jwksCache) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	// 1. Cold or stale cache: fetch (or join the fetch in flight) first. A
	// failed fetch is logged by the fetcher; we go on with what we hold.
	c.mu.Lock()
	var call *fetchCall
	if !c.loaded || !c.now().Before(c.staleAt) {
		call = c.startLocked(ctx)
	}
	c.mu.Unlock()
	if call != nil {
		_ = c.wait(ctx, call)
	}

	// 2. Look the kid up.
	c.mu.Lock()
	keys := c.set.Key(kid)
	// 3. Unknown kid: maybe a key was published since we fetched. Wait for
	// the fetch in flight if there is one; else refetch, unless the last
	// fetch started less than refetchInterval ago: that set is as current as
	// we need, and a flood of made-up kids then costs the issuer at most one
	// request per interval.
	var miss *fetchCall
	if len(keys) == 0 && call == nil {
		switch {
		case c.inflight != nil:
			miss = c.inflight
		case !c.now().Before(c.fetchAt.Add(c.refetchInterval)):
			miss = c.startLocked(ctx)
		}
	}
	c.mu.Unlock()
	if miss != nil {
		_ = c.wait(ctx, miss)
		c.mu.Lock()
		keys = c.set.Key(kid)
		c.mu.Unlock()
	}

	if len(keys) > 0 {
		return keys, nil
	}
	c.mu.Lock()
	loaded, lastErr := c.loaded, c.lastErr
	c.mu.Unlock()
	if !loaded {
		if err := ctx.Err(); err != nil {
			lastErr = err
		}
		if lastErr == nil {
			lastErr = errors.New("no JWKS loaded yet")
		}
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, lastErr)
	}
	return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, clip(kid))
}

// startLocked returns the fetch in flight, starting one if there is none.
// c.mu must be held. The fetch runs in its own goroutine with its own
// timeout, so a caller that gives up does not cancel it for the others.
func (c *jwksCache) startLocked(ctx context.Context) *fetchCall {
	if c.inflight != nil {
		return c.inflight
	}
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	c.fetchAt = c.now()
	etag := ""
	if c.loaded {
		etag = c.etag
	}
	go c.fetch(context.WithoutCancel(ctx), call, etag)
	return call
}

// wait blocks until call is done or ctx ends.
func (c *jwksCache) wait(ctx context.Context, call *fetchCall) error {
	if c.onWait != nil {
		c.onWait()
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("wait for JWKS: %w", ctx.Err())
	}
}

// fetch runs one request and updates the cache under the lock.
func (c *jwksCache) fetch(ctx context.Context, call *fetchCall, etag string) {
	ctx, cancel := context.WithTimeout(ctx, c.fetchTimeout)
	defer cancel()
	res, err := c.get(ctx, etag)

	c.mu.Lock()
	now := c.now()
	switch {
	case err != nil:
		// Keep the keys we hold: an issuer outage must not become ours. Try
		// again after refetchInterval rather than on every request.
		call.err = fmt.Errorf("fetch JWKS %s: %w", c.url, err)
		c.lastErr = call.err
		c.staleAt = now.Add(c.refetchInterval)
		c.logger.Warn("JWKS fetch failed; verifying with the cached keys",
			"jwks_url", c.url, "err", err, "cached_keys", len(c.set.Keys))
	case res.notModified:
		c.staleAt = now.Add(res.maxAge)
		c.logger.Debug("JWKS not modified", "jwks_url", c.url, "max_age", res.maxAge.String())
	default:
		c.set, c.etag, c.loaded, c.lastErr = res.set, res.etag, true, nil
		c.staleAt = now.Add(res.maxAge)
		c.logger.Info("JWKS loaded", "jwks_url", c.url, "keys", len(res.set.Keys),
			"kids", kids(res.set), "max_age", res.maxAge.String())
	}
	c.inflight = nil
	c.mu.Unlock()
	close(call.done)
}

// fetchResult is one JWKS response.
type fetchResult struct {
	set         jose.JSONWebKeySet
	etag        string
	maxAge      time.Duration
	notModified bool
}

// get requests the JWKS, conditionally when etag is set.
func (c *jwksCache) get(ctx context.Context, etag string) (fetchResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fetchResult{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fetchResult{}, err
	}
	defer resp.Body.Close()

	maxAge := cacheMaxAge(resp.Header)
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return fetchResult{notModified: true, maxAge: maxAge}, nil
	case resp.StatusCode != http.StatusOK:
		return fetchResult{}, fmt.Errorf("unexpected status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fetchResult{}, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fetchResult{}, fmt.Errorf("body larger than %d bytes", maxJWKSBytes)
	}
	set, err := parseJWKS(body, c.logger)
	if err != nil {
		return fetchResult{}, err
	}
	return fetchResult{set: set, etag: resp.Header.Get("ETag"), maxAge: maxAge}, nil
}

// parseJWKS decodes a JWK Set (RFC 7517 §5) and keeps the keys we can use.
// Each key is decoded on its own so that one we do not understand is skipped
// (RFC 7517 §5 says to ignore such keys) instead of failing the set.
func parseJWKS(body []byte, logger *slog.Logger) (jose.JSONWebKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("decode JWKS: %w", err)
	}
	if doc.Keys == nil {
		return jose.JSONWebKeySet{}, errors.New("decode JWKS: no keys member")
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(doc.Keys))}
	for i, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			logger.Debug("JWKS: skipping key", "index", i, "reason", err.Error())
			continue
		}
		if reason := usableKey(&k); reason != "" {
			logger.Debug("JWKS: skipping key", "index", i, "kid", clip(k.KeyID), "reason", reason)
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// usableKey says why k cannot verify tokend tokens, or returns "" and sets
// k.Algorithm when it is missing (a key without alg is allowed by RFC 7517;
// we then tie it to the one alg its type supports).
func usableKey(k *jose.JSONWebKey) string {
	if !k.IsPublic() {
		return "not a public key"
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Sprintf("use is %q, not sig", clip(k.Use))
	}
	if k.KeyID == "" {
		return "no kid"
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if k.Algorithm != "" && k.Algorithm != "RS256" {
			return fmt.Sprintf("alg %q is not supported", clip(k.Algorithm))
		}
		if bits := pub.N.BitLen(); bits < minRSABits {
			return fmt.Sprintf("RSA key of %d bits is too small", bits)
		}
		k.Algorithm = "RS256"
	case ed25519.PublicKey:
		if k.Algorithm != "" && k.Algorithm != "EdDSA" {
			return fmt.Sprintf("alg %q is not supported", clip(k.Algorithm))
		}
		k.Algorithm = "EdDSA"
	default:
		return fmt.Sprintf("key type %T is not supported", k.Key)
	}
	return ""
}

// cacheMaxAge reads Cache-Control: max-age, bounded to [30s, 24h], 5m when
// absent or unreadable. no-cache and no-store mean the lower bound: we still
// cache a little, or every request would hit the issuer.
func cacheMaxAge(h http.Header) time.Duration {
	age := defaultCacheAge
	for _, line := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache", "no-store":
				return minCacheAge
			case "max-age":
				secs, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(value), `"`), 10, 64)
				if err != nil || secs < 0 {
					continue
				}
				if secs > int64(maxCacheAge/time.Second) {
					secs = int64(maxCacheAge / time.Second)
				}
				age = time.Duration(secs) * time.Second
			}
		}
	}
	return min(max(age, minCacheAge), maxCacheAge)
}

// kids lists the key ids of set, for logs.
func kids(set jose.JSONWebKeySet) []string {
	out := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, clip(k.KeyID))
	}
	return out
}

// clip shortens attacker-controlled strings before they reach a log line.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
