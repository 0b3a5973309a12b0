package sessions

import (
	"slices"
	"strings"
)

// Scopes a client may request (also published in discovery).
var Scopes = []string{"openid", "profile", "email"}

// parseScope validates a space-separated scope list and returns it
// de-duplicated in a canonical order, or false for an unknown scope.
func parseScope(s string) (string, bool) {
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

// narrow returns requested if it is a subset of granted.
func narrow(granted, requested string) (string, bool) {
	req, ok := parseScope(requested)
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
