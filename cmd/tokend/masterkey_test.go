package main

import (
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/masterkey"
)

// TestMasterKeyCommands: the rotation from the command line on SQLite (the
// Postgres half of the rotation is in internal/masterkey and
// internal/httpapi): before it, an instance with the new key refuses to
// start and drop-previous fails; after it, the new key alone works, the old
// one alone is refused, and drop-previous passes. No output holds a key.
func TestMasterKeyCommands(t *testing.T) {
	c := newCLI(t, sqliteURL(t))
	old, next := masterkey.Generate(), masterkey.Generate()
	var outputs []string
	run := func(wantCode int, want string, args ...string) string {
		t.Helper()
		code, out, stderr := c.run("", args...)
		outputs = append(outputs, out, stderr)
		if code != wantCode || !strings.Contains(out+stderr, want) {
			t.Fatalf("%v: exit %d, want %d with %q; stdout %q stderr %q", args, code, wantCode, want, out, stderr)
		}
		if code != 0 {
			mustOneLine(t, stderr)
		}
		return out
	}
	c.env["TOKEND_MASTER_KEY"] = old.Encode()
	run(0, "secret", "clients", "create", "--id", "svc", "--kind", "server", "--redirect-uri", "https://app.example.com/cb")
	run(0, "current", "keys", "rotate", "--force")

	c.env["TOKEND_MASTER_KEY"], c.env["TOKEND_MASTER_KEY_PREVIOUS"] = next.Encode(), old.Encode()
	run(1, "run 'tokend masterkey rotate' first", "keys", "rotate")
	run(1, "still sealed under TOKEND_MASTER_KEY_PREVIOUS", "masterkey", "drop-previous")
	out := run(0, "PREVIOUS", "masterkey", "status")
	if !strings.Contains(out, "signing keys") || !strings.Contains(out, "data keys") {
		t.Fatalf("status: %q", out)
	}
	run(0, "re-sealed", "masterkey", "rotate")
	run(0, "re-sealed 0 values", "masterkey", "rotate")
	run(0, "you can remove TOKEND_MASTER_KEY_PREVIOUS", "masterkey", "drop-previous")
	run(0, "masterkey.rotated", "audit", "--type", "masterkey.rotated")

	delete(c.env, "TOKEND_MASTER_KEY_PREVIOUS")
	run(0, "current", "keys", "rotate", "--force")
	run(0, "secret", "clients", "create", "--id", "svc2", "--kind", "server", "--redirect-uri", "https://app.example.com/cb")
	run(1, "TOKEND_MASTER_KEY_PREVIOUS is not set", "masterkey", "rotate")
	run(0, "you can remove", "masterkey", "drop-previous")

	c.env["TOKEND_MASTER_KEY"] = old.Encode()
	run(1, "does not match", "keys", "rotate")
	run(1, "open with neither key", "masterkey", "drop-previous")
	c.env["TOKEND_MASTER_KEY"], c.env["TOKEND_MASTER_KEY_PREVIOUS"] = old.Encode(), next.Encode()
	run(1, "configuration is behind", "keys", "rotate")
	c.env["TOKEND_MASTER_KEY"] = next.Encode()
	run(1, "same key", "masterkey", "status")

	for _, o := range outputs {
		for _, k := range []*masterkey.Key{old, next} {
			if strings.Contains(o, k.Encode()) || strings.Contains(o, strings.TrimRight(k.Encode(), "=")) {
				t.Fatalf("a master key in the output: %q", o)
			}
		}
	}
}
