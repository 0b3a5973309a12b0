package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is a process the suite started (tokend or the baseline server),
// with its output in a log file.
type child struct {
	name string
	cmd  *exec.Cmd
	url  string
	log  string
	done chan struct{}
	err  error
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startChild starts bin with args and env, its stdout and stderr in
// logPath, and waits until GET readyPath on its port answers 200.
func startChild(ctx context.Context, name, bin string, args, env []string, port int, logPath, readyPath string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	// The children must not outlive the harness, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.done:
			return nil, fmt.Errorf("%s exited during start (%v): %s", name, c.err, tail(logPath))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := hc.Get(c.url + readyPath)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("%s not ready after 60s: %s", name, tail(logPath))
		}
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// alive reports whether the process still runs.
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM (tokend drains, bounded at 20 s) and kills the
// process if it is still there after 30 s.
func (c *child) stop() {
	if c == nil || !c.alive() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	b = bytes.TrimSpace(b)
	lines := bytes.Split(b, []byte{'\n'})
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return string(bytes.Join(lines, []byte{'\n'}))
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newMasterKey returns a fresh 32-byte master key, base64.
func newMasterKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// baseEnv is the harness's environment without any TOKEND_ variable, so
// that the caller's settings never leak into the children.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEND_") {
			env = append(env, kv)
		}
	}
	return env
}

// databases creates and drops the suite's databases: SQLite files in the
// work directory, Postgres databases on the server named by the admin URL.
type databases struct {
	dir      string
	admin    *sql.DB
	adminURL *url.URL
	prefix   string
	created  []string
}

func newDatabases(ctx context.Context, dir, postgresURL string) (*databases, error) {
	d := &databases{dir: dir, prefix: "tokend_load_" + randomHex(4)}
	if postgresURL == "" {
		return d, nil
	}
	u, err := url.Parse(postgresURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("--postgres is not a postgres:// URL")
	}
	db, err := sql.Open("postgres", postgresURL)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	d.admin, d.adminURL = db, u
	return d, nil
}

// postgresURL returns the URL of database name (same server, user and
// parameters as the admin URL).
func (d *databases) postgresURL(name string) string {
	u := *d.adminURL
	u.Path = "/" + name
	return u.String()
}

// create makes a fresh database (a copy of template when not empty) and
// returns tokend's URL for it.
func (d *databases) create(ctx context.Context, backend, name, template string) (string, error) {
	switch backend {
	case "sqlite":
		path := filepath.Join(d.dir, name+".db")
		if template != "" {
			src := filepath.Join(d.dir, template+".db")
			if err := copyFile(src, path); err != nil {
				return "", err
			}
			if _, err := os.Stat(src + "-wal"); err == nil {
				if err := copyFile(src+"-wal", path+"-wal"); err != nil {
					return "", err
				}
			}
		}
		return "sqlite:" + path, nil
	case "postgres":
		if d.admin == nil {
			return "", errors.New("no Postgres URL given")
		}
		full := d.prefix + "_" + name
		q := "CREATE DATABASE " + full
		if template != "" {
			q += " TEMPLATE " + d.prefix + "_" + template
		}
		if _, err := d.admin.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("postgres: %s: %w", q, err)
		}
		d.created = append(d.created, full)
		return d.postgresURL(full), nil
	}
	return "", fmt.Errorf("unknown backend %q", backend)
}

// dropAll drops every Postgres database the suite created.
func (d *databases) dropAll() {
	if d.admin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := len(d.created) - 1; i >= 0; i-- {
		_, _ = d.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.created[i]+" WITH (FORCE)")
	}
	d.admin.Close()
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
