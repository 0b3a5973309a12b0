//go:build unix

package dbtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
)

// Cluster is a PostgreSQL server of one test's own: initdb in a temporary
// directory, listening on a free port of 127.0.0.1. It is for the faults
// the shared server must not suffer: a shutdown, a standby, a promotion.
type Cluster struct {
	// URL connects as the superuser postgres to the database postgres.
	URL  string
	t    testing.TB
	bin  string // the directory holding pg_ctl and initdb
	root string // holds the data directory and the server log
	data string
	cred *syscall.Credential // the postgres OS user when the test runs as root
}

// StartCluster creates and starts a new server, stopped and removed when t
// ends. It needs TOKEND_TEST_POSTGRES_URL set (as every Postgres test does)
// and PostgreSQL's server programs (pg_ctl and initdb on PATH or under
// /usr/lib/postgresql); it skips without them, or fails when
// TOKEND_TEST_REQUIRE_POSTGRES=1. Running as root, it runs the server as
// the OS user postgres.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	required := os.Getenv(RequirePostgresEnv) == "1"
	if os.Getenv(PostgresURLEnv) == "" && !required {
		t.Skipf("set %s to run against PostgreSQL", PostgresURLEnv)
	}
	bin := serverBin()
	if bin == "" {
		if required {
			t.Fatalf("%s=1 but PostgreSQL's pg_ctl and initdb are not installed", RequirePostgresEnv)
		}
		t.Skip("PostgreSQL's pg_ctl and initdb are not installed")
	}
	c := &Cluster{t: t, bin: bin}
	root, err := os.MkdirTemp("", "tokend-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no OS user postgres to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.root, c.data = root, filepath.Join(root, "data")
	c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	port := freePort(t)
	conf := fmt.Sprintf(`
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 50
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
`, port)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	t.Cleanup(func() {
		_ = c.ctl("stop", "-m", "immediate", "-w")
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(root, "server.log")); err == nil {
				t.Logf("server log:\n%s", b)
			}
		}
	})
	c.Start()
	mark(t)
	return c
}

// Start starts the server as it is configured (a primary unless a standby
// was promoted) and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.ctl("start", "-w", "-t", "120"); err != nil {
		c.t.Fatal(err)
	}
}

// Stop shuts the server down (fast: sessions are terminated, 57P01) and
// waits until it is down.
func (c *Cluster) Stop() {
	c.t.Helper()
	if err := c.ctl("stop", "-m", "fast", "-w", "-t", "120"); err != nil {
		c.t.Fatal(err)
	}
}

// StartStandby starts the stopped server as a standby: it replays its WAL
// and then waits for more that never comes. With hot, it accepts read-only
// sessions; without, it answers every connection with 57P03. It does not
// wait for either: poll for what the test needs.
func (c *Cluster) StartStandby(hot bool) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.data, "standby.signal"), nil, 0o600); err != nil {
		c.t.Fatal(err)
	}
	if c.cred != nil {
		if err := os.Chown(filepath.Join(c.data, "standby.signal"), int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			c.t.Fatal(err)
		}
	}
	mode := "off"
	if hot {
		mode = "on"
	}
	if err := c.ctl("start", "-W", "-o", "-c hot_standby="+mode); err != nil {
		c.t.Fatal(err)
	}
}

// Promote makes the standby a primary (a failover) and waits until it is.
func (c *Cluster) Promote() {
	c.t.Helper()
	if err := c.ctl("promote", "-w", "-t", "120"); err != nil {
		c.t.Fatal(err)
	}
}

// ctl runs pg_ctl on the data directory, logging the server to server.log.
func (c *Cluster) ctl(args ...string) error {
	args = append([]string{"-D", c.data, "-l", filepath.Join(c.root, "server.log")}, args...)
	return c.command("pg_ctl", args...)
}

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	if err := c.command(name, args...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) command(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out.Bytes())
	}
	return nil
}

// serverBin finds the directory of pg_ctl and initdb: on PATH (through
// symlinks, so that pg_ctl finds its postgres), else the newest
// /usr/lib/postgresql/N/bin.
func serverBin() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
				return filepath.Dir(p)
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
