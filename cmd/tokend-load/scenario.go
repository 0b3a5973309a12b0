package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Scenario names.
const (
	scJWKS          = "jwks"
	scLoginWeb      = "login-web"
	scLoginNative   = "login-native"
	scRefreshCookie = "refresh-cookie"
	scRefreshToken  = "refresh-token"
	scMixed         = "mixed"
	scReuse         = "reuse"
	scCodeExchange  = "code-exchange"
	scBaselineHTTP  = "baseline-http"
	scBaselineDB    = "baseline-db"
	// scLoginThenRefresh is a burst of logins (Config.Burst) on the
	// measured process, then refresh-token load alone, watching the
	// server's RSS fall back once the hashing is over.
	scLoginThenRefresh  = "login-then-refresh"
	scClientCredentials = "client-credentials"
	scIntrospect        = "introspect"
)

var scenarios = []string{scJWKS, scLoginWeb, scLoginNative, scRefreshCookie, scRefreshToken, scMixed, scReuse,
	scCodeExchange, scBaselineHTTP, scBaselineDB, scLoginThenRefresh, scClientCredentials, scIntrospect}

// mixCycle is the mixed scenario's fixed cycle: 1 login, 20 refreshes and
// 200 JWKS fetches, interleaved (a refresh every 11th step).
const (
	mixCycle        = 221
	mixRefreshEvery = 11
)

// run is what all workers of one run share.
type run struct {
	cfg      Config
	eps      []endpoints
	verifier *verifier
	pool     *sessionPool
	baseDB   *baselineDB
}

// worker is one closed-loop client: setup runs before the warm-up (never
// measured), step performs one unit of work, done hands back what the next
// run may reuse.
type worker interface {
	setup(ctx context.Context) error
	step(ctx context.Context)
	done()
}

// base holds what every HTTP worker has: its tally, its connection state,
// the instance it is pinned to, and its place in the user list.
type base struct {
	id     int
	run    *run
	rec    *recorder
	c      conn
	target int
	user   int
}

func (r *run) newBase(id int, hc *http.Client) base {
	b := base{id: id, run: r, rec: newRecorder(4096), c: conn{hc: hc}}
	if len(r.eps) > 0 {
		b.target = id % len(r.eps)
	}
	if n := len(r.cfg.Users); n > 0 {
		b.user = id % n
	}
	return b
}

func (b *base) exchange(req *http.Request) (response, string, time.Duration) {
	t0 := time.Now()
	r, kind := b.c.do(req)
	return r, kind, time.Since(t0)
}

// fetchJWKS sends req (a GET of the JWKS, which may be sent again once its
// answer is read) and records the outcome: a success needs a 200 with a body.
func (b *base) fetchJWKS(req *http.Request) {
	r, kind, d := b.exchange(req)
	switch {
	case kind != "":
		b.rec.failure(kind, d)
	case r.status != http.StatusOK || len(r.body) == 0:
		b.rec.failure(statusKind(r), d)
	default:
		b.rec.success(d)
	}
}

func (b *base) nextEmail() string {
	users := b.run.cfg.Users
	e := users[b.user]
	b.user = (b.user + b.run.cfg.Workers) % len(users)
	return e
}

func (b *base) client(web bool) string {
	if web {
		return b.run.cfg.WebClient
	}
	return b.run.cfg.NativeClient
}

// tokens reads a token answer: the access token and the refresh token (from
// the cookie for web clients, from the body for native ones). kind is ""
// on success.
func tokens(r response, web bool) (access, refresh, kind string) {
	if r.status != http.StatusOK {
		return "", "", statusKind(r)
	}
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.AccessToken == "" {
		return "", "", "malformed token response"
	}
	refresh = tr.RefreshToken
	if web {
		refresh = r.cookie
	}
	if refresh == "" {
		return "", "", "no refresh token in the answer"
	}
	return tr.AccessToken, refresh, ""
}

// login logs the next user in on instance `at`.
func (b *base) login(at int, web bool) (access, refresh, kind string, d time.Duration) {
	email := b.nextEmail()
	ep := b.run.eps[at]
	var req *http.Request
	if web {
		req = ep.loginWeb(email, b.run.cfg.Password, b.run.cfg.WebClient)
	} else {
		req = ep.loginNative(email, b.run.cfg.Password, b.run.cfg.NativeClient)
	}
	r, kind, d := b.exchange(req)
	if kind != "" {
		return "", "", kind, d
	}
	access, refresh, kind = tokens(r, web)
	return access, refresh, kind, d
}

// refresh rotates token on instance `at`.
func (b *base) refresh(at int, web bool, token string) (access, refresh, kind string, d time.Duration) {
	ep := b.run.eps[at]
	var req *http.Request
	if web {
		req = ep.refreshCookie(token)
	} else {
		req = ep.refreshNative(token, b.run.cfg.NativeClient)
	}
	r, kind, d := b.exchange(req)
	if kind != "" {
		return "", "", kind, d
	}
	access, refresh, kind = tokens(r, web)
	return access, refresh, kind, d
}

// verify checks an access token issued by instance `from` when the run
// verifies tokens, recording a failure.
func (b *base) verify(ctx context.Context, access string, from int, web bool) {
	if b.run.verifier == nil {
		return
	}
	if kind := b.run.verifier.check(ctx, access, from, b.client(web)); kind != "" {
		b.rec.failure(kind, -1)
	}
}

// setupLogin logs in before the run, retrying what overload causes (429,
// timeouts) for a while: setup is not measured and must not fail on a busy
// server.
func (b *base) setupLogin(ctx context.Context, web bool) (string, error) {
	return retrySetup(ctx, "login for worker setup", func() (string, string) {
		_, refresh, kind, _ := b.login(b.target, web)
		return refresh, kind
	})
}

// retrySetup calls try (which returns a value or the kind of its failure)
// until it succeeds, retrying for about 10 s what overload causes: a 429, a
// 503 temporarily_unavailable or a timeout, after any prefix ending in ": ".
func retrySetup(ctx context.Context, what string, try func() (string, string)) (string, error) {
	var last string
	for attempt := 0; attempt < 100; attempt++ {
		v, kind := try()
		if kind == "" {
			return v, nil
		}
		last = kind
		if i := strings.LastIndex(kind, ": "); i >= 0 {
			kind = kind[i+2:]
		}
		if !strings.HasPrefix(kind, "HTTP 429") && kind != "timeout" && kind != "HTTP 503 temporarily_unavailable" {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", &setupError{what + ": " + last}
}

type setupError struct{ msg string }

func (e *setupError) Error() string { return e.msg }

// jwksWorker GETs the JWKS (or the baseline body) in a loop.
type jwksWorker struct {
	base
	req *http.Request
}

func (w *jwksWorker) setup(context.Context) error {
	w.req = w.run.eps[w.target].jwksRequest()
	return nil
}

func (w *jwksWorker) step(context.Context) { w.fetchJWKS(w.req) }

func (w *jwksWorker) done() {}

// loginWorker logs in in a loop, cycling over the users.
type loginWorker struct {
	base
	web bool
}

func (w *loginWorker) setup(context.Context) error { return nil }

func (w *loginWorker) step(ctx context.Context) {
	access, _, kind, d := w.login(w.target, w.web)
	if kind != "" {
		w.rec.failure(kind, d)
		return
	}
	w.rec.success(d)
	w.verify(ctx, access, w.target, w.web)
}

func (w *loginWorker) done() {}

// chainWorker follows its own refresh-token rotation chain. A replayer
// (the reuse scenario) also keeps the first token it rotated out of each
// session and, once that is older than the reuse age, presents it again
// (on the next instance when there are several): that must be refused as
// reuse, and must kill the session's newest token too; then it logs in
// again.
type chainWorker struct {
	base
	web      bool
	token    string
	replayer bool
	old      string
	oldAt    time.Time
}

func (w *chainWorker) setup(ctx context.Context) error {
	if t, ok := w.run.pool.take(w.key()); ok {
		w.token = t
		return nil
	}
	t, err := w.setupLogin(ctx, w.web)
	w.token = t
	return err
}

func (w *chainWorker) done() {
	if w.token != "" {
		w.run.pool.put(w.key(), w.token)
	}
}

// key is where the worker's refresh chain waits between runs: per kind,
// instance and client.
func (w *chainWorker) key() poolKey {
	return poolKey{web: w.web, target: w.target, client: w.client(w.web)}
}

func (w *chainWorker) step(ctx context.Context) {
	if w.token == "" {
		access, refresh, kind, _ := w.login(w.target, w.web)
		if kind != "" {
			w.rec.failure("re-login: "+kind, -1)
			pause(ctx, 50*time.Millisecond)
			return
		}
		w.verify(ctx, access, w.target, w.web)
		w.token, w.old = refresh, ""
		return
	}
	if w.replayer && w.old != "" && time.Since(w.oldAt) >= w.run.cfg.ReuseAge {
		w.replay(ctx)
		return
	}
	access, refresh, kind, d := w.refresh(w.target, w.web, w.token)
	switch kind {
	case "":
		w.rec.success(d)
		w.verify(ctx, access, w.target, w.web)
		if w.replayer && w.old == "" {
			w.old, w.oldAt = w.token, time.Now()
		}
		w.token = refresh
	case "timeout", "connection error":
		// The server may or may not have rotated: presenting the same
		// token again inside the grace window gets the same child.
		w.rec.failure(kind, d)
	default:
		w.rec.failure(kind, d)
		w.token, w.old = "", ""
	}
}

const kindReuse = "HTTP 400 invalid_grant"

func (w *chainWorker) replay(ctx context.Context) {
	at := (w.target + 1) % len(w.run.eps)
	_, _, kind, d := w.refresh(at, w.web, w.old)
	switch kind {
	case "":
		w.rec.failure("reuse missed (replay got 200)", d)
	case kindReuse:
		w.rec.note("reuse detected as expected", d)
		// The whole family is revoked: the newest token must fail too.
		_, _, k2, _ := w.refresh(w.target, w.web, w.token)
		switch k2 {
		case kindReuse:
			w.rec.note("newest token of the family refused", -1)
		case "":
			w.rec.failure("family not revoked after reuse", -1)
		default:
			w.rec.failure("after reuse: "+k2, -1)
		}
	default:
		w.rec.failure("replay: "+kind, d)
	}
	w.token, w.old = "", ""
}

// mixedWorker runs the realistic mix: per cycle of 221 steps, one login,
// 20 refreshes and 200 JWKS fetches, every access token verified.
type mixedWorker struct {
	chainWorker
	n    int
	jwks *http.Request
}

func (w *mixedWorker) setup(ctx context.Context) error {
	w.jwks = w.run.eps[w.target].jwksRequest()
	// Spread the workers over the cycle so their logins do not coincide.
	w.n = w.id * mixCycle / max(w.run.cfg.Workers, 1)
	return w.chainWorker.setup(ctx)
}

func (w *mixedWorker) step(ctx context.Context) {
	pos := w.n % mixCycle
	w.n++
	switch {
	case pos == 0 || (pos%mixRefreshEvery == 0 && w.token == ""):
		access, refresh, kind, d := w.login(w.target, w.web)
		if kind != "" {
			w.rec.failure(kind, d)
			return
		}
		w.rec.success(d)
		w.verify(ctx, access, w.target, w.web)
		w.token = refresh
	case pos%mixRefreshEvery == 0:
		access, refresh, kind, d := w.refresh(w.target, w.web, w.token)
		switch kind {
		case "":
			w.rec.success(d)
			w.verify(ctx, access, w.target, w.web)
			w.token = refresh
		case "timeout", "connection error":
			w.rec.failure(kind, d)
		default:
			w.rec.failure(kind, d)
			w.token = ""
		}
	default:
		w.fetchJWKS(w.jwks)
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sessionPool carries refresh chains and sign-in sessions from one run to
// the next on the same server, so that runs with many workers do not start
// with hundreds of password hashes.
type sessionPool struct {
	mu sync.Mutex
	m  map[poolKey][]string
}

type poolKey struct {
	web    bool
	target int
	// signIn marks sign-in session cookies (code-exchange) rather than
	// refresh tokens.
	signIn bool
	// client is the refresh token's client.
	client string
}

func newSessionPool() *sessionPool { return &sessionPool{m: map[poolKey][]string{}} }

func (p *sessionPool) take(k poolKey) (string, bool) {
	if p == nil {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.m[k]
	if len(s) == 0 {
		return "", false
	}
	t := s[len(s)-1]
	p.m[k] = s[:len(s)-1]
	return t, true
}

func (p *sessionPool) put(k poolKey, token string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[k] = append(p.m[k], token)
}
