package oauth

import (
	"slices"
	"strings"
	"testing"
)

// FuzzScope: a parsed scope is canonical (sorted, unique scope-tokens) and
// parsing it again changes nothing.
func FuzzScope(f *testing.F) {
	for _, s := range []string{"", "openid", "email openid email", "admin", "a\"b", "openid\tprofile", "  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseScope(s)
		if !ok {
			return
		}
		fields := strings.Fields(got)
		if !slices.IsSorted(fields) || len(slices.Compact(slices.Clone(fields))) != len(fields) {
			t.Fatalf("ParseScope(%q) = %q is not canonical", s, got)
		}
		for _, f := range fields {
			if !ValidScopeToken(f) {
				t.Fatalf("ParseScope(%q) kept %q, not a scope-token", s, f)
			}
		}
		if again, _ := ParseScope(got); again != got {
			t.Fatalf("not idempotent: %q → %q", got, again)
		}
	})
}
