// Package authorize is the authorization endpoint's domain (RFC 6749 §4.1,
// OpenID Connect Core §3.1, RFC 7636): validating an authorization request
// against its client, deciding whether the browser's sign-in session can
// answer it or the user must sign in first, carrying the request across
// the login form (sealed, so no row is written for a visitor who never
// signs in), and issuing and redeeming single-use authorization codes.
package authorize

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/store"
)

// Request is a validated authorization request.
type Request struct {
	ClientID      string `json:"client_id"`
	RedirectURI   string `json:"redirect_uri"`
	Scope         string `json:"scope,omitempty"`
	State         string `json:"state,omitempty"`
	Nonce         string `json:"nonce,omitempty"`
	CodeChallenge string `json:"code_challenge,omitempty"`
	Prompt        string `json:"prompt,omitempty"`
	// MaxAge is max_age in seconds; -1 when absent.
	MaxAge    int64  `json:"max_age"`
	LoginHint string `json:"login_hint,omitempty"`
	// ACRValues is acr_values as sent (space-separated, in order of
	// preference; OIDC Core §3.1.2.1).
	ACRValues string `json:"acr_values,omitempty"`
	// Return, when set, makes this a sign-in for one of tokend's own pages
	// (the account page) rather than for a client: after the sign-in the
	// browser goes to this path. Only tokend's code sets it.
	Return string `json:"return,omitempty"`
}

// AccountRequest is the sign-in that tokend's own page at path asks for.
func AccountRequest(path string) Request { return Request{Return: path, MaxAge: -1} }

// PageError is an authorization request that cannot be answered at its
// redirect URI (an unknown client, a redirect URI not registered for it):
// tokend shows it as a page and never redirects (RFC 6749 §4.1.2.1).
type PageError struct{ Description string }

func (e *PageError) Error() string { return e.Description }

// RedirectError is an error to send back to the client's (verified)
// redirect URI, with the request's state.
type RedirectError struct {
	Err         *oauth.Error
	RedirectURI string
	State       string
}

func (e *RedirectError) Error() string { return e.Err.Error() }

// Unwrap exposes the OAuth error.
func (e *RedirectError) Unwrap() error { return e.Err }

// Lengths bound what a request may carry into a page and a sealed form.
const (
	maxParam     = 512
	maxStateLen  = 2048
	challengeLen = 43 // base64url of a SHA-256
)

var challengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// Parse validates raw authorization parameters against client (nil when
// client_id names no client). Errors are *PageError or *RedirectError.
func Parse(params url.Values, client *store.Client) (Request, error) {
	for k, v := range params {
		if len(v) > 1 {
			if k == "client_id" || k == "redirect_uri" {
				return Request{}, &PageError{Description: "the " + k + " parameter is repeated"}
			}
		}
	}
	if client == nil {
		return Request{}, &PageError{Description: "the application that sent you here is not registered with this server (unknown client_id)"}
	}
	redirect := params.Get("redirect_uri")
	if redirect == "" {
		return Request{}, &PageError{Description: "the application sent no redirect_uri"}
	}
	if !clients.RedirectURIAllowed(*client, redirect) {
		return Request{}, &PageError{Description: "the redirect_uri is not registered for this application"}
	}
	state := params.Get("state")
	fail := func(code, desc string) (Request, error) {
		return Request{}, &RedirectError{Err: &oauth.Error{Code: code, Description: desc}, RedirectURI: redirect, State: truncate(state, maxStateLen)}
	}
	for k, v := range params {
		if len(v) > 1 {
			return fail(oauth.CodeInvalidRequest, "parameter "+printable(k)+" is repeated")
		}
	}
	switch {
	case len(state) > maxStateLen:
		return fail(oauth.CodeInvalidRequest, "state is longer than 2048 bytes")
	case !store.Storable(state):
		return fail(oauth.CodeInvalidRequest, "state is not text")
	}
	switch rt := params.Get("response_type"); rt {
	case "code":
	case "":
		return fail(oauth.CodeInvalidRequest, "response_type is required")
	default:
		return fail(oauth.CodeUnsupportedResponseType, "only response_type=code is supported")
	}
	if rm := params.Get("response_mode"); rm != "" && rm != "query" {
		return fail(oauth.CodeInvalidRequest, "only response_mode=query is supported")
	}
	if !clients.Allows(*client, oauth.GrantAuthorizationCode) {
		return fail(oauth.CodeUnauthorizedClient, "this client may not use the authorization code flow")
	}
	// OIDC Core §3.1.2.6: request objects are not supported.
	if params.Has("request") {
		return fail("request_not_supported", "request objects are not supported")
	}
	if params.Has("request_uri") {
		return fail("request_uri_not_supported", "request_uri is not supported")
	}
	r := Request{ClientID: client.ID, RedirectURI: redirect, State: state, MaxAge: -1}
	scope, ok := oauth.ParseScope(params.Get("scope"))
	if !ok {
		return fail(oauth.CodeInvalidScope, "unknown scope")
	}
	if !oauth.Allowed(scope, client.Scopes) {
		return fail(oauth.CodeInvalidScope, "this client may not be granted that scope")
	}
	r.Scope = scope
	for _, p := range []struct {
		name string
		into *string
	}{{"nonce", &r.Nonce}, {"login_hint", &r.LoginHint}} {
		v := params.Get(p.name)
		if len(v) > maxParam || !store.Storable(v) {
			return fail(oauth.CodeInvalidRequest, p.name+" is too long or not text")
		}
		*p.into = v
	}
	challenge, method := params.Get("code_challenge"), params.Get("code_challenge_method")
	switch {
	case challenge == "" && clients.Public(*client):
		return fail(oauth.CodeInvalidRequest, "PKCE is required: send code_challenge with code_challenge_method=S256")
	case challenge == "" && method != "":
		return fail(oauth.CodeInvalidRequest, "code_challenge_method without code_challenge")
	case challenge != "" && method != "S256":
		return fail(oauth.CodeInvalidRequest, "code_challenge_method must be S256 (plain is not accepted)")
	case challenge != "" && !challengePattern.MatchString(challenge):
		return fail(oauth.CodeInvalidRequest, "code_challenge must be the 43-character base64url SHA-256 of the verifier")
	}
	r.CodeChallenge = challenge
	for _, p := range strings.Fields(params.Get("prompt")) {
		switch p {
		case oauth.PromptNone, oauth.PromptLogin:
			if r.Prompt != "" && r.Prompt != p {
				return fail(oauth.CodeInvalidRequest, "prompt=none cannot be combined with another value")
			}
			r.Prompt = p
		default:
			return fail(oauth.CodeInvalidRequest, "prompt may be none or login")
		}
	}
	if v := params.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 10*365*24*3600 {
			return fail(oauth.CodeInvalidRequest, "max_age must be a number of seconds")
		}
		r.MaxAge = n
	}
	if v := params.Get("acr_values"); v != "" {
		if len(v) > maxParam || !store.Storable(v) || len(strings.Fields(v)) > 10 {
			return fail(oauth.CodeInvalidRequest, "acr_values is too long or not text")
		}
		r.ACRValues = strings.Join(strings.Fields(v), " ")
	}
	return r, nil
}

// RequiredACR is the authentication context class r demands: the first of
// its acr_values that tokend issues (they are in order of preference), or
// "" when it names none. Values tokend does not know are ignored, as OIDC
// Core §3.1.2.1 lets an OP do: the ID token's acr says what was done.
func (r Request) RequiredACR() string {
	for _, v := range strings.Fields(r.ACRValues) {
		if slices.Contains(oauth.ACRValues, v) {
			return v
		}
	}
	return ""
}

// NeedsStepUp reports whether the sign-in session si is live enough for r
// (NeedsLogin is false) but weaker than the acr r demands: the user proves a
// second factor, without their password again.
func NeedsStepUp(r Request, si *store.SignIn) bool {
	return si != nil && r.RequiredACR() == oauth.ACR2 && oauth.ACROf(si.AMR) != oauth.ACR2
}

// NeedsLogin reports whether the user must sign in (again) to answer r with
// the sign-in session si (nil when there is none): there is none, or
// prompt=login, or it is older than max_age.
func NeedsLogin(r Request, si *store.SignIn, now time.Time) bool {
	switch {
	case si == nil, r.Prompt == oauth.PromptLogin:
		return true
	case r.MaxAge >= 0:
		return now.Sub(si.AuthTime) > time.Duration(r.MaxAge)*time.Second
	}
	return false
}

// Params returns r as authorization parameters (to validate it again).
func (r Request) Params() url.Values {
	v := url.Values{"response_type": {"code"}, "client_id": {r.ClientID}, "redirect_uri": {r.RedirectURI}}
	for k, x := range map[string]string{"scope": r.Scope, "state": r.State, "nonce": r.Nonce, "prompt": r.Prompt,
		"login_hint": r.LoginHint, "code_challenge": r.CodeChallenge, "acr_values": r.ACRValues} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if r.CodeChallenge != "" {
		v.Set("code_challenge_method", "S256")
	}
	if r.MaxAge >= 0 {
		v.Set("max_age", strconv.FormatInt(r.MaxAge, 10))
	}
	return v
}

// ErrorRedirect is the redirect URI with an error response: error,
// error_description, state and iss (RFC 6749 §4.1.2.1, RFC 9207).
func ErrorRedirect(redirect, issuer, state string, e *oauth.Error) string {
	v := url.Values{"error": {e.Code}, "iss": {issuer}}
	if e.Description != "" {
		v.Set("error_description", e.Description)
	}
	if state != "" {
		v.Set("state", state)
	}
	return withQuery(redirect, v)
}

// CodeRedirect is the redirect URI with a code response.
func CodeRedirect(redirect, issuer, state, code string) string {
	v := url.Values{"code": {code}, "iss": {issuer}}
	if state != "" {
		v.Set("state", state)
	}
	return withQuery(redirect, v)
}

// withQuery adds v to uri's query, keeping what the registered URI has.
func withQuery(uri string, v url.Values) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri // registered URIs parse; this is never reached
	}
	q := u.Query()
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		q[k] = v[k]
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// printable shortens a client-supplied name for a description.
func printable(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
