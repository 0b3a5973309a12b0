package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func numCPU() int { return runtime.NumCPU() }

// newHTTPClient returns the one client every worker shares: keep-alive
// connections, at least one idle connection per worker, no compression
// (tokend does not compress, and gzip would only cost the harness CPU), and
// the per-request timeout.
func newHTTPClient(workers int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        workers + 16,
		MaxIdleConnsPerHost: workers + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// response is what a worker keeps of an answer: the status, the body (in
// the worker's reusable buffer, valid until its next request), the refresh
// cookie, when one was set, and the headers (for Location and the browser
// flow's cookies).
type response struct {
	status int
	body   []byte
	cookie string
	header http.Header
}

// conn issues requests for one worker, reusing its body buffer.
type conn struct {
	hc  *http.Client
	buf bytes.Buffer
}

// do sends req and reads the whole answer. A transport failure comes back as
// an error kind ("timeout" or "connection error") with a nil error value
// intentionally not kept: kinds are what the report counts.
func (c *conn) do(req *http.Request) (response, string) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, transportKind(err)
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return response{}, transportKind(err)
	}
	r := response{status: resp.StatusCode, body: c.buf.Bytes(), header: resp.Header}
	for _, sc := range resp.Header["Set-Cookie"] {
		if v, ok := strings.CutPrefix(sc, refreshCookie+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			r.cookie = v
		}
	}
	return r, ""
}

const refreshCookie = "tokend_refresh"

// transportKind classifies a failed exchange.
func transportKind(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "connection error"
}

// statusKind names an unexpected answer: its status and, when the body is
// an OAuth error, its code ("HTTP 429 rate_limited").
func statusKind(r response) string {
	var e struct {
		Error string `json:"error"`
	}
	kind := "HTTP " + strconv.Itoa(r.status)
	if json.Unmarshal(r.body, &e) == nil && e.Error != "" {
		kind += " " + e.Error
	}
	return kind
}

// tokenResponse is the part of a token answer the harness reads.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

// endpoints builds tokend's requests against one base URL.
type endpoints struct {
	base string
	jwks string
}

func newEndpoints(base string) endpoints {
	base = strings.TrimRight(base, "/")
	return endpoints{base: base, jwks: base + "/.well-known/jwks.json"}
}

func (e endpoints) get(path string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	return req
}

func (e endpoints) jwksRequest() *http.Request { return e.get(e.jwks) }

func (e endpoints) post(path, contentType, body string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(body))
	req.Header["Content-Type"] = []string{contentType}
	return req
}

func (e endpoints) loginWeb(email, password, client string) *http.Request {
	b, _ := json.Marshal(struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		ClientID string `json:"client_id"`
	}{email, password, client})
	return e.post("/auth/login", "application/json", string(b))
}

func (e endpoints) loginNative(email, password, client string) *http.Request {
	return e.post("/oauth/token", "application/x-www-form-urlencoded", "grant_type=password&username="+
		url.QueryEscape(email)+"&password="+url.QueryEscape(password)+"&client_id="+url.QueryEscape(client))
}

func (e endpoints) refreshCookie(token string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, e.base+"/auth/refresh", http.NoBody)
	req.Header["Cookie"] = []string{refreshCookie + "=" + token}
	return req
}

func (e endpoints) refreshNative(token, client string) *http.Request {
	return e.post("/oauth/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token="+
		url.QueryEscape(token)+"&client_id="+url.QueryEscape(client))
}

// fetch GETs url with ctx and returns the body of a 200 answer.
func fetch(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("GET " + u + ": " + resp.Status)
	}
	return b, nil
}
