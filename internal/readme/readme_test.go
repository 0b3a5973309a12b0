package readme

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// shBlocks returns the README's ```sh blocks in order.
func shBlocks(readme string) []string {
	var blocks []string
	var cur []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// environ is the test's environment without TOKEND_* settings, plus extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEND_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts make run")
	}
	for _, tool := range []string{"make", "bash", "curl", "sed", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README needs %s", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := shBlocks(string(readme))
	if len(blocks) < 8 {
		t.Fatalf("found %d sh blocks", len(blocks))
	}
	port, rsPort, adminPort := freePort(t), freePort(t), freePort(t)
	base := "http://127.0.0.1:" + port
	dbURL := "TOKEND_DATABASE_URL=sqlite:" + filepath.Join(t.TempDir(), "tokend.db")

	// make run, exactly as the quick start says, on a free port.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := exec.CommandContext(ctx, "make", "run")
	run.Dir = root
	run.Env = environ(dbURL, "TOKEND_LISTEN=127.0.0.1:"+port, "TOKEND_ISSUER="+base, "TOKEND_ADMIN_LISTEN=127.0.0.1:"+adminPort)
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	run.Cancel = func() error { return syscall.Kill(-run.Process.Pid, syscall.SIGTERM) }
	run.WaitDelay = 30 * time.Second
	var out, errs lockedBuffer
	run.Stdout, run.Stderr = &out, &errs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = run.Wait()
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run did not become ready:\n%s\n%s", out.String(), errs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}

	requireNode := os.Getenv("TOKEND_TEST_REQUIRE_NODE") == "1"
	_, nodeErr := exec.LookPath("node")
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		if strings.Contains(b, "npm ci") && nodeErr != nil && !requireNode {
			t.Logf("skipping the Node block: node is not installed")
			continue
		}
		b = strings.ReplaceAll(b, "127.0.0.1:8080", "127.0.0.1:"+port)
		b = strings.ReplaceAll(b, "127.0.0.1:9090", "127.0.0.1:"+rsPort)
		b = strings.ReplaceAll(b, "127.0.0.1:8081", "127.0.0.1:"+adminPort)
		fmt.Fprintf(&script, "echo '--- README block %d'\n%s\n", i+1, b)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer scancel()
	sh := exec.CommandContext(sctx, "bash", "-c", script.String())
	sh.Dir = root
	sh.Env = environ(dbURL)
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	sh.WaitDelay = 10 * time.Second
	output, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("a README command failed: %v\n%s\n--- make run's log (tail):\n%s", err, output, tail(errs.String(), 3000))
	}
	t.Logf("README commands:\n%s", output)

	// What make run promises: the demo credentials and the reset links.
	if !strings.Contains(out.String(), "demo@example.com / demo-password") {
		t.Errorf("make run did not print the demo credentials:\n%s", out.String())
	}
	if !strings.Contains(errs.String(), `"link":"`+base+`/reset#token=`) {
		t.Errorf("make run did not print the reset link of the README's forgot request")
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
