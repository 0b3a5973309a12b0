package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store/postgres"
	"github.com/tokend/tokend/internal/store/sqlite"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// TestServerClientSecret: clients create --kind server --json prints
// exactly {client_id, client_secret}, the secret is 256 random bits, and no
// column of the database holds it (only its keyed hash); a rotation's new
// secret is as strong and as absent.
func TestServerClientSecret(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		url := sqliteURL(t)
		if b.Name == "postgres" {
			url = dbtest.PostgresURL(t)
		}
		c := newCLI(t, url)
		c.env["TOKEND_MASTER_KEY_FILE"] = writeMasterKey(t)
		var secrets []string
		for _, args := range [][]string{
			{"clients", "create", "--id", "svc", "--kind", "server", "--grant", "client_credentials", "--json"},
			{"clients", "secret", "rotate", "--id", "svc", "--json"},
		} {
			code, out, stderr := c.run("", args...)
			var got map[string]any
			if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
				t.Fatalf("%v: %d %q %q", args, code, out, stderr)
			}
			sec, _ := got["client_secret"].(string)
			raw, err := base64.RawURLEncoding.DecodeString(sec)
			if got["client_id"] != "svc" || err != nil || len(raw) < 32 {
				t.Fatalf("%v printed %v: want the id and a base64url secret of at least 256 bits", args, got)
			}
			if args[1] == "create" && len(got) != 2 {
				t.Fatalf("create --json printed %v, want exactly client_id and client_secret", got)
			}
			secrets = append(secrets, sec)
		}
		if secrets[0] == secrets[1] {
			t.Fatal("the rotation printed the same secret")
		}

		ctx := context.Background()
		var db *sqlstore.DB
		var err error
		if b.Name == "sqlite" {
			db, err = sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite:"), dbtest.Logger(t))
		} else {
			db, err = postgres.Open(ctx, url, dbtest.Logger(t))
		}
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Writer().QueryxContext(ctx, `SELECT * FROM clients WHERE id = 'svc'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
			row := map[string]any{}
			if err := rows.MapScan(row); err != nil {
				t.Fatal(err)
			}
			for col, v := range row {
				text := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					text = string(b)
				}
				for _, sec := range secrets {
					if strings.Contains(text, sec) || strings.Contains(text, sec[:16]) {
						t.Fatalf("clients.%s holds a secret in clear", col)
					}
				}
			}
		}
		if n != 1 {
			t.Fatalf("%d client rows read", n)
		}
	})
}
