package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// requireNode skips (or fails under TOKEND_TEST_REQUIRE_NODE=1) without
// node, and installs the pinned npm dependencies when they are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("TOKEND_TEST_REQUIRE_NODE") == "1" {
			t.Fatal("node is not installed but TOKEND_TEST_REQUIRE_NODE=1")
		}
		t.Skip("node is not installed")
	}
	dir, _ := filepath.Abs("node")
	if !installed(dir, "jose", "openid-client") {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	return node
}

// runNode runs a script from node/ and returns its stdout lines decoded as
// JSON objects.
func runNode(t *testing.T, env []string, script string, args ...string) []map[string]any {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = "node"
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, out, stderr.String())
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("node %s printed a non-JSON line %q", script, sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

func nowEnv(t time.Time) []string { return []string{fmt.Sprintf("NOW=%d", t.Unix())} }

// installed reports whether every package is in dir's node_modules.
func installed(dir string, pkgs ...string) bool {
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			return false
		}
	}
	return true
}
