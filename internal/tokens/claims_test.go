package tokens

import (
	"encoding/json"
	"testing"
)

// TestClaimsJSON holds the hand-written claims encoder to encoding/json:
// the same bytes for every shape of audience and for strings that need
// escaping (quotes, backslashes, HTML characters, control bytes, non-ASCII,
// invalid UTF-8).
func TestClaimsJSON(t *testing.T) {
	tricky := []string{"", `a"b`, `back\slash`, "<script>&", "tab\there", "nul\x00", "é ünïcode ☃", "\xff\xfe bad utf-8", "\u2028sep", "plain-ascii ~!@#$%^*()"}
	cases := []claims{
		{Iss: "https://auth.example.com", Sub: "5f0c", Aud: audience{"https://api.example.com"}, Exp: 1700000900, Iat: 1700000000, Jti: "abc", ClientID: "web", Sid: "fam", Scope: "openid email"},
		{Iss: "http://127.0.0.1:8080", Sub: "u", Aud: audience{"a", "b", "c"}, Exp: -1, Iat: 0, Jti: "j", ClientID: "mobile"},
		{Iss: "i", Sub: "s", Aud: nil, Exp: 1, Iat: 2, Jti: "j", ClientID: "c"},
		{Iss: "i", Sub: "s", Aud: audience{}, Exp: 1, Iat: 2, Jti: "j", ClientID: "c"},
	}
	for _, s := range tricky {
		cases = append(cases, claims{Iss: s, Sub: s, Aud: audience{s}, Jti: s, ClientID: s, Sid: s, Scope: s},
			claims{Iss: s, Aud: audience{s, s}})
	}
	for _, c := range cases {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON(%+v)\n got %s\nwant %s", c, got, want)
		}
	}
}

// FuzzClaimsJSON: for any strings, the hand-written encoder writes what
// encoding/json writes, so a token's payload is always valid JSON.
func FuzzClaimsJSON(f *testing.F) {
	f.Add("https://auth.example.com", "user-id", "aud", "client", "openid")
	f.Add(`"quote"`, `back\slash`, "<&>", "\x00\x1f", "\xff☃\u2028")
	f.Fuzz(func(t *testing.T, iss, sub, aud, client, scope string) {
		for _, a := range []audience{{aud}, {aud, iss}, nil} {
			c := claims{Iss: iss, Sub: sub, Aud: a, Exp: int64(len(iss)), Iat: -int64(len(sub)), Jti: client, ClientID: client, Sid: scope, Scope: scope}
			want, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.appendJSON(nil); string(got) != string(want) {
				t.Fatalf("appendJSON differs from encoding/json:\n got %s\nwant %s", got, want)
			}
		}
	})
}
