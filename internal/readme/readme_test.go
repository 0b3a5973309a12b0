package readme

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on steps whose speed does not depend on how busy the machine is
// once everything is compiled: they only catch a hang, so they are
// generous. Compiling has no bound but the test binary's -timeout.
const (
	readyBound = 5 * time.Minute // make run links and starts tokend
	blockBound = 5 * time.Minute // one README block
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed at the next write, when someone waits
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.b.Write(p)
}

// waitFor waits until what was written after the first from bytes holds
// marker, or until timeout fires, and reports whether it does.
func (l *lockedBuffer) waitFor(from int, marker string, timeout <-chan time.Time) bool {
	for {
		l.mu.Lock()
		if strings.Contains(l.b.String()[from:], marker) {
			l.mu.Unlock()
			return true
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			return false
		}
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len is how much has been written so far.
func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
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

// block is one ```sh block of the README.
type block struct {
	n    int // 1-based, in README order
	line int // of its first command in README.md
	text string
}

// shBlocks returns the README's ```sh blocks in order.
func shBlocks(readme string) []block {
	var blocks []block
	var cur []string
	in, start, line := false, 0, 0
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case !in && strings.TrimSpace(l) == "```sh":
			in, cur, start = true, nil, line+1
		case in && strings.TrimSpace(l) == "```":
			in = false
			blocks = append(blocks, block{n: len(blocks) + 1, line: start, text: strings.Join(cur, "\n")})
		case in:
			cur = append(cur, l)
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

// within shortens d so that a step times out, and says which step it was,
// before the test binary's -timeout panics without saying.
func within(t *testing.T, d time.Duration) time.Duration {
	if deadline, ok := t.Deadline(); ok {
		if left := time.Until(deadline) - 30*time.Second; left < d {
			return max(left, time.Second)
		}
	}
	return d
}

// TestReadmeCommands runs every sh block of the README, in order, in one
// shell (variables and the working directory carry over), against `make
// run`, as a reader would. It first builds what the blocks and `make run`
// compile, with no bound but the test binary's -timeout, so that a busy
// machine makes it slower, not red; each later step has its own generous
// bound, and a failure names its block.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts make run")
	}
	for _, tool := range []string{"make", "go", "bash", "curl", "sed", "openssl"} {
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

	// Compile first: the blocks' `make build` then finds bin/ up to date,
	// and `make run` finds its packages in the build cache and only links
	// (go list -export compiles them as go run does, without linking a
	// binary nobody runs).
	start := time.Now()
	for _, args := range [][]string{
		{"make", "build"},
		{"go", "list", "-export", "-deps", "./cmd/tokend"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir, cmd.Env = root, environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))

	port, rsPort, adminPort := freePort(t), freePort(t), freePort(t)
	base := "http://127.0.0.1:" + port
	dbURL := "TOKEND_DATABASE_URL=sqlite:" + filepath.Join(t.TempDir(), "tokend.db")
	serverOut, serverLog := startMakeRun(t, root, base, port, adminPort, dbURL)

	requireNode := os.Getenv("TOKEND_TEST_REQUIRE_NODE") == "1"
	_, nodeErr := exec.LookPath("node")
	sh := startShell(t, root, environ(dbURL))
	for _, b := range blocks {
		if strings.Contains(b.text, "npm ci") && nodeErr != nil && !requireNode {
			t.Logf("skipping README block %d (line %d): node is not installed", b.n, b.line)
			continue
		}
		text := strings.ReplaceAll(b.text, "127.0.0.1:8080", "127.0.0.1:"+port)
		text = strings.ReplaceAll(text, "127.0.0.1:9090", "127.0.0.1:"+rsPort)
		text = strings.ReplaceAll(text, "127.0.0.1:8081", "127.0.0.1:"+adminPort)
		out, err := sh.run(b.n, text, within(t, blockBound))
		if err != nil {
			t.Fatalf("README block %d (README.md line %d) failed: %v\n%s\n--- its output:\n%s\n--- make run's log (tail):\n%s",
				b.n, b.line, err, b.text, out, tail(serverLog.String(), 3000))
		}
		t.Logf("README block %d (line %d):\n%s", b.n, b.line, out)
	}
	if err := sh.close(within(t, time.Minute)); err != nil {
		t.Fatalf("the shell did not end cleanly after the last block: %v", err)
	}

	// What make run promises: the demo credentials, the reset and
	// confirmation links.
	if !strings.Contains(serverOut.String(), "demo@example.com / demo-password") {
		t.Errorf("make run did not print the demo credentials:\n%s", serverOut.String())
	}
	if !strings.Contains(serverLog.String(), `"link":"`+base+`/reset#token=`) {
		t.Errorf("make run did not print the reset link of the README's forgot request")
	}
	if !strings.Contains(serverLog.String(), `"link":"`+base+`/verify#token=`) {
		t.Errorf("make run did not print the confirmation link of the README's sign-up")
	}
}

// startMakeRun runs `make run`, exactly as the quick start says, on port,
// and waits until it is ready. It returns make run's stdout and stderr (the
// log); the server stops when t ends.
func startMakeRun(t *testing.T, root, base, port, adminPort, dbURL string) (stdout, stderr *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := exec.CommandContext(ctx, "make", "run")
	run.Dir = root
	run.Env = environ(dbURL, "TOKEND_LISTEN=127.0.0.1:"+port, "TOKEND_ISSUER="+base, "TOKEND_ADMIN_LISTEN=127.0.0.1:"+adminPort)
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	run.Cancel = func() error { return syscall.Kill(-run.Process.Pid, syscall.SIGTERM) }
	run.WaitDelay = 30 * time.Second
	stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
	run.Stdout, run.Stderr = stdout, stderr
	if err := run.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	bound := within(t, readyBound)
	deadline := time.Now().Add(bound)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return stdout, stderr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run was not ready within %v:\n%s\n%s", bound, stdout, tail(stderr.String(), 3000))
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("make run exited before it was ready (%v):\n%s\n%s", err, stdout, tail(stderr.String(), 3000))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// shell is one bash process that runs README blocks one at a time, so that
// what a block sets (variables, exports, the directory) is there for the
// next, as in a reader's terminal. It reads its script from a pipe on fd 3
// (stdin is /dev/null, so no command can swallow the script) and reports
// each block's end on fd 4.
type shell struct {
	cmd    *exec.Cmd
	script io.WriteCloser
	status chan string // one line per finished block
	exited chan error
	out    *lockedBuffer // stdout and stderr of every block
}

func startShell(t *testing.T, dir string, env []string) *shell {
	t.Helper()
	scriptR, scriptW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &shell{script: scriptW, status: make(chan string, 64), exited: make(chan error, 1), out: &lockedBuffer{}}
	s.cmd = exec.Command("bash", "/dev/fd/3")
	s.cmd.Dir, s.cmd.Env = dir, env
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.ExtraFiles = []*os.File{scriptR, statusW}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Background commands of a failed block may keep the output open.
	s.cmd.WaitDelay = 10 * time.Second
	err = s.cmd.Start()
	scriptR.Close()
	statusW.Close()
	if err != nil {
		scriptW.Close()
		statusR.Close()
		t.Fatal(err)
	}
	go func() {
		defer statusR.Close()
		sc := bufio.NewScanner(statusR)
		for sc.Scan() {
			s.status <- sc.Text()
		}
	}()
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.script.Close()
		// The whole group: the shell and whatever a block left running.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	})
	if _, err := io.WriteString(s.script, "set -euo pipefail\n"); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs block n's text in the shell and returns its output. It fails if
// the block fails (the shell exits under set -e) or takes longer than bound.
// The output travels through a pipe that another goroutine copies, so the
// end reported on fd 4 may arrive before it: the shell also prints a marker
// after the block, and run waits for it.
func (s *shell) run(n int, text string, bound time.Duration) (string, error) {
	from := s.out.Len()
	marker := fmt.Sprintf("\x1eend of block %d\x1e\n", n)
	output := func() string {
		out, _, _ := strings.Cut(s.out.String()[from:], marker)
		return out
	}
	if _, err := fmt.Fprintf(s.script, "%s\nprintf '\\036end of block %%s\\036\\n' %d\nprintf '%%s\\n' %d >&4\n", text, n, n); err != nil {
		return output(), fmt.Errorf("write to the shell: %w", err)
	}
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case line := <-s.status:
		if line != strconv.Itoa(n) {
			return output(), fmt.Errorf("the shell reported the end of block %q while running block %d", line, n)
		}
		if !s.out.waitFor(from, marker, timer.C) {
			return output(), fmt.Errorf("the output of block %d did not arrive within %v", n, bound)
		}
		return output(), nil
	case err := <-s.exited:
		s.exited <- err // for the cleanup
		if err == nil {
			err = fmt.Errorf("the shell exited")
		}
		return output(), err
	case <-timer.C:
		return output(), fmt.Errorf("not finished after %v", bound)
	}
}

// close ends the script and waits for the shell to exit.
func (s *shell) close(bound time.Duration) error {
	s.script.Close()
	select {
	case err := <-s.exited:
		s.exited <- err
		return err
	case <-time.After(bound):
		return fmt.Errorf("still running after %v", bound)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// TestShell checks the harness TestReadmeCommands relies on: state carries
// over between blocks, no command can read the script, and a failing or
// hanging block is reported as such.
func TestShell(t *testing.T) {
	sh := startShell(t, t.TempDir(), environ())
	for _, b := range []struct {
		text, want string
	}{
		{"X=1; export Y=2; cd /", ""},
		{`cat; echo "$X $Y $(pwd)"`, "1 2 /\n"},
	} {
		out, err := sh.run(1, b.text, time.Minute)
		if err != nil || out != b.want {
			t.Fatalf("block %q: output %q, error %v; want %q", b.text, out, err, b.want)
		}
	}
	out, err := sh.run(3, "echo before; false; echo after", time.Minute)
	if err == nil || out != "before\n" {
		t.Fatalf("a failing block: output %q, error %v", out, err)
	}

	// A hang: the bound is tiny next to the sleep, whatever the machine.
	sh = startShell(t, t.TempDir(), environ())
	if _, err := sh.run(1, "sleep 600", 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not finished") {
		t.Fatalf("a hanging block: error %v", err)
	}
}
