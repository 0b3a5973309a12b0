package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/masterkey"
)

// cli runs tokend in-process with the given environment.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T, dbURL string) *cli {
	return &cli{t: t, env: map[string]string{
		"TOKEND_DATABASE_URL":  dbURL,
		"TOKEND_ARGON2_PARAMS": "m=64,t=1,p=1",
	}}
}

func sqliteURL(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "tokend.db") }

func (c *cli) run(stdin string, args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, env{
		getenv: func(k string) string { return c.env[k] },
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
	})
	return code, out.String(), errb.String()
}

// mustOneLine checks a failure printed exactly one line.
func mustOneLine(t *testing.T, stderr string) {
	t.Helper()
	if n := strings.Count(strings.TrimRight(stderr, "\n"), "\n"); n != 0 || stderr == "" {
		t.Fatalf("want one line on stderr, got %q", stderr)
	}
	if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
		t.Fatalf("stack trace on stderr: %q", stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t, sqliteURL(t))
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"unknown command", []string{"frobnicate"}, 2},
		{"unknown flag", []string{"users", "list", "--nope"}, 2},
		{"missing subcommand", []string{"users"}, 2},
		{"unknown subcommand", []string{"clients", "delete"}, 2},
		{"create without email", []string{"users", "create", "--password-stdin"}, 2},
		{"create without password-stdin", []string{"users", "create", "--email", "a@example.com"}, 2},
		{"disable without email", []string{"users", "disable"}, 2},
		{"client bad kind", []string{"clients", "create", "--id", "x", "--kind", "robot"}, 2},
		{"client bad id", []string{"clients", "create", "--id", "a b", "--kind", "web"}, 2},
		{"client bad alg", []string{"clients", "create", "--id", "x", "--kind", "web", "--alg", "HS256"}, 2},
		{"serve stray arg", []string{"serve", "now"}, 2},
		{"serve bad flag", []string{"serve", "--listen"}, 2},
		{"audit bad since", []string{"audit", "--since", "yesterday"}, 2},
		{"migrate stray arg", []string{"migrate", "up"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := c.run("", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			mustOneLine(t, stderr)
		})
	}
	if code, out, _ := c.run("", "help"); code != 0 || !strings.Contains(out, "TOKEND_DATABASE_URL") {
		t.Fatalf("help: exit %d, output %q", code, out)
	}
	if code, out, _ := c.run("", "version"); code != 0 || !strings.HasPrefix(out, "tokend ") {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
	if code, _, _ := c.run(""); code != 2 {
		t.Fatalf("no args: exit %d", code)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		lines int
		want  string
	}{
		{"malformed database url", map[string]string{"TOKEND_DATABASE_URL": "postgres://%zz"}, nil, 1, "TOKEND_DATABASE_URL"},
		{"unsupported scheme", map[string]string{"TOKEND_DATABASE_URL": "mysql://x/y"}, nil, 1, "unsupported scheme"},
		{"several problems", map[string]string{"TOKEND_ACCESS_TOKEN_TTL": "soon", "TOKEND_SIGNING_ALG": "HS256", "TOKEND_ARGON2_PARAMS": "m=1"}, nil, 3, "TOKEND_SIGNING_ALG"},
		{"flag named in error", nil, []string{"--jwks-max-age", "forever"}, 1, "--jwks-max-age"},
		{"http issuer outside dev", map[string]string{"TOKEND_ISSUER": "http://auth.example.com"}, nil, 1, "https"},
		{"bad origin", map[string]string{"TOKEND_ALLOWED_ORIGINS": "https://ok.example, not an origin"}, nil, 1, "origin"},
		{"bad bool", map[string]string{"TOKEND_SIGNUP": "maybe"}, nil, 1, "TOKEND_SIGNUP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t, sqliteURL(t))
			for k, v := range tc.env {
				c.env[k] = v
			}
			code, _, stderr := c.run("", append([]string{"serve"}, tc.args...)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != tc.lines || !strings.Contains(stderr, tc.want) {
				t.Fatalf("want %d lines mentioning %q, got %q", tc.lines, tc.want, stderr)
			}
		})
	}
}

func TestDatabaseErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, url, want string }{
		{"unreachable postgres", "postgres://tokend:hunter2secret@127.0.0.1:1/tokend?sslmode=disable&connect_timeout=2", "cannot reach"},
		{"unwritable sqlite path", "sqlite:" + filepath.Join(file, "tokend.db"), "sqlite:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t, tc.url)
			code, _, stderr := c.run("", "users", "list")
			if code != 1 {
				t.Fatalf("exit %d, want 1: %q", code, stderr)
			}
			mustOneLine(t, stderr)
			if !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "hunter2secret") {
				t.Fatalf("stderr %q: want %q and no password", stderr, tc.want)
			}
		})
	}
}

func TestUsersAndClients(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		url := sqliteURL(t)
		if b.Name == "postgres" {
			url = dbtest.PostgresURL(t)
		}
		c := newCLI(t, url)
		code, out, stderr := c.run("correct horse\n", "users", "create", "--email", "Alice@Example.com", "--password-stdin")
		if code != 0 || !strings.Contains(out, "Alice@Example.com") {
			t.Fatalf("users create: exit %d out %q err %q", code, out, stderr)
		}
		for _, tc := range []struct {
			name, stdin, email, want string
		}{
			{"duplicate email", "another pass\n", "alice@example.COM", "already exists"},
			{"not an email", "correct horse\n", "alice", "invalid email"},
			{"short password", "short\n", "bob@example.com", "at least 8"},
			{"long password", strings.Repeat("x", 1025), "bob@example.com", "at most 1024"},
		} {
			code, _, stderr := c.run(tc.stdin, "users", "create", "--email", tc.email, "--password-stdin")
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s: exit %d stderr %q, want %q", tc.name, code, stderr, tc.want)
			}
			mustOneLine(t, stderr)
		}
		code, out, stderr = c.run("correct horse\n", "users", "create", "--email", "vouched@example.com", "--password-stdin", "--verified")
		if code != 0 || !strings.Contains(out, "(email verified)") {
			t.Fatalf("users create --verified: exit %d out %q err %q", code, out, stderr)
		}
		code, out, _ = c.run("", "users", "list", "--json")
		var list []userJSON
		if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].Email != "Alice@Example.com" || list[0].HashAlg != "argon2id" ||
			list[0].EmailVerified || list[0].EmailVerifiedAt != nil || !list[1].EmailVerified || list[1].EmailVerifiedAt == nil {
			t.Fatalf("users list --json: exit %d %q", code, out)
		}
		if code, out, _ = c.run("", "users", "list"); code != 0 || !strings.Contains(out, "Alice@Example.com") || !strings.Contains(out, "active") ||
			!strings.Contains(out, "VERIFIED") || !regexp.MustCompile(`Alice@Example\.com\s+no\s`).MatchString(out) ||
			!regexp.MustCompile(`vouched@example\.com\s+yes\s`).MatchString(out) {
			t.Fatalf("users list: %q", out)
		}
		if code, _, stderr = c.run("", "users", "disable", "--email", "ALICE@example.com"); code != 0 {
			t.Fatalf("disable: %q", stderr)
		}
		if _, out, _ = c.run("", "users", "list"); !strings.Contains(out, "disabled") {
			t.Fatalf("users list after disable: %q", out)
		}
		if code, _, stderr = c.run("", "users", "disable", "--email", "ghost@example.com"); code != 1 || !strings.Contains(stderr, "no user") {
			t.Fatalf("disable unknown: exit %d %q", code, stderr)
		}
		if code, out, stderr = c.run("", "users", "reset-factors", "--email", "alice@example.com"); code != 0 || !strings.Contains(out, "removed 0 second factor") {
			t.Fatalf("reset-factors: exit %d %q %q", code, out, stderr)
		}
		if code, _, stderr = c.run("", "users", "reset-factors", "--email", "ghost@example.com"); code != 1 || !strings.Contains(stderr, "no user") {
			t.Fatalf("reset-factors unknown: exit %d %q", code, stderr)
		}
		if code, _, _ = c.run("", "users", "reset-factors"); code != 2 {
			t.Fatalf("reset-factors without --email: exit %d", code)
		}

		if code, _, stderr = c.run("", "clients", "create", "--id", "spa", "--kind", "web", "--audience", "https://api.example.com", "--alg", "EdDSA"); code != 0 {
			t.Fatalf("clients create: %q", stderr)
		}
		if code, _, stderr = c.run("", "clients", "create", "--id", "spa", "--kind", "native", "--grant", "password"); code != 1 || !strings.Contains(stderr, "already exists") {
			t.Fatalf("duplicate client: exit %d %q", code, stderr)
		}
		if code, out, _ = c.run("", "clients", "list"); code != 0 || !strings.Contains(out, "https://api.example.com") || !strings.Contains(out, "EdDSA") {
			t.Fatalf("clients list: %q", out)
		}
		if code, out, _ = c.run("", "audit", "--type", "user.created", "--json"); code != 0 || strings.Count(out, "user.created") != 2 {
			t.Fatalf("audit: exit %d %q", code, out)
		}
		if code, out, _ = c.run("", "migrate"); code != 0 || !strings.Contains(out, "schema at version") {
			t.Fatalf("migrate: exit %d %q", code, out)
		}
	})
}

func TestReadPassword(t *testing.T) {
	for in, want := range map[string]string{
		"secret pw\n":     "secret pw",
		"secret pw\r\n":   "secret pw",
		"secret pw":       "secret pw",
		"secret pw\n\n":   "secret pw\n",
		" padded pw \n":   " padded pw ",
		"trailing\t\n":    "trailing\t",
		"two\nlines pw\n": "two\nlines pw",
	} {
		got, err := readPassword(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("readPassword(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// lineWriter feeds stderr lines to a channel so the test can wait for the
// "listening" log line instead of sleeping.
type lineWriter struct {
	mu   sync.Mutex
	pw   *io.PipeWriter
	done bool
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return len(b), nil
	}
	return l.pw.Write(b)
}

// startServe runs `tokend serve` in-process and returns its base URL and a
// function that stops it (as SIGTERM would) and returns the exit code.
func startServe(t *testing.T, c *cli, args ...string) (string, *bytes.Buffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	lw := &lineWriter{pw: pw}
	var stdout bytes.Buffer
	codec := make(chan int, 1)
	go func() {
		codec <- run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, args...), env{
			getenv: func(k string) string { return c.env[k] },
			stdin:  strings.NewReader(""),
			stdout: &stdout,
			stderr: lw,
		})
		pw.Close()
	}()
	addr := make(chan string, 1)
	var logs bytes.Buffer
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logMu.Lock()
			logs.Write(append(sc.Bytes(), '\n'))
			logMu.Unlock()
			var m struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "listening" {
				addr <- m.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		stop := func() int {
			cancel()
			select {
			case code := <-codec:
				return code
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not stop within 30s")
				return -1
			}
		}
		t.Cleanup(func() { cancel() })
		return "http://" + a, &stdout, stop
	case code := <-codec:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("serve exited with %d before listening:\n%s", code, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start within 60s")
	}
	return "", nil, nil
}

func TestServeDevMode(t *testing.T) {
	c := newCLI(t, sqliteURL(t))
	c.env["TOKEND_DEV"] = "true"
	c.env["TOKEND_MASTER_KEY_FILE"] = writeMasterKey(t)
	base, stdout, stop := startServe(t, c)
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("/healthz = %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz = %d", resp.StatusCode)
	}
	// Headers over tokend's limit get its JSON error, not net/http's
	// text/plain: the server's own limit is above tokend's.
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 40<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/json" ||
		!strings.Contains(string(body), `"error":"invalid_request"`) || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("a 40 KiB header: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit code %d after shutdown, want 0", code)
	}
	if !strings.Contains(stdout.String(), demoEmail) || !strings.Contains(stdout.String(), demoPassword) {
		t.Fatalf("dev mode did not print the demo credentials: %q", stdout.String())
	}
	// The seed is idempotent: a second start on the same database works.
	_, _, stop = startServe(t, c)
	if code := stop(); code != 0 {
		t.Fatalf("second start: exit %d", code)
	}
	code, out, _ := c.run("", "clients", "list")
	if code != 0 || !strings.Contains(out, "mobile") || !strings.Contains(out, "native") {
		t.Fatalf("dev clients not seeded: %q", out)
	}
}

// writeMasterKey writes a fresh master key file and returns its path.
func writeMasterKey(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(masterkey.Generate().Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeKeyFile writes key to a file with mode and returns its path.
func writeKeyFile(t *testing.T, key string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMasterKeyErrors(t *testing.T) {
	url := sqliteURL(t)
	// serve is told to listen where it cannot, so that a key it wrongly
	// accepts ends the run with the wrong message instead of serving.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing outside dev mode", nil, "no master key"},
		{"malformed", map[string]string{"TOKEND_MASTER_KEY": "not base64!!"}, "not base64"},
		{"short", map[string]string{"TOKEND_MASTER_KEY": "c2hvcnQ="}, "5 bytes"},
		{"unreadable file", map[string]string{"TOKEND_MASTER_KEY_FILE": "/nonexistent/master.key"}, "cannot read"},
		{"file readable by others", map[string]string{"TOKEND_MASTER_KEY_FILE": writeKeyFile(t, masterkey.Generate().Encode(), 0o644)}, "group or others"},
		{"no entropy", map[string]string{"TOKEND_MASTER_KEY": base64.StdEncoding.EncodeToString(make([]byte, 32))}, "no entropy"},
		{"no entropy in the file", map[string]string{"TOKEND_MASTER_KEY_FILE": writeKeyFile(t, strings.Repeat("A", 43)+"=", 0o600)}, "no entropy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t, url)
			for k, v := range tc.env {
				c.env[k] = v
			}
			code, _, stderr := c.run("", "serve", "--listen", busy.Addr().String())
			if code != 1 || !strings.Contains(lastLine(stderr), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, stderr, tc.want)
			}
			mustOneLine(t, lastLine(stderr))
		})
	}
	// A different key than the one the database was set up with is named as
	// such, not reported as a crash or a decryption error deep inside.
	c := newCLI(t, url)
	c.env["TOKEND_MASTER_KEY_FILE"] = writeMasterKey(t)
	if code, _, stderr := c.run("", "keys", "rotate", "--force"); code != 0 {
		t.Fatalf("first use: %q", stderr)
	}
	c.env["TOKEND_MASTER_KEY_FILE"] = writeMasterKey(t)
	code, _, stderr := c.run("", "keys", "rotate")
	if code != 1 || !strings.Contains(stderr, "does not match") {
		t.Fatalf("wrong master key: exit %d %q", code, stderr)
	}
}

// lastLine returns the last line of s (serve logs JSON lines before the
// final error line).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1] + "\n"
}

func TestServeListenError(t *testing.T) {
	c := newCLI(t, sqliteURL(t))
	c.env["TOKEND_MASTER_KEY_FILE"] = writeMasterKey(t)
	c.env["TOKEND_LISTEN"] = "256.0.0.1:99999"
	code, _, stderr := c.run("", "serve")
	if code != 1 {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	_ = fmt.Sprint()
}

// TestMasterKeyLossRecovery follows the README's procedure for a master key
// lost for good: delete what it encrypted and its check value, start with a
// new key; users, clients and sessions survive.
func TestMasterKeyLossRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokend.db")
	c := newCLI(t, "sqlite:"+path)
	c.env["TOKEND_MASTER_KEY_FILE"] = writeMasterKey(t)
	if code, _, stderr := c.run("old password 1\n", "users", "create", "--email", "kept@example.com", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := c.run("", "keys", "rotate", "--force"); code != 0 {
		t.Fatal(stderr)
	}
	// A client secret makes the data keys exist (sealed under the key).
	if code, _, stderr := c.run("", "clients", "create", "--id", "svc", "--kind", "server", "--redirect-uri", "https://app.example.com/cb"); code != 0 {
		t.Fatal(stderr)
	}
	c.env["TOKEND_MASTER_KEY_FILE"] = writeMasterKey(t) // the old one is lost
	if code, _, stderr := c.run("", "keys", "rotate", "--force"); code != 1 || !strings.Contains(stderr, "does not match") {
		t.Fatalf("with another key: %d %q", code, stderr)
	}
	db := dbtest.SQLiteAt(t, path)
	for _, q := range []string{`DELETE FROM mail_outbox`, `DELETE FROM signing_keys`, `DELETE FROM data_keys`,
		`DELETE FROM user_factors WHERE kind = 'totp'`, `DELETE FROM recovery_codes`, `DELETE FROM onetime_tokens WHERE data IS NOT NULL`,
		`DELETE FROM meta WHERE name = 'master_key_check'`} {
		if _, err := db.Writer().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if code, out, stderr := c.run("", "keys", "rotate", "--force"); code != 0 || !strings.Contains(out, "current key") {
		t.Fatalf("after the recovery: %d %q %q", code, out, stderr)
	}
	if code, _, stderr := c.run("", "clients", "create", "--id", "svc2", "--kind", "server", "--redirect-uri", "https://app.example.com/cb"); code != 0 {
		t.Fatalf("a client secret after the recovery: %q", stderr)
	}
	if _, out, _ := c.run("", "users", "list"); !strings.Contains(out, "kept@example.com") {
		t.Fatal("the user did not survive the recovery")
	}
}
