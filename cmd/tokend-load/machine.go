package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// machine describes where the suite ran.
type machine struct {
	CPU      string
	Cores    int
	Memory   string
	Go       string
	Postgres string
	Tokend   string
}

func describeMachine(ctx context.Context, admin *sql.DB, tokendBin string) machine {
	m := machine{CPU: "unknown", Cores: runtime.NumCPU(), Memory: "unknown", Go: runtime.Version(), Postgres: "no PostgreSQL"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if v, ok := parseStatusKB(b, "MemTotal"); ok {
			m.Memory = fmt.Sprintf("%.1f GiB", float64(v)/(1<<30))
		}
	}
	if admin != nil {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var v string
		if err := admin.QueryRowContext(qctx, "SELECT version()").Scan(&v); err == nil {
			if i := strings.Index(v, " on "); i > 0 {
				v = v[:i]
			}
			m.Postgres = v
		}
		cancel()
	}
	if out, err := exec.CommandContext(ctx, tokendBin, "version").Output(); err == nil {
		m.Tokend = string(bytes.TrimSpace(out))
	}
	return m
}
