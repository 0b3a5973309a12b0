// Package oauth is tokend's OAuth 2.0 and OpenID Connect vocabulary: the
// names of grant types, scopes, response types, PKCE methods and signing
// algorithms, the claims tokend issues, scope parsing, and the RFC 6749 §5.2
// error type that domain packages return without knowing HTTP.
//
// It is a leaf. Each list here is the one list of its vocabulary: client
// validation checks names against it and discovery publishes what is
// registered from it, so nothing is advertised that tokend does not do.
package oauth

import "slices"

// Grant types (RFC 6749 §4, §6).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantPassword          = "password"
	GrantClientCredentials = "client_credentials"
)

// GrantTypes are the grant type names a client may be registered with.
var GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantPassword, GrantClientCredentials}

// Scopes.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeEmail   = "email"
)

// Scopes are the scopes a client may request (published in discovery).
var Scopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail}

// DefaultScopes is what a client may be granted when registered without
// --scope.
var DefaultScopes = []string{ScopeEmail, ScopeOpenID, ScopeProfile}

// Signing algorithms of access and ID tokens.
const (
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// SigningAlgs are the algorithms tokend signs with.
var SigningAlgs = []string{AlgRS256, AlgEdDSA}

// The authorization endpoint's vocabulary (RFC 6749 §3.1.1, RFC 7636,
// OAuth 2.0 Multiple Response Type Encoding Practices).
var (
	ResponseTypes        = []string{"code"}
	ResponseModes        = []string{"query"}
	CodeChallengeMethods = []string{"S256"}
)

// Prompt values of the authorization request that tokend honours (OIDC
// Core §3.1.2.1).
const (
	PromptNone  = "none"
	PromptLogin = "login"
)

// Authentication method references (RFC 8176) in ID tokens' amr.
const (
	AMRPassword    = "pwd"
	AMROTP         = "otp"
	AMRHardwareKey = "hwk"
	AMRSoftwareKey = "swk"
	AMRUser        = "user"
	AMRMFA         = "mfa"
)

// Authentication context classes (acr) of ID tokens, after the NIST SP
// 800-63B assurance levels they approach: one factor, and two (amr has
// "mfa"). A relying party asks for ACR2 with acr_values=aal2.
const (
	ACR1 = "aal1"
	ACR2 = "aal2"
)

// ACRValues are the acr values tokend issues, weakest first.
var ACRValues = []string{ACR1, ACR2}

// ACROf is the authentication context class of the methods amr: ACR2 when
// they prove two factors ("mfa"), ACR1 otherwise.
func ACROf(amr []string) string {
	if slices.Contains(amr, AMRMFA) {
		return ACR2
	}
	return ACR1
}

// IDTokenClaims are the claims of ID tokens and userinfo responses
// (published in discovery as claims_supported).
var IDTokenClaims = []string{"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "amr",
	"acr", "email", "email_verified"}
