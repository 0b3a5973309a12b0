package oauth

import "testing"

func TestScope(t *testing.T) {
	for in, want := range map[string]string{"": "", "openid": "openid", "email openid email": "email openid", "  profile  ": "profile"} {
		if got, ok := ParseScope(in); !ok || got != want {
			t.Errorf("ParseScope(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"admin", "openid admin", "OPENID"} {
		if _, ok := ParseScope(bad); ok {
			t.Errorf("ParseScope(%q) accepted", bad)
		}
	}
	if got, ok := Narrow("email openid", "openid"); !ok || got != "openid" {
		t.Errorf("narrow = %q %v", got, ok)
	}
	if got, ok := Narrow("email openid", ""); !ok || got != "email openid" {
		t.Errorf("narrow empty = %q %v", got, ok)
	}
	if _, ok := Narrow("openid", "openid profile"); ok {
		t.Error("narrow widened the scope")
	}
}
