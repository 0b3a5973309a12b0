package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/store/sqlite"
	"github.com/tokend/tokend/internal/store/sqlstore"
	"github.com/tokend/tokend/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) store.Store { return dbtest.SQLite(t) })
}

func TestOpenUnwritablePath(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permission bits; use a path under a regular file.
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		filepath.Join(file, "tokend.db"),           // parent is a file
		filepath.Join("/proc/self/tokend", "x.db"), // kernel file system
	} {
		_, err := sqlite.Open(context.Background(), path, nil)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", path)
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "sqlite:") {
			t.Fatalf("Open(%q) error is not one clear line: %q", path, err)
		}
	}
}

func TestOpenCreatesParentDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "tokend.db")
	db, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
}

// TestOpenFileModes: the database holds password hashes, so its directory
// is 0700 and the file, its -wal and its -shm are 0600, whether Open
// creates them or finds them with looser modes.
func TestOpenFileModes(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
	}{
		{"new database", func(t *testing.T, path string) {}},
		{"existing database readable by others", func(t *testing.T, path string) {
			// Another process (a running server) holds the database
			// open, so its -wal and -shm exist while this one opens it.
			db := mustOpen(t, path)
			t.Cleanup(func() { db.Close() })
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			path := filepath.Join(dir, "tokend.db")
			tc.prepare(t, path)
			db := mustOpen(t, path)
			defer db.Close()
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("directory %s: mode %v, err %v; want 0700", dir, fi.Mode().Perm(), err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %04o, want 0600", filepath.Base(p), fi.Mode().Perm())
				}
			}
		})
	}
}

// mustOpen opens and migrates the database at path, so that its -wal and
// -shm files exist.
func mustOpen(t *testing.T, path string) *sqlstore.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(context.Background()); err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db
}
