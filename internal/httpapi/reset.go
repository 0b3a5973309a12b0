package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/reset"
	"github.com/tokend/tokend/internal/throttle"
)

// ResetService runs password resets (reset.Service).
type ResetService interface {
	Forgot(ctx context.Context, email string, m audit.Meta) error
	Reset(ctx context.Context, token, password string, m audit.Meta) error
}

const routeResetPage = "/reset"

//go:embed assets/reset.html assets/reset.js assets/reset.css
var assets embed.FS

// resetPage is the rendered page and its Content-Security-Policy, which
// admits exactly its own inline script and style (by hash) and requests to
// its own origin: no other host, no other script.
type resetPage struct {
	body []byte
	csp  string
}

func buildResetPage(issuer string) (*resetPage, error) {
	js, err := assets.ReadFile("assets/reset.js")
	if err != nil {
		return nil, err
	}
	css, err := assets.ReadFile("assets/reset.css")
	if err != nil {
		return nil, err
	}
	tpl, err := template.ParseFS(assets, "assets/reset.html")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	// Script and style are our own files, embedded: trusted content.
	if err := tpl.Execute(&b, struct {
		Style    template.CSS
		Script   template.JS
		Endpoint string
	}{template.CSS(css), template.JS(js), issuer + routeReset}); err != nil {
		return nil, err
	}
	hash := func(p []byte) string {
		sum := sha256.Sum256(p)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := fmt.Sprintf("default-src 'none'; script-src %s; style-src %s; connect-src 'self'; img-src 'none'; "+
		"form-action 'none'; base-uri 'none'; frame-ancestors 'none'", hash(js), hash(css))
	return &resetPage{body: b.Bytes(), csp: csp}, nil
}

// resetPageHandler: GET /reset.
func (s *Server) resetPageHandler(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", s.resetPage.csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(s.resetPage.body)
	return nil
}

// forgot: POST /auth/password/forgot. 202 for every email.
func (s *Server) forgot(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeJSON(r, "email")
	if err != nil {
		return err
	}
	if in["email"] == "" {
		return badRequest("email is required")
	}
	if err := s.cfg.Reset.Forgot(r.Context(), in["email"], meta(r, "")); err != nil {
		return resetErr(err)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// resetPassword: POST /auth/password/reset.
func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeJSON(r, "token", "password")
	if err != nil {
		return err
	}
	if in["token"] == "" || in["password"] == "" {
		return badRequest("token and password are required")
	}
	if err := s.cfg.Reset.Reset(r.Context(), in["token"], in["password"], meta(r, "")); err != nil {
		return resetErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func resetErr(err error) error {
	var le *throttle.LimitedError
	switch {
	case errors.Is(err, reset.ErrInvalidToken):
		return &Error{Status: http.StatusBadRequest, Code: codeInvalidGrant,
			Description: "the reset link is invalid, expired or already used"}
	case errors.As(err, &le):
		return rateLimited(le.RetryAfter)
	}
	return err
}
