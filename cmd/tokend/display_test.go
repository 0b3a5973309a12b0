package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// hostileEmails are stored emails (from before validation refused them, or
// written past it) that would hide, reorder or restyle what a terminal shows.
var hostileEmails = []struct{ name, email, escaped string }{
	{"zero-width space", "ad\u200bmin@example.com", `ad\u200bmin@example.com`},
	{"right-to-left override", "eve\u202emoc.elpmaxe@example.com", `eve\u202emoc.elpmaxe@example.com`},
	{"escape sequence", "\x1b[2Jroot@example.com", `\u001b[2Jroot@example.com`},
	{"tab and newline", "a\tb\nc@example.com", `a\u0009b\u000ac@example.com`},
	{"tag character", "tag\U000e0041@example.com", `tag\U000e0041@example.com`},
	{"backslash", `a\u200b@example.com`, `a\\u200b@example.com`},
}

// invisibleRune reports the first rune of s that a terminal would not show as
// itself, other than the newline that ends each line.
func invisibleRune(s string) (rune, bool) {
	for _, r := range s {
		if r != '\n' && (!unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r)) {
			return r, true
		}
	}
	return 0, false
}

func TestPrintUsersEscapes(t *testing.T) {
	for _, tc := range hostileEmails {
		t.Run(tc.name, func(t *testing.T) {
			u := store.User{ID: "u1", Email: tc.email, PasswordHash: "$argon2id$x", CreatedAt: time.Unix(0, 0).UTC()}
			var table, js bytes.Buffer
			if err := printUsers(&table, []store.User{u}, false); err != nil {
				t.Fatal(err)
			}
			if err := printUsers(&js, []store.User{u}, true); err != nil {
				t.Fatal(err)
			}
			for name, out := range map[string]string{"table": table.String(), "json": js.String()} {
				if r, ok := invisibleRune(out); ok {
					t.Errorf("%s output holds %U raw: %q", name, r, out)
				}
			}
			if !strings.Contains(table.String(), tc.escaped) {
				t.Errorf("table = %q, want the email as %s", table.String(), tc.escaped)
			}
			var rows []userJSON
			if err := json.Unmarshal(js.Bytes(), &rows); err != nil || len(rows) != 1 || rows[0].Email != tc.email {
				t.Errorf("json does not decode to the stored email: %v %q", err, js.String())
			}
		})
	}
}

// TestUsersListEscapes: `tokend users list` shows stored emails escaped, on
// both stores.
func TestUsersListEscapes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		var url string
		var db *sqlstore.DB
		if b.Name == "postgres" {
			url = dbtest.PostgresURL(t)
			db = dbtest.OpenPostgresURL(t, url)
		} else {
			url = sqliteURL(t)
			db = dbtest.SQLiteAt(t, strings.TrimPrefix(url, "sqlite:"))
		}
		for i, tc := range hostileEmails {
			u := store.User{ID: "u" + string(rune('a'+i)), Email: tc.email, PasswordHash: "$argon2id$x", CreatedAt: time.Now()}
			if err := db.CreateUser(context.Background(), u, nil); err != nil {
				t.Fatal(err)
			}
		}
		c := newCLI(t, url)
		for _, args := range [][]string{{"users", "list"}, {"users", "list", "--json"}} {
			code, out, stderr := c.run("", args...)
			if code != 0 {
				t.Fatalf("%v: exit %d %q", args, code, stderr)
			}
			if r, ok := invisibleRune(out); ok {
				t.Errorf("%v prints %U raw: %q", args, r, out)
			}
			if !strings.Contains(out, `\u202e`) {
				t.Errorf("%v: %q, want the override escaped", args, out)
			}
		}
	})
}
