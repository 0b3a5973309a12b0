package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/pages"
	"github.com/tokend/tokend/internal/reset"
	"github.com/tokend/tokend/internal/throttle"
)

// ResetService runs password resets (reset.Service).
type ResetService interface {
	Forgot(ctx context.Context, email string, m audit.Meta) error
	Reset(ctx context.Context, token, password string, m audit.Meta) error
}

const routeResetPage = "/reset"

// resetPageHandler: GET /reset, the page the mailed link opens. Its
// script reads the token from the fragment and posts the new password.
func (s *Server) resetPageHandler(w http.ResponseWriter, r *http.Request) error {
	return s.cfg.Pages.Render(w, pages.Page{Name: pages.Reset, Title: "Choose a new password",
		Data: struct{ Endpoint string }{s.cfg.Issuer + routeReset}})
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
