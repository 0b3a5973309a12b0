package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The code-exchange scenario's client side of the authorization code flow
// (RFC 6749 §4.1 with PKCE, RFC 7636), as a native app runs it.
const (
	// codeRedirectURI is the mobile client's registered redirect URI
	// (deploy.go registers it; tokend's dev clients have it too).
	codeRedirectURI = "http://127.0.0.1/callback"
	codeScope       = "openid email"
	// codeVerifyEvery: without Config.Verify, the first exchange of each
	// worker and every 16th after it have their access and ID tokens
	// verified; a sample keeps the harness's CPU for the load.
	codeVerifyEvery = 16

	signInCookie = "__Host-tokend_signin"
	csrfCookie   = "__Host-tokend_csrf"

	// Names of the latencies recorded besides the exchange's.
	hopAuthorize = "authorize hop"
	hopStep      = "whole step"
)

// codeWorker exchanges authorization codes in a loop. In setup (not
// measured) it signs in once on tokend's login page, as a browser does,
// keeps the sign-in session's cookie, and obtains a stock of codes from
// GET /oauth/authorize with that cookie and a fresh PKCE verifier each
// (single sign-on answers 302 at once). Each step exchanges one code at
// POST /oauth/token for access, refresh and ID tokens: the scenario
// measures the code exchange, as the benchmark asks. A worker whose
// stock runs out obtains its next code inline; that authorize hop is
// recorded apart (recorder.hop, reported next to the row), and counted in
// the step it precedes.
type codeWorker struct {
	base
	cookie string
	// sid is the sign-in session's id as the first verified ID token of
	// the cookie named it: every later one must name the same.
	sid   string
	n     int    // codes obtained
	x     int    // codes exchanged
	query string // the authorization request's fixed parameters
	stock []mintedCode
}

// mintedCode is a code waiting to be exchanged, with what its exchange
// needs.
type mintedCode struct {
	code, verifier, nonce string
}

// The stock of codes each worker obtains before the measurement: enough
// for the warm-up and the measured time at codeRateCeiling exchanges per
// second across all workers (above the bare database round trip on this
// machine, so no run is short of codes), but only what the workers can
// obtain within codeMintWindow (each worker its share of it: the setups run
// --setup-concurrency at a time), so that the oldest code is still well
// within its 60 s when the run ends. A worker whose stock runs out obtains
// codes inline (the authorize hop, reported apart).
const (
	codeRateCeiling = 6000
	codeMintWindow  = 30 * time.Second
	codeStockMin    = 50
)

// stockSize is how many codes each worker obtains for cfg's run.
func stockSize(cfg Config) int {
	n := int(math.Ceil(codeRateCeiling * (cfg.Warmup + cfg.Duration).Seconds() / float64(max(cfg.Workers, 1))))
	return max(n, codeStockMin)
}

func (w *codeWorker) key() poolKey { return poolKey{target: w.target, signIn: true} }

func (w *codeWorker) setup(ctx context.Context) error {
	w.query = url.Values{"response_type": {"code"}, "client_id": {w.run.cfg.NativeClient},
		"redirect_uri": {codeRedirectURI}, "scope": {codeScope}, "code_challenge_method": {"S256"}}.Encode()
	if c, ok := w.run.pool.take(w.key()); ok {
		w.cookie = c
	} else {
		c, err := retrySetup(ctx, "sign-in for worker setup", w.signIn)
		w.cookie = c
		if err != nil {
			return err
		}
	}
	return w.fillStock(ctx)
}

// fillStock obtains the worker's stock of codes (not measured).
func (w *codeWorker) fillStock(ctx context.Context) error {
	w.stock = w.stock[:0]
	cfg := w.run.cfg
	want := stockSize(cfg)
	until := time.Now().Add(codeMintWindow * time.Duration(max(cfg.SetupConcurrency, 1)) / time.Duration(max(cfg.Workers, 1)))
	for len(w.stock) < want && ctx.Err() == nil && (len(w.stock) < codeStockMin || time.Now().Before(until)) {
		m, kind := w.mint()
		if kind != "" {
			return fmt.Errorf("code for the worker's stock: %s", kind)
		}
		w.stock = append(w.stock, m)
	}
	return ctx.Err()
}

// mint obtains one code with the sign-in cookie.
func (w *codeWorker) mint() (mintedCode, string) {
	w.n++
	p := newPKCE()
	tag := strconv.Itoa(w.id) + "-" + strconv.Itoa(w.n)
	state, nonce := "s"+tag, "n"+tag
	r, kind, d := w.exchange(w.authorizeRequest(p, state, nonce))
	w.rec.hop(hopAuthorize, d)
	if kind != "" {
		return mintedCode{}, "authorize: " + kind
	}
	code, kind := w.codeOf(r, state)
	if kind != "" {
		return mintedCode{}, "authorize: " + kind
	}
	return mintedCode{code: code, verifier: p.verifier, nonce: nonce}, ""
}

func (w *codeWorker) done() {
	if w.cookie != "" {
		w.run.pool.put(w.key(), w.cookie)
	}
}

// pkce is a code verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	v := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authorizeRequest is GET /oauth/authorize for w's client with p's
// challenge, state and nonce, sending the sign-in cookie when there is one.
func (w *codeWorker) authorizeRequest(p pkce, state, nonce string) *http.Request {
	ep := w.run.eps[w.target]
	req := ep.get(ep.base + "/oauth/authorize?" + w.query + "&code_challenge=" + p.challenge + "&state=" +
		url.QueryEscape(state) + "&nonce=" + url.QueryEscape(nonce))
	if w.cookie != "" {
		req.Header["Cookie"] = []string{signInCookie + "=" + w.cookie}
	}
	return req
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// signIn signs the next user in as a browser does: GET /oauth/authorize
// without a session shows the login page (and sets the CSRF cookie); its
// form, posted to POST /login, answers 303 with a code and sets the
// sign-in cookie, whose value it returns (or the kind of failure).
func (w *codeWorker) signIn() (string, string) {
	w.cookie, w.sid = "", ""
	r, kind, _ := w.exchange(w.authorizeRequest(newPKCE(), "setup", "setup"))
	switch {
	case kind != "":
		return "", "login page: " + kind
	case r.status != http.StatusOK:
		return "", "login page: " + statusKind(r)
	}
	csrf := cookieValue(r.header, csrfCookie)
	form := url.Values{"email": {w.nextEmail()}, "password": {w.run.cfg.Password}, "action": {"login"}}
	for _, m := range hiddenInput.FindAllSubmatch(r.body, -1) {
		form.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	if csrf == "" || form.Get("csrf") == "" || form.Get("request") == "" {
		return "", "login page without CSRF cookie, token or request"
	}
	req := w.run.eps[w.target].post("/login", "application/x-www-form-urlencoded", form.Encode())
	req.Header["Cookie"] = []string{csrfCookie + "=" + csrf}
	r, kind, _ = w.exchange(req)
	switch {
	case kind != "":
		return "", "sign-in: " + kind
	case r.status != http.StatusSeeOther:
		return "", "sign-in: " + statusKind(r)
	}
	c := cookieValue(r.header, signInCookie)
	if c == "" {
		return "", "sign-in: no sign-in cookie"
	}
	return c, ""
}

// cookieValue is the value of the cookie name set in h, or "".
func cookieValue(h http.Header, name string) string {
	for _, sc := range h["Set-Cookie"] {
		if v, ok := strings.CutPrefix(sc, name+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			return v
		}
	}
	return ""
}

func (w *codeWorker) step(ctx context.Context) {
	if w.cookie == "" {
		c, kind := w.signIn()
		if kind != "" {
			w.rec.failure("sign in again: "+kind, -1)
			pause(ctx, 50*time.Millisecond)
			return
		}
		w.cookie, w.stock = c, w.stock[:0]
	}
	t0 := time.Now()
	var m mintedCode
	if n := len(w.stock); n > 0 {
		m, w.stock = w.stock[n-1], w.stock[:n-1]
	} else {
		var kind string
		if m, kind = w.mint(); kind != "" {
			w.rec.failure(kind, -1)
			return
		}
	}
	r, kind, d := w.exchange(w.tokenRequest(m.code, m.verifier))
	if kind != "" {
		w.rec.failure(kind, d)
		return
	}
	w.rec.hop(hopStep, time.Since(t0))
	if r.status != http.StatusOK {
		w.rec.failure(statusKind(r), d)
		return
	}
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.AccessToken == "" || tr.RefreshToken == "" || tr.IDToken == "" {
		w.rec.failure("malformed token response (want access, refresh and ID tokens)", d)
		return
	}
	w.rec.success(d)
	w.x++
	if v := w.run.verifier; v != nil && (w.run.cfg.Verify || w.x%codeVerifyEvery == 1) {
		client := w.run.cfg.NativeClient
		ac, kind := v.checkAccess(ctx, tr.AccessToken, w.target, client)
		if kind != "" {
			w.rec.failure(kind, -1)
			return
		}
		ic, kind := v.checkID(ctx, tr.IDToken, w.target, client, m.nonce, tr.AccessToken, ac)
		switch {
		case kind != "":
			w.rec.failure(kind, -1)
		case w.sid == "":
			w.sid = ic.SID
		case ic.SID != w.sid:
			w.rec.failure("verify ID token: sid differs within one sign-in session", -1)
		}
	}
}

// tokenRequest is the exchange of code (RFC 6749 §4.1.3, RFC 7636 §4.5).
func (w *codeWorker) tokenRequest(code, verifier string) *http.Request {
	form := "grant_type=authorization_code&code=" + url.QueryEscape(code) + "&redirect_uri=" +
		url.QueryEscape(codeRedirectURI) + "&client_id=" + url.QueryEscape(w.run.cfg.NativeClient) +
		"&code_verifier=" + verifier
	return w.run.eps[w.target].post("/oauth/token", "application/x-www-form-urlencoded", form)
}

// codeOf reads the code from an authorization response: a 302 to the
// redirect URI with the request's state (and tokend's iss, RFC 9207, when
// the run knows the issuer). A 200 is the login page: the sign-in session
// is gone, and the next step signs in again.
func (w *codeWorker) codeOf(r response, state string) (string, string) {
	if r.status == http.StatusOK {
		w.cookie, w.sid = "", ""
		return "", "login page instead of a code (sign-in session lost)"
	}
	if r.status != http.StatusFound {
		return "", statusKind(r)
	}
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != codeRedirectURI {
		return "", "redirect to somewhere else"
	}
	q := loc.Query()
	switch {
	case q.Get("error") != "":
		return "", "error " + q.Get("error")
	case q.Get("state") != state:
		return "", "state not echoed"
	case w.run.verifier != nil && q.Get("iss") != w.run.verifier.issuer:
		return "", "iss"
	case q.Get("code") == "":
		return "", "no code"
	}
	return q.Get("code"), ""
}
