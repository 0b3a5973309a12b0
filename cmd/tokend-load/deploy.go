package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// env is a tokend child's environment.
func (s *suite) env(dbURL, alg string, extra ...string) []string {
	// Workers follow one session each as fast as they can, far past the
	// per-session refresh limit meant for real clients; and several
	// instances run on one machine, so none takes the admin port.
	env := append(baseEnv(), "TOKEND_DEV=false", "TOKEND_MASTER_KEY="+s.master, "TOKEND_DATABASE_URL="+dbURL,
		"TOKEND_REFRESH_RATE_LIMIT=0", "TOKEND_ADMIN_LISTEN=off")
	if alg != "" {
		env = append(env, "TOKEND_SIGNING_ALG="+alg)
	}
	return append(env, extra...)
}

// cli runs a tokend command against dbURL.
func (s *suite) cli(ctx context.Context, dbURL, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.o.tokend, args...)
	cmd.Env = s.env(dbURL, "")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("tokend %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// seed creates the store's template database: the two clients and the
// load users, through the CLI. Every run's database is a copy of it.
func (s *suite) seed(ctx context.Context, backend string) error {
	s.progress("seeding the %s template: clients web and mobile, %d users", backend, len(s.users))
	dbURL, err := s.dbs.create(ctx, backend, "tpl", "")
	if err != nil {
		return err
	}
	if _, err := s.cli(ctx, dbURL, "", "clients", "create", "--id", "web", "--kind", "web"); err != nil {
		return err
	}
	// mobile as tokend's dev client: the password grant for the login and
	// refresh scenarios, the code flow (loopback redirect, any port) for
	// code-exchange.
	if _, err := s.cli(ctx, dbURL, "", "clients", "create", "--id", "mobile", "--kind", "native", "--grant", "password",
		"--grant", "refresh_token", "--grant", "authorization_code", "--redirect-uri", codeRedirectURI); err != nil {
		return err
	}
	if err := s.seedMachineClients(ctx, backend, dbURL); err != nil {
		return err
	}
	// Each user is one argon2id hash and a durable commit in its own
	// process: four at a time.
	sem := make(chan struct{}, 4)
	errc := make(chan error, len(s.users))
	for _, email := range s.users {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := s.cli(ctx, dbURL, s.password+"\n", "users", "create", "--email", email, "--password-stdin", "--verified")
			errc <- err
		}()
	}
	for range s.users {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// seedMachineClients creates the clients of the client-credentials and
// introspect scenarios and keeps the secrets tokend prints once: svc (server,
// client_credentials), rs (a resource server: server, no grant, the API's
// audience) and api-user (native, password and refresh_token, access
// tokens for the API).
func (s *suite) seedMachineClients(ctx context.Context, backend, dbURL string) error {
	secrets := map[string]string{}
	for _, args := range [][]string{
		{"--id", loadServerClient, "--kind", "server", "--grant", "client_credentials"},
		{"--id", loadResourceClient, "--kind", "server", "--audience", loadAPIAudience},
	} {
		out, err := s.cli(ctx, dbURL, "", append(append([]string{"clients", "create"}, args...), "--json")...)
		if err != nil {
			return err
		}
		var c struct {
			ID     string `json:"client_id"`
			Secret string `json:"client_secret"`
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil || c.Secret == "" {
			return fmt.Errorf("tokend clients create %s --json: no client_secret in its output", args[1])
		}
		secrets[c.ID] = c.Secret
	}
	if _, err := s.cli(ctx, dbURL, "", "clients", "create", "--id", loadAPIUserClient, "--kind", "native",
		"--grant", "password", "--grant", "refresh_token", "--audience", loadAPIAudience); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string]map[string]string{}
	}
	s.secrets[backend] = secrets
	return nil
}

// startTokend starts one tokend on dbURL.
func (s *suite) startTokend(ctx context.Context, name, dbURL, alg, issuer string, extra ...string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if issuer == "" {
		issuer = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	env := s.env(dbURL, alg, append([]string{fmt.Sprintf("TOKEND_LISTEN=127.0.0.1:%d", port), "TOKEND_ISSUER=" + issuer},
		extra...)...)
	s.mu.Lock()
	s.seq++
	logPath := fmt.Sprintf("%s/%03d-%s.log", s.dir, s.seq, name)
	s.mu.Unlock()
	c, err := startChild(ctx, name, s.o.tokend, []string{"serve"}, env, port, logPath, "/readyz")
	if err != nil {
		return nil, err
	}
	s.track(c)
	if b, err := fetch(ctx, newHTTPClient(1, 5*time.Second), c.url+"/.well-known/jwks.json"); err == nil {
		s.jwksSize = max(s.jwksSize, len(b))
	}
	return c, nil
}

func (s *suite) track(c *child) {
	s.mu.Lock()
	s.children = append(s.children, c)
	s.mu.Unlock()
}

// deployment says how to start a row's tokend processes.
type deployment struct {
	name   string
	dbURL  string
	alg    string
	issuer string   // "" gives each instance its own URL
	extra  []string // more TOKEND_ variables
	n      int      // instances (0 means 1)
}

// start starts the deployment's instances.
func (s *suite) start(ctx context.Context, d deployment) ([]*child, error) {
	var servers []*child
	for i := range max(d.n, 1) {
		name := d.name
		if d.n > 1 {
			name += fmt.Sprintf("-%d", i+1)
		}
		c, err := s.startTokend(ctx, name, d.dbURL, d.alg, d.issuer, d.extra...)
		if err != nil {
			stopAll(servers)
			return nil, err
		}
		servers = append(servers, c)
	}
	return servers, nil
}

func stopAll(cs []*child) {
	for _, c := range cs {
		c.stop()
	}
}

// runDeployed runs a row on fresh tokend processes, so that each row's peak
// RSS is its own (Go keeps freed memory for a while, and VmHWM never goes
// down by itself). The refresh chains the workers start from are logged in
// beforehand on other processes of the same database, so the measured
// process hashes no password the scenario does not ask for.
func (s *suite) runDeployed(ctx context.Context, r *row, cfg Config, runs int, d deployment,
	before func(context.Context, Config) error) error {
	if needsSessions(cfg.Scenario) {
		servers, err := s.start(ctx, d)
		if err != nil {
			return err
		}
		pcfg := cfg
		pcfg.Targets, pcfg.PIDs = urls(servers), nil
		err = Prepare(ctx, pcfg)
		stopAll(servers)
		if err != nil {
			r.Failures = append(r.Failures, "preparing sessions: "+err.Error())
			s.rows = append(s.rows, r)
			return nil
		}
	}
	servers, err := s.start(ctx, d)
	if err != nil {
		return err
	}
	defer stopAll(servers)
	cfg.Targets, cfg.PIDs = urls(servers), pids(servers)
	s.runRow(ctx, r, cfg, runs, servers, before)
	return ctx.Err()
}

func urls(cs []*child) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.url
	}
	return out
}

func pids(cs []*child) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.pid()
	}
	return out
}
