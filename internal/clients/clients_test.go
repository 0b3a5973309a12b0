package clients_test

import (
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/store"
)

// TestRedirectURIAllowed: exact string comparison (RFC 9700 §4.1.3), except
// that over http on a loopback IP literal any valid port matches (RFC 8252
// §7.3). Scheme, host, path and query compare exactly; a port is 1-65535 in
// decimal without a leading zero; no fragment ever (RFC 6749 §3.1.2).
func TestRedirectURIAllowed(t *testing.T) {
	c := clients.Client{RedirectURIs: []string{"http://127.0.0.1/callback", "http://[::1]:8000/cb?x=1", "https://app.example.com/cb",
		"https://app.example.com/q?", "com.example.app:/oauth"}}
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:1/callback", true},
		{"http://127.0.0.1:53117/callback", true},
		{"http://127.0.0.1:65535/callback", true},
		{"http://[::1]:8000/cb?x=1", true},
		{"http://[::1]/cb?x=1", true},
		{"http://[::1]:443/cb?x=1", true},
		{"https://app.example.com/cb", true},
		{"https://app.example.com/q?", true}, // registered with the empty query marker
		{"com.example.app:/oauth", true},

		{"", false},
		{"http://127.0.0.1:0/callback", false},
		{"http://127.0.0.1:65536/callback", false},
		{"http://127.0.0.1:99999999999999999999/callback", false},
		{"http://127.0.0.1:08080/callback", false},
		{"http://127.0.0.1:/callback", false},
		{"http://127.0.0.1:+80/callback", false},
		{"http://127.0.0.1:8080:80/callback", false},
		{"HTTP://127.0.0.1:8080/callback", false},
		{"Http://127.0.0.1/callback", false},
		{"http://127.0.0.1:8080/callback?", false},
		{"http://127.0.0.1:8080/callback#", false},
		{"http://127.0.0.1/callback#", false},
		{"http://127.0.0.1/callback#x", false},
		{"http://127.0.0.1:8080/callback?a=b", false},
		{"http://127.0.0.1:8080/Callback", false},
		{"http://127.0.0.1:8080/callback/", false},
		{"http://127.0.0.1:8080/call%62ack", false},
		{"http://127.0.0.1:8080", false},
		{"http://user@127.0.0.1:8080/callback", false},
		{"http://127.000.000.001:8080/callback", false},
		{"http://localhost:8080/callback", false},
		{"http://[::1%25lo]:8000/cb?x=1", false},
		{"http://[0:0:0:0:0:0:0:1]:8000/cb?x=1", false},
		{"http://[::1]:8000/cb?x=1#", false},
		{"http://[::1]:8000/cb", false},
		{"https://127.0.0.1:8080/callback", false},
		{"https://app.example.com:443/cb", false}, // no port freedom off loopback
		{"HTTPS://app.example.com/cb", false},
		{"https://APP.example.com/cb", false},
		{"https://app.example.com/cb?", false},
		{"https://app.example.com/cb#", false},
		{"https://app.example.com/q", false},
		{"com.example.app:/oauth#", false},
	} {
		if got := clients.RedirectURIAllowed(c, tc.uri); got != tc.want {
			t.Errorf("RedirectURIAllowed(%q) = %v, want %v", tc.uri, got, tc.want)
		}
	}
	// A fragment that was stored before registration refused it still
	// never matches.
	old := clients.Client{RedirectURIs: []string{"https://app.example.com/cb#x"}}
	if clients.RedirectURIAllowed(old, "https://app.example.com/cb#x") {
		t.Error("a registered fragment matched")
	}
}

// TestBuildRedirectURIs: registration refuses fragments (even empty) and
// ports that are not 1-65535 in decimal without a leading zero.
func TestBuildRedirectURIs(t *testing.T) {
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"http://127.0.0.1/cb", true},
		{"http://127.0.0.1:8080/cb", true},
		{"http://[::1]:65535/cb", true},
		{"https://app.example.com/cb?", true},
		{"https://app.example.com:8443/cb", true},
		{"com.example.app:/cb", true},

		{"https://app.example.com/cb#", false},
		{"https://app.example.com/cb#x", false},
		{"com.example.app:/cb#", false},
		{"http://127.0.0.1:0/cb", false},
		{"http://127.0.0.1:65536/cb", false},
		{"http://127.0.0.1:99999999999999999999/cb", false},
		{"http://127.0.0.1:08080/cb", false},
		{"http://127.0.0.1:/cb", false},
		{"https://app.example.com:0/cb", false},
		{"https://app.example.com:/cb", false},
	} {
		for _, field := range []string{"redirect", "post-logout"} {
			s := clients.Spec{ID: "app", Kind: store.ClientNative, RedirectURIs: []string{"http://127.0.0.1/cb"}}
			if field == "redirect" {
				s.RedirectURIs = []string{tc.uri}
			} else {
				s.PostLogoutRedirectURIs = []string{tc.uri}
			}
			_, err := clients.Build(s, time.Unix(0, 0))
			if (err == nil) != tc.ok {
				t.Errorf("%s URI %q: error %v, want ok=%v", field, tc.uri, err, tc.ok)
			}
		}
	}
}
