package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store/postgres"
	"github.com/tokend/tokend/internal/store/sqlite"
	"github.com/tokend/tokend/internal/store/sqlstore"
)

// openAtVersion opens a new database of b's engine migrated only up to
// version, for a test of what a later migration does to old rows. It is
// closed when the test ends.
func openAtVersion(t *testing.T, b dbtest.Backend, version int64) *sqlstore.DB {
	t.Helper()
	ctx := context.Background()
	var db *sqlstore.DB
	var err error
	if b.Name == "sqlite" {
		db, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "old.db"), dbtest.Logger(t))
	} else {
		db, err = postgres.Open(ctx, dbtest.PostgresURL(t), dbtest.Logger(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.MigrateTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return db
}
