//go:build unix

package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// oauth2ProxyVersion is the oauth2-proxy release the interop test builds.
const oauth2ProxyVersion = "v7.15.6"

// oauth2ProxyBuildTimeout bounds a cold build (module download and compile:
// about 2 minutes on an idle 2-core machine) when the test binary has no
// -timeout; with one, the build stops 30 s before it, to fail with a message.
const oauth2ProxyBuildTimeout = 10 * time.Minute

var oauth2Proxy struct {
	once sync.Once
	path string
	err  error
}

// requireOAuth2Proxy returns the path of an oauth2-proxy binary built from
// its Go module at oauth2ProxyVersion. The binary is cached under the user's
// cache directory and reused; a file lock keeps parallel test binaries from
// building it twice. When it cannot be built the test skips with the reason,
// or fails under TOKEND_TEST_REQUIRE_OAUTH2_PROXY=1.
func requireOAuth2Proxy(t *testing.T) string {
	t.Helper()
	oauth2Proxy.once.Do(func() {
		deadline := time.Now().Add(oauth2ProxyBuildTimeout)
		if d, ok := t.Deadline(); ok && d.Add(-30*time.Second).Before(deadline) {
			deadline = d.Add(-30 * time.Second)
		}
		oauth2Proxy.path, oauth2Proxy.err = buildOAuth2Proxy(deadline)
	})
	if err := oauth2Proxy.err; err != nil {
		if os.Getenv("TOKEND_TEST_REQUIRE_OAUTH2_PROXY") == "1" {
			t.Fatalf("oauth2-proxy %s cannot be built but TOKEND_TEST_REQUIRE_OAUTH2_PROXY=1: %v", oauth2ProxyVersion, err)
		}
		t.Skipf("oauth2-proxy %s cannot be built (set TOKEND_TEST_REQUIRE_OAUTH2_PROXY=1 to fail instead): %v", oauth2ProxyVersion, err)
	}
	return oauth2Proxy.path
}

func buildOAuth2Proxy(deadline time.Time) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "tokend-test", "oauth2-proxy-"+oauth2ProxyVersion)
	bin := filepath.Join(dir, "oauth2-proxy")
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // built by another test binary while we waited
		return bin, nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not on PATH")
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "install", "github.com/oauth2-proxy/oauth2-proxy/v7@"+oauth2ProxyVersion)
	cmd.Dir = tmp // outside tokend's module
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("stopped after %v: %w", time.Since(start).Round(time.Second), ctx.Err())
		}
		return "", fmt.Errorf("go install: %w\n%s", err, tail(string(out), 2000))
	}
	// Rename is atomic: a reader sees no binary or the whole one.
	if err := os.Rename(filepath.Join(tmp, "oauth2-proxy"), bin); err != nil {
		return "", fmt.Errorf("moving the binary into the cache: %w", err)
	}
	return bin, nil
}

// lockFile takes an exclusive flock on path, waiting for it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("build lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
