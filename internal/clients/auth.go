package clients

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
)

// Credentials are what a request at the token, revocation or introspection
// endpoint presents to authenticate its client (RFC 6749 §2.3, RFC 7523
// §2.2), parsed once by the HTTP layer.
type Credentials struct {
	// Form holds client_id, client_secret, client_assertion_type and
	// client_assertion.
	Form url.Values
	// Basic is set when an Authorization: Basic header was sent;
	// BasicID and BasicSecret are its values, form-decoded (RFC 6749
	// §2.3.1). BasicMalformed marks a header that did not decode.
	Basic, BasicMalformed bool
	BasicID               string
	BasicSecret           secret.String
	// Address is the client's network address (for the brute-force
	// limits).
	Address string
}

// AuthError is a failed client authentication: 401 invalid_client, with
// WWW-Authenticate: Basic when Basic was tried (RFC 6749 §5.2). Reason is
// for the logs.
type AuthError struct {
	Basic  bool
	Reason string
}

func (e *AuthError) Error() string { return "client authentication failed: " + e.Reason }

// Method is a client authentication method. Each one is a file's worth of
// rules; the Authenticator picks the one a request uses.
type Method interface {
	// Name is the method's name in discovery (…_auth_methods_supported).
	Name() string
	// Present reports whether c carries this method's credentials.
	Present(c *Credentials) bool
	// Authenticate returns the client c proves, or an *AuthError.
	Authenticate(ctx context.Context, a *Authenticator, c *Credentials) (Client, error)
}

// Authenticator authenticates clients with its methods.
type Authenticator struct {
	Clients *Service
	Hasher  Hasher
	Limiter *throttle.Limiter
	Now     func() time.Time
	// Audiences are the values a private_key_jwt assertion's aud may hold:
	// the token endpoint's URL and the issuer (RFC 7523 §3).
	Audiences []string
	Methods   []Method
}

// MethodNames lists the methods (for discovery). public says whether "none"
// counts (it does not at the introspection endpoint).
func (a *Authenticator) MethodNames(public bool) []string {
	var out []string
	for _, m := range a.Methods {
		if m.Name() == "none" && !public {
			continue
		}
		out = append(out, m.Name())
	}
	return out
}

// ErrSeveralMethods: a request used more than one way to authenticate its
// client (RFC 6749 §2.3: it MUST NOT).
var ErrSeveralMethods = errors.New("more than one client authentication method in one request")

// ErrTwoClientIDs: the Authorization: Basic header and the body's client_id
// name different clients. The request is malformed (it names two clients),
// whatever the secret; it is refused before any secret is checked.
var ErrTwoClientIDs = errors.New("the client_id in the body differs from the client of the Authorization header")

// Authenticate returns the client c authenticates as. A request with no
// credentials at all is a public client naming itself by client_id, or by
// Basic with an empty secret.
func (a *Authenticator) Authenticate(ctx context.Context, c *Credentials) (Client, error) {
	if c.BasicMalformed {
		return Client{}, &AuthError{Basic: true, Reason: "malformed Basic credentials"}
	}
	if id := c.Form.Get("client_id"); c.Basic && id != "" && id != c.BasicID {
		return Client{}, ErrTwoClientIDs
	}
	var method Method
	for _, m := range a.Methods {
		if m.Present(c) {
			if method != nil {
				return Client{}, ErrSeveralMethods
			}
			method = m
		}
	}
	if method == nil {
		return Client{}, &AuthError{Reason: "no client credentials"}
	}
	client, err := method.Authenticate(ctx, a, c)
	if err != nil {
		return Client{}, err
	}
	// A client_id parameter beside other credentials must agree.
	if id := c.Form.Get("client_id"); id != "" && id != client.ID {
		return Client{}, &AuthError{Basic: c.Basic, Reason: "client_id differs from the authenticated client"}
	}
	return client, nil
}

// lookup reads a client for an authentication.
func (a *Authenticator) lookup(ctx context.Context, id string, basic bool) (Client, error) {
	c, err := a.Clients.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Client{}, &AuthError{Basic: basic, Reason: "unknown client"}
	}
	return c, err
}

// clientRules are the brute-force limits of a client's authentication:
// the same as an account's, with the client id in place of the email.
func clientRules(id, addr string) []throttle.Rule {
	return throttle.ClientRules(id, addr)
}

// guarded verifies a client's credential under the brute-force limits. A
// credential that verifies (a 256-bit secret, a signature by a registered
// key) is no guess, so it is answered without reading the counters: the
// common request costs no database round trip, and an attacker's guesses
// cannot lock the client itself out. A failure is refused with 429 while
// the client and address are locked, and counted.
func (a *Authenticator) guarded(ctx context.Context, c *Credentials, id string, basic bool, verify func() (Client, error)) (Client, error) {
	client, err := verify()
	var ae *AuthError
	if !errors.As(err, &ae) {
		return client, err
	}
	rules := clientRules(id, c.Address)
	if lerr := a.Limiter.Locked(ctx, rules...); lerr != nil {
		return Client{}, lerr
	}
	if ferr := a.Limiter.Failed(ctx, rules...); ferr != nil {
		return Client{}, ferr
	}
	return client, err
}

// None is a public client naming itself: client_id in the form, or HTTP
// Basic with an empty secret (what golang.org/x/oauth2 tries first).
type None struct{}

// Name implements Method.
func (None) Name() string { return "none" }

// Present implements Method.
func (None) Present(c *Credentials) bool {
	if c.Basic {
		return c.BasicSecret == ""
	}
	return c.Form.Get("client_id") != "" && !c.Form.Has("client_secret") && !c.Form.Has("client_assertion") &&
		!c.Form.Has("client_assertion_type")
}

// Authenticate implements Method.
func (None) Authenticate(ctx context.Context, a *Authenticator, c *Credentials) (Client, error) {
	id := c.Form.Get("client_id")
	if c.Basic {
		id = c.BasicID
	}
	client, err := a.lookup(ctx, id, c.Basic)
	if err != nil {
		return Client{}, err
	}
	if !Public(client) {
		return Client{}, &AuthError{Basic: c.Basic, Reason: "a confidential client sent no credentials"}
	}
	return client, nil
}

// SecretBasic is client_secret_basic: the id and secret in HTTP Basic,
// each form-urlencoded first (RFC 6749 §2.3.1).
type SecretBasic struct{}

// Name implements Method.
func (SecretBasic) Name() string { return "client_secret_basic" }

// Present implements Method.
func (SecretBasic) Present(c *Credentials) bool { return c.Basic && c.BasicSecret != "" }

// Authenticate implements Method.
func (SecretBasic) Authenticate(ctx context.Context, a *Authenticator, c *Credentials) (Client, error) {
	return a.secret(ctx, c, c.BasicID, c.BasicSecret, true)
}

// SecretPost is client_secret_post: client_id and client_secret in the form.
type SecretPost struct{}

// Name implements Method.
func (SecretPost) Name() string { return "client_secret_post" }

// Present implements Method.
func (SecretPost) Present(c *Credentials) bool { return c.Form.Has("client_secret") }

// Authenticate implements Method.
func (SecretPost) Authenticate(ctx context.Context, a *Authenticator, c *Credentials) (Client, error) {
	return a.secret(ctx, c, c.Form.Get("client_id"), secret.String(c.Form.Get("client_secret")), false)
}

func (a *Authenticator) secret(ctx context.Context, c *Credentials, id string, presented secret.String, basic bool) (Client, error) {
	if id == "" {
		return Client{}, &AuthError{Basic: basic, Reason: "no client_id"}
	}
	return a.guarded(ctx, c, id, basic, func() (Client, error) {
		client, err := a.lookup(ctx, id, basic)
		if err != nil {
			// Unknown: the same work as a wrong secret.
			a.Hasher.Verify(Client{SecretHash: "v1:x"}, presented, a.Now())
			return Client{}, err
		}
		if a.Hasher.Verify(client, presented, a.Now()) {
			return client, nil
		}
		// The client may come from this instance's cache, from before a
		// rotation made elsewhere (the CLI, another instance): a client that
		// switched to its new secret at once must not fail (and be locked
		// out) for the cache's lifetime. Check the store's copy once.
		if fresh, err := a.Clients.Fresh(ctx, id); err == nil && (fresh.SecretHash != client.SecretHash ||
			fresh.PreviousSecretHash != client.PreviousSecretHash) && a.Hasher.Verify(fresh, presented, a.Now()) {
			return fresh, nil
		}
		return Client{}, &AuthError{Basic: basic, Reason: "wrong client secret (or the client has none)"}
	})
}

// assertionType is RFC 7523 §2.2's client_assertion_type.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// MaxAssertionLife bounds how far in the future an assertion may expire.
const MaxAssertionLife = 5 * time.Minute

// PrivateKeyJWT is private_key_jwt (RFC 7523 §2.2, OIDC Core §9): a JWT the
// client signs with one of its registered keys; iss and sub are the client,
// aud the token endpoint or the issuer, exp within 5 minutes, jti single
// use across instances.
type PrivateKeyJWT struct{}

// Name implements Method.
func (PrivateKeyJWT) Name() string { return "private_key_jwt" }

// Present implements Method.
func (PrivateKeyJWT) Present(c *Credentials) bool {
	return c.Form.Has("client_assertion") || c.Form.Has("client_assertion_type")
}

type assertionClaims struct {
	jwt.RegisteredClaims
}

// Authenticate implements Method.
func (PrivateKeyJWT) Authenticate(ctx context.Context, a *Authenticator, c *Credentials) (Client, error) {
	if c.Form.Get("client_assertion_type") != assertionType {
		return Client{}, &AuthError{Reason: "client_assertion_type is not " + assertionType}
	}
	acceptEd25519()
	raw := c.Form.Get("client_assertion")
	if raw == "" || len(raw) > 8<<10 {
		return Client{}, &AuthError{Reason: "missing or oversized client_assertion"}
	}
	// The client is the assertion's sub (= iss), read before the signature
	// is checked only to find the keys to check it with.
	var unverified assertionClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil || unverified.Subject == "" {
		return Client{}, &AuthError{Reason: "client_assertion is not a JWT with a sub"}
	}
	id := unverified.Subject
	return a.guarded(ctx, c, id, false, func() (Client, error) {
		client, err := a.lookup(ctx, id, false)
		if err != nil {
			return Client{}, err
		}
		if client.JWKS == "" {
			return Client{}, &AuthError{Reason: "the client has no registered keys"}
		}
		var set jose.JSONWebKeySet
		if err := jsonUnmarshal(client.JWKS, &set); err != nil {
			return Client{}, fmt.Errorf("client %s: stored keys: %w", id, err)
		}
		now := a.Now()
		var claims assertionClaims
		_, err = jwt.NewParser(jwt.WithValidMethods(append([]string{"Ed25519"}, AssertionAlgs...)), jwt.WithIssuer(id), jwt.WithSubject(id),
			jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithLeeway(30*time.Second)).
			ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) { return keyFor(set, t) })
		if err != nil {
			return Client{}, &AuthError{Reason: "client_assertion: " + err.Error()}
		}
		if !slices.ContainsFunc(claims.Audience, func(aud string) bool { return slices.Contains(a.Audiences, aud) }) {
			return Client{}, &AuthError{Reason: "client_assertion aud is neither the token endpoint nor the issuer"}
		}
		if claims.ExpiresAt.Sub(now) > MaxAssertionLife {
			return Client{}, &AuthError{Reason: "client_assertion expires more than 5 minutes ahead"}
		}
		if claims.ID == "" {
			return Client{}, &AuthError{Reason: "client_assertion has no jti"}
		}
		sum := sha256.Sum256([]byte(id + "\x00" + claims.ID))
		err = a.Clients.store.UseClientAssertion(ctx, base64.RawURLEncoding.EncodeToString(sum[:]), id, claims.ExpiresAt.Time.Add(time.Minute))
		if errors.Is(err, store.ErrAlreadyExists) {
			return Client{}, &AuthError{Reason: "client_assertion replayed (its jti was used)"}
		}
		if err != nil {
			return Client{}, err
		}
		return client, nil
	})
}

// keyFor finds the registered key a token names (by kid, or the only key
// of its type) and checks that it fits the token's algorithm.
func keyFor(set jose.JSONWebKeySet, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	var candidates []jose.JSONWebKey
	if kid != "" {
		candidates = set.Key(kid)
	} else {
		candidates = set.Keys
	}
	want := t.Method.Alg()
	if want == "Ed25519" {
		want = "EdDSA"
	}
	for _, k := range candidates {
		if alg, err := algOf(k); err == nil && alg == want {
			return k.Key, nil
		}
	}
	return nil, errors.New("no registered key of the client signs with this kid and algorithm")
}

// ParseBasic decodes an Authorization header's Basic credentials, each part
// form-urlencoded (RFC 6749 §2.3.1). ok is false for a header that is not
// Basic; malformed is true for a Basic header that does not decode.
func ParseBasic(header string) (id string, sec secret.String, ok, malformed bool) {
	scheme, rest, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", true, true
	}
	u, p, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", true, true
	}
	uid, err1 := url.QueryUnescape(u)
	pw, err2 := url.QueryUnescape(p)
	if err1 != nil || err2 != nil || uid == "" || !store.Storable(uid) {
		return "", "", true, true
	}
	return uid, secret.String(pw), true, false
}
