package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

func TestPruneCommand(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		var url string
		var db *sqlstore.DB
		if b.Name == "postgres" {
			url = dbtest.PostgresURL(t)
			db = dbtest.OpenPostgresURL(t, url)
		} else {
			path := filepath.Join(t.TempDir(), "tokend.db")
			url = "sqlite:" + path
			db = dbtest.SQLiteAt(t, path)
		}
		ctx := context.Background()
		now := time.Now()
		if err := db.AppendAudit(ctx, store.AuditEvent{Type: "test.ancient", CreatedAt: now.AddDate(0, 0, -91)}); err != nil {
			t.Fatal(err)
		}
		if err := db.AppendAudit(ctx, store.AuditEvent{Type: "test.recent", CreatedAt: now.AddDate(0, 0, -1)}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.HitThrottles(ctx, now.Add(-49*time.Hour), time.Hour, "idle"); err != nil {
			t.Fatal(err)
		}
		c := newCLI(t, url)
		code, out, stderr := c.run("", "prune")
		if code != 0 {
			t.Fatalf("prune: exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{`(?m)^KIND\s+ROWS\s+BATCHES\s+LONGEST BATCH\s+SMALLEST SIZE$`, `(?m)^audit_events\s+1\s+1\s`,
			`(?m)^throttles\s+1\s+1\s`, `(?m)^refresh_tokens\s+0\s+1\s`, `(?m)^total\s+2\s`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Fatalf("prune output does not match %s:\n%s", want, out)
			}
		}
		evs, err := db.ListAudit(ctx, store.AuditFilter{})
		if err != nil || len(evs) != 1 || evs[0].Type != "test.recent" {
			t.Fatalf("audit log after prune: %+v %v", evs, err)
		}

		// While another instance holds the pass lease, the command says so.
		if got, err := db.AcquireLease(ctx, "prune", "another-instance", now, now.Add(time.Minute)); err != nil || !got {
			t.Fatalf("take the lease: %v %v", got, err)
		}
		code, _, stderr = c.run("", "prune")
		if code != 1 || !strings.Contains(stderr, "another instance is pruning") {
			t.Fatalf("prune under another's lease: exit %d, stderr %q", code, stderr)
		}
		mustOneLine(t, stderr)
		if code, _, stderr = c.run("", "prune", "extra"); code != 2 {
			t.Fatalf("prune extra: exit %d, stderr %q", code, stderr)
		}
	})
}
