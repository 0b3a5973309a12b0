package oauth

import (
	"slices"
	"strings"
)

// Bounds of a scope parameter.
const (
	maxScopeToken  = 128
	maxScopeTokens = 64
)

// ValidScopeToken reports whether sc is a scope-token (RFC 6749 §3.3:
// printable ASCII but space, '"' and '\\'), of at most 128 characters.
// Besides the OpenID Connect scopes tokend understands (Scopes), a client
// may be registered with API scopes of its own ("invoices:read"), which
// tokend grants as registered and puts in the access token's scope.
func ValidScopeToken(sc string) bool {
	if sc == "" || len(sc) > maxScopeToken {
		return false
	}
	for i := 0; i < len(sc); i++ {
		c := sc[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ParseScope validates a space-separated scope list (each a
// ValidScopeToken, at most 64) and returns it de-duplicated in a canonical
// (sorted) order, or false. Whether a client may be granted it is
// Allowed's question.
func ParseScope(s string) (string, bool) {
	if strings.TrimSpace(s) == "" {
		return "", true
	}
	var out []string
	for _, sc := range strings.Fields(s) {
		if !ValidScopeToken(sc) {
			return "", false
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) > maxScopeTokens {
		return "", false
	}
	slices.Sort(out)
	return strings.Join(out, " "), true
}

// Narrow returns requested (parsed) if it is a subset of granted, or
// granted when requested is empty (RFC 6749 §6).
func Narrow(granted, requested string) (string, bool) {
	req, ok := ParseScope(requested)
	if !ok {
		return "", false
	}
	if req == "" {
		return granted, true
	}
	have := strings.Fields(granted)
	for _, sc := range strings.Fields(req) {
		if !slices.Contains(have, sc) {
			return "", false
		}
	}
	return req, true
}

// HasScope reports whether the space-separated scope contains sc.
func HasScope(scope, sc string) bool { return slices.Contains(strings.Fields(scope), sc) }

// Allowed reports whether every scope of the parsed scope is in allowed.
func Allowed(scope string, allowed []string) bool {
	for _, sc := range strings.Fields(scope) {
		if !slices.Contains(allowed, sc) {
			return false
		}
	}
	return true
}
