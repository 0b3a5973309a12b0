package oauth

import (
	"slices"
	"strings"
)

// ParseScope validates a space-separated scope list against Scopes and
// returns it de-duplicated in a canonical (sorted) order, or false for an
// unknown scope.
func ParseScope(s string) (string, bool) {
	if strings.TrimSpace(s) == "" {
		return "", true
	}
	var out []string
	for _, sc := range strings.Fields(s) {
		if !slices.Contains(Scopes, sc) {
			return "", false
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
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
