// Package clients owns the client model: what a client of each kind may do
// (grants, scopes), how its registration is validated (redirect URIs per
// RFC 9700 §4.1.3 and RFC 8252 §7), how a presented redirect URI is matched,
// and a short-lived cache of clients for the hot paths. The command line
// creates, lists and deletes clients through it, and the token and
// authorization endpoints read them through it.
package clients

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
)

// Client is a registered client.
type Client = store.Client

// ErrNotFound is an unknown client id.
var ErrNotFound = errors.New("no such client")

// ValidationError is a registration that does not hold together.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// idPattern keeps client ids plain: they appear in tokens, logs and URLs.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Spec is a client registration as an operator writes it.
type Spec struct {
	ID                     string
	Kind                   store.ClientKind
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Grants                 []string // empty: the kind's defaults
	Scopes                 []string // empty: oauth.DefaultScopes (none for client_credentials only)
	Audience               []string
	Alg                    string
	// JWKS is a server client's public keys for private_key_jwt (a JWK Set
	// as JSON); without it a server client gets a secret.
	JWKS []byte
}

// grantsOf are the grants each kind may be registered with.
var grantsOf = map[store.ClientKind][]string{
	store.ClientWeb:    {oauth.GrantPassword, oauth.GrantRefreshToken},
	store.ClientNative: {oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantPassword},
	store.ClientServer: {oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantClientCredentials},
}

// defaultGrants are what a new client of a kind gets without --grant. A
// native client gets the password grant only when it is named (RFC 9700
// §2.4): it is kept for first-party migrations.
func defaultGrants(s Spec) []string {
	switch s.Kind {
	case store.ClientWeb:
		return []string{oauth.GrantPassword, oauth.GrantRefreshToken}
	case store.ClientNative:
		return []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
	}
	if len(s.RedirectURIs) > 0 {
		return []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
	}
	return nil
}

// Build validates s and returns the client to store, with defaults filled
// in.
func Build(s Spec, now time.Time) (Client, error) {
	if !idPattern.MatchString(s.ID) {
		return Client{}, invalid("id", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", s.ID)
	}
	if !s.Kind.Valid() {
		return Client{}, invalid("kind", "%q must be web, native or server", s.Kind)
	}
	if s.Alg != "" && !slices.Contains(oauth.SigningAlgs, s.Alg) {
		return Client{}, invalid("alg", "%q must be RS256 or EdDSA", s.Alg)
	}
	for _, a := range s.Audience {
		if strings.TrimSpace(a) == "" || strings.ContainsAny(a, " \t\r\n") {
			return Client{}, invalid("audience", "%q must be a non-empty value without spaces", a)
		}
	}
	grants := s.Grants
	if len(grants) == 0 {
		// A server client with neither a redirect URI nor a grant only
		// authenticates: a resource server introspecting tokens.
		grants = defaultGrants(s)
	}
	grants = sortedUnique(grants)
	for _, g := range grants {
		if !slices.Contains(oauth.GrantTypes, g) {
			return Client{}, invalid("grant", "%q is not a grant type (%s)", g, strings.Join(oauth.GrantTypes, ", "))
		}
		if !slices.Contains(grantsOf[s.Kind], g) {
			return Client{}, invalid("grant", "a %s client cannot use %s (it may use %s)", s.Kind, g, strings.Join(grantsOf[s.Kind], ", "))
		}
	}
	usesCode := slices.Contains(grants, oauth.GrantAuthorizationCode)
	if usesCode && len(s.RedirectURIs) == 0 {
		return Client{}, invalid("redirect-uri", "the authorization_code grant needs at least one --redirect-uri")
	}
	if !usesCode && len(s.RedirectURIs) > 0 {
		return Client{}, invalid("redirect-uri", "redirect URIs are for the authorization_code grant, which this client does not have")
	}
	for _, u := range s.RedirectURIs {
		if err := checkRedirectURI(u, s.Kind); err != nil {
			return Client{}, invalid("redirect-uri", "%v", err)
		}
	}
	for _, u := range s.PostLogoutRedirectURIs {
		if err := checkRedirectURI(u, s.Kind); err != nil {
			return Client{}, invalid("post-logout-redirect-uri", "%v", err)
		}
	}
	scopes := s.Scopes
	if len(scopes) == 0 && len(grants) > 0 && !(len(grants) == 1 && grants[0] == oauth.GrantClientCredentials) {
		scopes = oauth.DefaultScopes
	}
	scopes = sortedUnique(scopes)
	for _, sc := range scopes {
		if !oauth.ValidScopeToken(sc) {
			return Client{}, invalid("scope", "%q is not a scope (RFC 6749 §3.3: printable ASCII without spaces, quotes or backslashes)", sc)
		}
	}
	var jwks string
	if len(s.JWKS) > 0 {
		if s.Kind != store.ClientServer {
			return Client{}, invalid("jwks-file", "keys are for server clients (private_key_jwt); a %s client is public", s.Kind)
		}
		set, err := ParseJWKS(s.JWKS)
		if err != nil {
			return Client{}, invalid("jwks-file", "%v", err)
		}
		jwks = set
	}
	return Client{ID: s.ID, Kind: s.Kind, RedirectURIs: slices.Clone(s.RedirectURIs),
		PostLogoutRedirectURIs: slices.Clone(s.PostLogoutRedirectURIs), Grants: grants, Scopes: scopes,
		Audience: slices.Clone(s.Audience), Alg: s.Alg, CreatedAt: now, JWKS: jwks}, nil
}

func sortedUnique(l []string) []string {
	out := slices.Clone(l)
	slices.Sort(out)
	return slices.Compact(out)
}

// schemePattern is a URI scheme (RFC 3986 §3.1).
var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// checkRedirectURI validates a redirect URI for registration: absolute, no
// fragment (RFC 6749 §3.1.2), https — except http on a loopback IP literal
// (RFC 8252 §7.3) and, for native clients, a private-use scheme with a dot
// in it, reverse-DNS style (RFC 8252 §7.1).
func checkRedirectURI(raw string, kind store.ClientKind) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Scheme == "" || !schemePattern.MatchString(u.Scheme):
		return fmt.Errorf("%q is not an absolute URI", raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%q must not have a fragment", raw)
	case !store.Storable(raw) || strings.ContainsAny(raw, " \t\r\n"):
		return fmt.Errorf("%q holds characters a URI cannot", raw)
	case !portValid(u.Host):
		return fmt.Errorf("%q: the port must be 1-65535, in decimal without a leading zero", raw)
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case scheme == "http":
		if !isLoopbackIP(u.Hostname()) {
			return fmt.Errorf("%q: http is allowed only on a loopback IP (127.0.0.1 or [::1]); use https", raw)
		}
	case kind == store.ClientNative && strings.Contains(scheme, "."):
		// com.example.app:/callback
	case kind == store.ClientNative:
		return fmt.Errorf("%q: a private-use scheme must be reverse-DNS (com.example.app:/cb)", raw)
	default:
		return fmt.Errorf("%q: a %s client's redirect URI must be https (or http on a loopback IP)", raw, kind)
	}
	return nil
}

// isLoopbackIP is 127.0.0.1 or ::1 written as a literal (RFC 8252 §7.3:
// not "localhost", which a resolver or a firewall may redirect).
func isLoopbackIP(host string) bool { return host == "127.0.0.1" || host == "::1" }

// portValid reports whether the port of a URI's host[:port], if it has
// one, is 1-65535 written in decimal without a leading zero ("host:" with
// an empty port is not).
func portValid(hostport string) bool {
	i := strings.LastIndex(hostport, ":")
	if i < 0 || i < strings.LastIndex(hostport, "]") {
		return true
	}
	return decimalPort(hostport[i+1:])
}

// decimalPort reports whether p is a port number 1-65535 in decimal,
// without a sign or a leading zero.
func decimalPort(p string) bool {
	if len(p) == 0 || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// RedirectURIAllowed reports whether uri is one of c's redirect URIs, by
// exact string comparison (RFC 9700 §4.1.3), except that on a loopback IP
// over http any port matches a registered URI that is otherwise the same
// (RFC 8252 §7.3: native apps listen on an ephemeral port). A URI with a
// fragment, even an empty one, never matches (RFC 6749 §3.1.2).
func RedirectURIAllowed(c Client, uri string) bool { return matchURI(c.RedirectURIs, uri) }

// PostLogoutRedirectURIAllowed is RedirectURIAllowed for the URIs of
// RP-initiated logout.
func PostLogoutRedirectURIAllowed(c Client, uri string) bool {
	return matchURI(c.PostLogoutRedirectURIs, uri)
}

func matchURI(registered []string, uri string) bool {
	if uri == "" || strings.Contains(uri, "#") {
		return false
	}
	if slices.Contains(registered, uri) {
		return true
	}
	host, rest, ok := splitLoopback(uri)
	if !ok {
		return false
	}
	for _, r := range registered {
		if rh, rr, ok := splitLoopback(r); ok && rh == host && rr == rest && !strings.Contains(r, "#") {
			return true
		}
	}
	return false
}

// splitLoopback splits a URI over http on a loopback IP literal into the
// host and what follows the port (the path and query, compared as written,
// as are the scheme and host: no case folding, no normalising). ok is false
// for any other URI, and for a port that is not 1-65535 in decimal without
// a leading zero; a URI without a port is fine.
func splitLoopback(raw string) (host, rest string, ok bool) {
	after, ok := strings.CutPrefix(raw, "http://")
	if !ok {
		return "", "", false
	}
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	authority, rest := after[:end], after[end:]
	switch {
	case strings.HasPrefix(authority, "127.0.0.1"):
		host = "127.0.0.1"
	case strings.HasPrefix(authority, "[::1]"):
		host = "[::1]"
	default:
		return "", "", false
	}
	if port := authority[len(host):]; port != "" {
		p, colon := strings.CutPrefix(port, ":")
		if !colon || !decimalPort(p) {
			return "", "", false
		}
	}
	return host, rest, true
}

// Allows reports whether c may use grant.
func Allows(c Client, grant string) bool { return slices.Contains(c.Grants, grant) }

// KindAllows reports whether clients of kind can use grant at all.
func KindAllows(kind store.ClientKind, grant string) bool {
	return slices.Contains(grantsOf[kind], grant)
}

// Public reports whether c cannot keep a secret (PKCE is then mandatory).
func Public(c Client) bool { return c.Kind != store.ClientServer }

// Store is what the clients package needs from storage.
type Store interface {
	CreateClient(ctx context.Context, c store.Client, ev *store.AuditEvent) error
	ClientByID(ctx context.Context, id string) (store.Client, error)
	ListClients(ctx context.Context) ([]store.Client, error)
	DeleteClient(ctx context.Context, id string, at time.Time, ev *store.AuditEvent) error
	RotateClientSecret(ctx context.Context, r store.SecretRotation, ev *store.AuditEvent) error
	UseClientAssertion(ctx context.Context, jtiHash, clientID string, expires time.Time) error
}

// Service reads and manages clients.
type Service struct {
	store  Store
	hasher Hasher
	ttl    time.Duration
	mu     sync.Mutex
	cache  map[string]cached
}

type cached struct {
	c       Client
	expires time.Time
}

// CacheTTL is how long a client read from the database is served from
// memory: an edit through the CLI reaches every instance within it.
const CacheTTL = 30 * time.Second

// New returns a Service on s, hashing secrets with h.
func New(s Store, h Hasher) *Service {
	return &Service{store: s, hasher: h, ttl: CacheTTL, cache: map[string]cached{}}
}

// Get returns a client by id; ErrNotFound for an unknown (or empty) id. A
// new client is visible at once; the cache only serves clients it has seen.
func (s *Service) Get(ctx context.Context, id string) (Client, error) {
	if id == "" {
		return Client{}, ErrNotFound
	}
	now := time.Now() // the cache ages in real time, independent of test clocks
	s.mu.Lock()
	e, ok := s.cache[id]
	s.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.c, nil
	}
	return s.load(ctx, id, now)
}

// Fresh returns a client as the store holds it now, bypassing the cache
// (and refreshing it): for a check that failed against a cached copy that
// another instance may have made stale (a secret rotated there).
func (s *Service) Fresh(ctx context.Context, id string) (Client, error) {
	if id == "" {
		return Client{}, ErrNotFound
	}
	return s.load(ctx, id, time.Now())
}

// load reads a client from the store into the cache.
func (s *Service) load(ctx context.Context, id string, now time.Time) (Client, error) {
	c, err := s.store.ClientByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.mu.Lock()
		delete(s.cache, id)
		s.mu.Unlock()
		return Client{}, ErrNotFound
	}
	if err != nil {
		return Client{}, err
	}
	s.mu.Lock()
	if len(s.cache) > 10000 {
		clear(s.cache)
	}
	s.cache[id] = cached{c: c, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	return c, nil
}

// Create validates and stores a new client. A server client without keys
// gets a secret, returned once: only its hash is stored.
func (s *Service) Create(ctx context.Context, spec Spec, now time.Time, ev func(Client) *store.AuditEvent) (Client, secret.String, error) {
	c, err := Build(spec, now)
	if err != nil {
		return Client{}, "", err
	}
	var sec secret.String
	if c.Kind == store.ClientServer && c.JWKS == "" {
		sec = NewSecret()
		c.SecretHash = s.hasher.Hash(sec)
	}
	var e *store.AuditEvent
	if ev != nil {
		e = ev(c)
	}
	if err := s.store.CreateClient(ctx, c, e); err != nil {
		return Client{}, "", err
	}
	return c, sec, nil
}

// ErrNoSecret: the client authenticates without a secret (a public client,
// or a server client with keys).
var ErrNoSecret = errors.New("this client has no secret")

// RotateSecret gives a server client a new secret; the current one keeps
// working for grace.
func (s *Service) RotateSecret(ctx context.Context, id string, grace time.Duration, now time.Time, ev *store.AuditEvent) (secret.String, error) {
	c, err := s.store.ClientByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if c.Kind != store.ClientServer || c.SecretHash == "" {
		return "", ErrNoSecret
	}
	sec := NewSecret()
	err = s.store.RotateClientSecret(ctx, store.SecretRotation{ClientID: id, NewHash: s.hasher.Hash(sec), At: now, Grace: now.Add(grace)}, ev)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	s.forget(id)
	return sec, nil
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// List lists clients by id.
func (s *Service) List(ctx context.Context) ([]Client, error) { return s.store.ListClients(ctx) }

// Delete deletes a client and revokes its sessions.
func (s *Service) Delete(ctx context.Context, id string, at time.Time, ev *store.AuditEvent) error {
	err := s.store.DeleteClient(ctx, id, at, ev)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
	return err
}

// DemoSpecs are the clients dev mode seeds (and end-to-end tests start
// with): web, a cookie-flow client; and mobile, a native client with the
// authorization code flow on http://127.0.0.1/callback (any port) and, for
// the README's first steps, the password grant.
func DemoSpecs() []Spec {
	return []Spec{
		{ID: "web", Kind: store.ClientWeb},
		{ID: "mobile", Kind: store.ClientNative, RedirectURIs: []string{"http://127.0.0.1/callback"},
			PostLogoutRedirectURIs: []string{"http://127.0.0.1/signed-out"},
			Grants:                 []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken, oauth.GrantPassword}},
	}
}
