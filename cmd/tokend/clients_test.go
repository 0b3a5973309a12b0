package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
)

// TestClientsCommands: clients create, list and delete with the client
// model of the authorization code flow: kinds, redirect URIs, grants,
// scopes; registration mistakes exit 2 with one line.
func TestClientsCommands(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		url := sqliteURL(t)
		if b.Name == "postgres" {
			url = dbtest.PostgresURL(t)
		}
		c := newCLI(t, url)
		code, out, stderr := c.run("", "clients", "create", "--id", "app", "--kind", "native",
			"--redirect-uri", "com.example.app:/oauth/callback", "--redirect-uri", "http://127.0.0.1/cb",
			"--post-logout-redirect-uri", "com.example.app:/bye", "--json")
		var created struct {
			ClientID string `json:"client_id"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created.ClientID != "app" {
			t.Fatalf("create native: %d %q %q", code, out, stderr)
		}
		if code, _, stderr := c.run("", "clients", "create", "--id", "legacy", "--kind", "native", "--grant", "password",
			"--grant", "refresh_token"); code != 0 {
			t.Fatalf("create a password client: %q", stderr)
		}
		if code, _, stderr := c.run("", "clients", "create", "--id", "site", "--kind", "web"); code != 0 {
			t.Fatalf("create web: %q", stderr)
		}
		for _, bad := range []struct {
			name string
			args []string
			want string
		}{
			{"no redirect URI for the code flow", []string{"--id", "x", "--kind", "native"}, "redirect-uri"},
			{"http on a public host", []string{"--id", "x", "--kind", "native", "--redirect-uri", "http://app.example.com/cb"}, "https"},
			{"localhost is not a loopback IP", []string{"--id", "x", "--kind", "native", "--redirect-uri", "http://localhost/cb"}, "loopback"},
			{"a fragment", []string{"--id", "x", "--kind", "native", "--redirect-uri", "https://app.example.com/cb#x"}, "fragment"},
			{"an empty fragment", []string{"--id", "x", "--kind", "native", "--redirect-uri", "https://app.example.com/cb#"}, "fragment"},
			{"port 0", []string{"--id", "x", "--kind", "native", "--redirect-uri", "http://127.0.0.1:0/cb"}, "port"},
			{"a port with a leading zero", []string{"--id", "x", "--kind", "native", "--post-logout-redirect-uri", "http://127.0.0.1:080/cb",
				"--redirect-uri", "http://127.0.0.1/cb"}, "port"},
			{"a private-use scheme that is not reverse-DNS", []string{"--id", "x", "--kind", "native", "--redirect-uri", "myapp:/cb"}, "reverse-DNS"},
			{"a private-use scheme for a server client", []string{"--id", "x", "--kind", "server", "--redirect-uri", "com.example.app:/cb"}, "https"},
			{"an unknown grant", []string{"--id", "x", "--kind", "native", "--grant", "implicit"}, "not a grant type"},
			{"a grant of another kind", []string{"--id", "x", "--kind", "web", "--grant", "authorization_code"}, "cannot use"},
			{"a scope that is not a scope-token", []string{"--id", "x", "--kind", "native", "--grant", "password", "--scope", `a"b`}, "scope"},
			{"an unknown kind", []string{"--id", "x", "--kind", "robot"}, "kind"},
			{"a bad id", []string{"--id", "bad id", "--kind", "web"}, "id"},
		} {
			code, _, stderr := c.run("", append([]string{"clients", "create"}, bad.args...)...)
			if code != 2 || !strings.Contains(stderr, bad.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("%s: exit %d %q, want exit 2 with one line mentioning %q", bad.name, code, stderr, bad.want)
			}
		}
		code, out, _ = c.run("", "clients", "list", "--json")
		var list []struct {
			ID           string   `json:"id"`
			Kind         string   `json:"kind"`
			RedirectURIs []string `json:"redirect_uris"`
			Grants       []string `json:"grants"`
			Scopes       []string `json:"scopes"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 3 {
			t.Fatalf("list: %d %q", code, out)
		}
		want := map[string]string{
			"app":    "native authorization_code,refresh_token",
			"legacy": "native password,refresh_token",
			"site":   "web password,refresh_token",
		}
		for _, l := range list {
			if got := l.Kind + " " + strings.Join(l.Grants, ","); got != want[l.ID] {
				t.Errorf("%s: %q, want %q", l.ID, got, want[l.ID])
			}
			if l.ID == "app" && (len(l.RedirectURIs) != 2 || strings.Join(l.Scopes, " ") != "email openid profile") {
				t.Errorf("app: %+v", l)
			}
		}
		if code, out, _ := c.run("", "clients", "list"); code != 0 || !strings.Contains(out, "com.example.app:/oauth/callback") {
			t.Fatalf("list table: %q", out)
		}
		if code, out, stderr := c.run("", "clients", "delete", "--id", "legacy"); code != 0 || !strings.Contains(out, "deleted") {
			t.Fatalf("delete: %d %q %q", code, out, stderr)
		}
		if code, _, stderr := c.run("", "clients", "delete", "--id", "legacy"); code != 1 || !strings.Contains(stderr, "no client") {
			t.Fatalf("delete again: %d %q", code, stderr)
		}
		if code, _, _ := c.run("", "clients", "delete"); code != 2 {
			t.Fatalf("delete without --id: %d", code)
		}
	})
}
