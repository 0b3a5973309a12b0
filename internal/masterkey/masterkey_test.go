package masterkey_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
)

func TestParse(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(0xfb - i)
	}
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw) + "\n",
	} {
		if _, err := masterkey.Parse(s); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "!!!", base64.StdEncoding.EncodeToString(raw[:31]), base64.StdEncoding.EncodeToString(append(raw, 1))} {
		_, err := masterkey.Parse(s)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("the error echoes the key: %v", err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	devFile := filepath.Join(dir, "keys", "dev-master.key")
	k1, gen, err := masterkey.Load(masterkey.Source{Dev: true, DevFile: devFile})
	if err != nil || !gen {
		t.Fatalf("dev load: %v generated=%v", err, gen)
	}
	if fi, err := os.Stat(devFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file: %v %v", err, fi.Mode())
	}
	k2, gen, err := masterkey.Load(masterkey.Source{Dev: true, DevFile: devFile})
	if err != nil || gen || k2.Encode() != k1.Encode() {
		t.Fatalf("second dev load did not reuse the file: %v %v", err, gen)
	}
	if _, _, err := masterkey.Load(masterkey.Source{}); err == nil || !strings.Contains(err.Error(), "no master key") {
		t.Fatalf("no key outside dev mode: %v", err)
	}
	if k, _, err := masterkey.Load(masterkey.Source{File: devFile}); err != nil || k.Encode() != k1.Encode() {
		t.Fatalf("load from file: %v", err)
	}
	if _, _, err := masterkey.Load(masterkey.Source{Value: "short"}); err == nil {
		t.Fatal("a malformed key loaded")
	}
	if got := fmt.Sprint(slog.Any("k", k1).Value.Resolve()); strings.Contains(got, k1.Encode()) {
		t.Fatalf("the key reaches a log: %s", got)
	}
}

func TestSealOpen(t *testing.T) {
	k := masterkey.Generate()
	s := k.Sealer(masterkey.PurposeMail)
	ct := s.Seal([]byte("reset link"), []byte("job-1"))
	if bytes.Contains(ct, []byte("reset link")) {
		t.Fatal("plaintext visible in the ciphertext")
	}
	if pt, err := s.Open(ct, []byte("job-1")); err != nil || string(pt) != "reset link" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	for name, open := range map[string]func() error{
		"other ad":      func() error { _, err := s.Open(ct, []byte("job-2")); return err },
		"other purpose": func() error { _, err := k.Sealer(masterkey.PurposeSigningKeys).Open(ct, []byte("job-1")); return err },
		"other key": func() error {
			_, err := masterkey.Generate().Sealer(masterkey.PurposeMail).Open(ct, []byte("job-1"))
			return err
		},
		"truncated": func() error { _, err := s.Open(ct[:10], []byte("job-1")); return err },
		"flipped bit": func() error {
			c := bytes.Clone(ct)
			c[len(c)-1] ^= 1
			_, err := s.Open(c, []byte("job-1"))
			return err
		},
	} {
		if err := open(); !errors.Is(err, masterkey.ErrWrongKey) {
			t.Errorf("%s: err = %v, want ErrWrongKey", name, err)
		}
	}
	if bytes.Equal(k.Derive(masterkey.PurposeMail), k.Derive(masterkey.PurposeRefresh)) {
		t.Fatal("two purposes derived the same key")
	}
}

func TestCheck(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	k := masterkey.Generate()
	if err := k.Check(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := k.Check(ctx, db); err != nil {
		t.Fatalf("the same key failed its check: %v", err)
	}
	if err := masterkey.Generate().Check(ctx, db); !errors.Is(err, masterkey.ErrMismatch) {
		t.Fatalf("another key: %v, want ErrMismatch", err)
	}
}

// TestLoadRefuses: a key file that group or others can read, and a key with
// no entropy (every byte the same), from the file or the variable, stop
// tokend with one line that names the problem and never the key.
func TestLoadRefuses(t *testing.T) {
	good := masterkey.Generate().Encode()
	writeKey := func(t *testing.T, key string, mode os.FileMode) string {
		path := filepath.Join(t.TempDir(), "master.key")
		if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Chmod, not WriteFile's mode, which the umask would narrow.
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, want string
		src        func(t *testing.T) masterkey.Source
	}{
		{"file readable by others", "group or others", func(t *testing.T) masterkey.Source {
			return masterkey.Source{File: writeKey(t, good, 0o644)}
		}},
		{"file readable by group", "group or others", func(t *testing.T) masterkey.Source {
			return masterkey.Source{File: writeKey(t, good, 0o640)}
		}},
		{"file readable by others only", "group or others", func(t *testing.T) masterkey.Source {
			return masterkey.Source{File: writeKey(t, good, 0o604)}
		}},
		{"file in dev mode too", "group or others", func(t *testing.T) masterkey.Source {
			return masterkey.Source{File: writeKey(t, good, 0o644), Dev: true, DevFile: filepath.Join(t.TempDir(), "dev.key")}
		}},
		{"all-zero key in a file", "no entropy", func(t *testing.T) masterkey.Source {
			return masterkey.Source{File: writeKey(t, base64.StdEncoding.EncodeToString(make([]byte, 32)), 0o600)}
		}},
		{"all-zero key in the variable", "no entropy", func(t *testing.T) masterkey.Source {
			return masterkey.Source{Value: base64.StdEncoding.EncodeToString(make([]byte, 32))}
		}},
		{"repeated byte in the variable", "no entropy", func(t *testing.T) masterkey.Source {
			return masterkey.Source{Value: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := masterkey.Load(tc.src(t))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") || strings.Contains(msg, good) {
				t.Fatalf("err = %q, want one line with %q and no key", msg, tc.want)
			}
		})
	}
	// The owner alone may read it: accepted, read-only or not.
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if k, _, err := masterkey.Load(masterkey.Source{File: writeKey(t, good, mode)}); err != nil || k.Encode() != good {
			t.Fatalf("mode %04o: %v", mode, err)
		}
	}
}
