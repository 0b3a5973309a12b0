package oauth

import "testing"

func TestScope(t *testing.T) {
	for in, want := range map[string]string{"": "", "openid": "openid", "email openid email": "email openid", "  profile  ": "profile",
		"openid invoices:read https://api.example.com/x": "https://api.example.com/x invoices:read openid"} {
		if got, ok := ParseScope(in); !ok || got != want {
			t.Errorf("ParseScope(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	many := ""
	for i := range 65 {
		many += " s" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for _, bad := range []string{`a"b`, `a\b`, "caf\u00e9", "a\x00b", "\x7f", string(long), many} {
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
