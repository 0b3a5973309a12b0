package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// The machine-client scenarios: client-credentials (a server client gets
// access tokens for itself, RFC 6749 §4.4) and introspect (a resource
// server's client asks whether a user's access token is active, RFC 7662).

// secretRef holds a client secret the workers read before each request;
// the secret-rotation run replaces it halfway through.
type secretRef struct{ p atomic.Pointer[string] }

func newSecretRef(s string) *secretRef {
	r := &secretRef{}
	r.set(s)
	return r
}

func (r *secretRef) get() string {
	if r == nil {
		return ""
	}
	if p := r.p.Load(); p != nil {
		return *p
	}
	return ""
}

func (r *secretRef) set(s string) { r.p.Store(&s) }

// basicAuth is client_secret_basic: id and secret form-urlencoded, then
// Basic (RFC 6749 §2.3.1).
func basicAuth(req *http.Request, id, secret string) {
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
}

func (e endpoints) clientCredentials(id, secret string) *http.Request {
	req := e.post("/oauth/token", "application/x-www-form-urlencoded", "grant_type=client_credentials")
	basicAuth(req, id, secret)
	return req
}

func (e endpoints) introspect(id, secret, token string) *http.Request {
	req := e.post("/oauth/introspect", "application/x-www-form-urlencoded",
		"token="+url.QueryEscape(token)+"&token_type_hint=access_token")
	basicAuth(req, id, secret)
	return req
}

// ccWorker asks for client-credentials access tokens in a loop, with the
// secret Config.ClientSecret holds at the time.
type ccWorker struct{ base }

func (w *ccWorker) setup(context.Context) error { return nil }

func (w *ccWorker) done() {}

func (w *ccWorker) step(ctx context.Context) {
	cfg := &w.run.cfg
	r, kind, d := w.exchange(w.run.eps[w.target].clientCredentials(cfg.ClientID, cfg.ClientSecret.get()))
	if kind != "" {
		w.rec.failure(kind, d)
		return
	}
	if r.status != http.StatusOK {
		w.rec.failure(statusKind(r), d)
		return
	}
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.AccessToken == "" || tr.RefreshToken != "" {
		w.rec.failure("malformed client-credentials response", d)
		return
	}
	w.rec.success(d)
	if v := w.run.verifier; v != nil {
		if kind := v.checkMachine(ctx, tr.AccessToken, w.target, cfg.ClientID); kind != "" {
			w.rec.failure(kind, -1)
		}
	}
}

// checkMachine verifies a client-credentials access token: signature, typ,
// iss, aud, exp as check does; sub and client_id the client, no sid.
func (v *verifier) checkMachine(ctx context.Context, raw string, from int, client string) string {
	var c accessClaims
	used, _, err := v.parse(ctx, v.parser, raw, &c, typAccess, from)
	if err != nil {
		return "verify: " + verifyKind(err)
	}
	if c.Subject != client || c.ClientID != client || c.ID == "" || c.SID != "" {
		return "verify: wrong sub/client_id/jti or a sid in a client-credentials token"
	}
	if kind := v.sameEverywhere(ctx, used, from); kind != "" {
		return "verify: " + kind
	}
	v.verified.Add(1)
	return ""
}

// introspectWorker holds one user's access token, obtained in setup by
// rotating its refresh chain once on the measured instance (so the token
// names that instance as its issuer), and introspects it in a loop as the
// resource server's client: each answer must be 200 with "active": true.
type introspectWorker struct {
	chainWorker
	access string
}

func (w *introspectWorker) setup(ctx context.Context) error {
	if err := w.chainWorker.setup(ctx); err != nil {
		return err
	}
	_, err := retrySetup(ctx, "refresh for an access token to introspect", func() (string, string) {
		access, refresh, kind, _ := w.refresh(w.target, false, w.token)
		if kind == "" {
			w.access, w.token = access, refresh
		}
		return access, kind
	})
	return err
}

func (w *introspectWorker) step(context.Context) {
	cfg := &w.run.cfg
	r, kind, d := w.exchange(w.run.eps[w.target].introspect(cfg.ResourceID, cfg.ResourceSecret, w.access))
	if kind != "" {
		w.rec.failure(kind, d)
		return
	}
	if r.status != http.StatusOK {
		w.rec.failure(statusKind(r), d)
		return
	}
	var ir struct {
		Active bool   `json:"active"`
		Sub    string `json:"sub"`
	}
	if err := json.Unmarshal(r.body, &ir); err != nil {
		w.rec.failure("malformed introspection response", d)
		return
	}
	if !ir.Active || ir.Sub == "" {
		w.rec.failure("token inactive (or no details for the resource server)", d)
		return
	}
	w.rec.success(d)
}

// edSigner builds and signs client-credentials access tokens as tokend
// does, and nothing else: the same claims tokend puts in one (iss, sub, aud,
// exp, iat, a 128-bit jti, client_id, scope), JSON-encoded, the at+jwt
// header, base64url, and an Ed25519 signature.
type edSigner struct {
	key    ed25519.PrivateKey
	header string
}

func newEdSigner() edSigner {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return edSigner{key: key,
		header: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"x7QkL3b9cHk1YV2pQe8sTg","typ":"at+jwt"}`))}
}

// edClaims are a client-credentials access token's claims.
type edClaims struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	Aud      string `json:"aud"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	Jti      string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
}

// token is one signed access token for client, issued by iss.
func (e edSigner) token(iss, client string) string {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := time.Now()
	payload, _ := json.Marshal(edClaims{Iss: iss, Sub: client, Aud: iss, Exp: now.Add(15 * time.Minute).Unix(),
		Iat: now.Unix(), Jti: base64.RawURLEncoding.EncodeToString(jti[:]), ClientID: client})
	in := e.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(e.key, []byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// measureEdDSAToken times what signing alone costs per client-credentials
// access token on one goroutine (edSigner.token). It returns the median
// over runs of the mean of a batch.
func measureEdDSAToken(runs, batch int) time.Duration {
	e := newEdSigner()
	sign := func() { _ = e.token("http://127.0.0.1:40000", loadServerClient) }
	sign()
	times := make([]float64, runs)
	for i := range times {
		t0 := time.Now()
		for range batch {
			sign()
		}
		times[i] = float64(time.Since(t0)) / float64(batch)
	}
	m, _ := median(times)
	return time.Duration(m)
}

// The clients the suite seeds for these scenarios.
const (
	loadServerClient   = "svc"      // server, client_credentials, secret
	loadResourceClient = "rs"       // server, no grant: a resource server that introspects
	loadAPIUserClient  = "api-user" // native, password + refresh_token, tokens for the API
	loadAPIAudience    = "https://api.load"
)
