package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// tokenChecker checks a bearer token: offline (*Verifier) or by asking
// tokend (*Introspector).
type tokenChecker interface {
	Verify(ctx context.Context, rawToken string) (*Claims, error)
}

// server holds the HTTP handlers of the example API.
type server struct {
	verifier tokenChecker
	logger   *slog.Logger
}

// routes registers every endpoint in one place.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/me", s.onlyGet(s.handleMe))
	mux.Handle("/healthz", s.onlyGet(s.handleHealthz))
	mux.HandleFunc("/", s.handleNotFound)
	return mux
}

// meResponse is the body of GET /api/me: who the token speaks for.
type meResponse struct {
	Sub      string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Aud      []string `json:"aud"`
}

// handleMe answers GET /api/me with the verified token's identity.
func (s *server) handleMe(w http.ResponseWriter, r *http.Request) {
	// The answer depends on the Authorization header: no shared cache may
	// keep it, whatever the status.
	w.Header().Set("Cache-Control", "no-store")
	claims, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	writeJSON(w, s.logger, http.StatusOK, meResponse{
		Sub:      claims.Subject,
		ClientID: claims.ClientID,
		Scope:    claims.Scope,
		Aud:      claims.Audience,
	})
}

func (s *server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.logger, http.StatusOK, map[string]string{"status": "ok"})
}

// authenticate verifies the bearer token of r. When it returns false it has
// written the error response (RFC 6750 §3).
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request", error_description="more than one Authorization header"`)
		writeError(w, s.logger, http.StatusBadRequest, "invalid_request", "more than one Authorization header")
		return nil, false
	}
	token, ok := bearerToken(values)
	if !ok {
		// RFC 6750 §3.1: a request without credentials gets no error code.
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, s.logger, http.StatusUnauthorized, "invalid_token", "missing bearer token")
		return nil, false
	}

	claims, err := s.verifier.Verify(r.Context(), token)
	if err == nil {
		return claims, true
	}
	if errors.Is(err, ErrKeysUnavailable) {
		// Our problem, not the client's: do not tell it to get a new token.
		s.logger.ErrorContext(r.Context(), "cannot verify tokens", "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, s.logger, http.StatusServiceUnavailable, "temporarily_unavailable", "signing keys are not available yet")
		return nil, false
	}
	// The error names what failed (alg, kid, claim) but never the token.
	s.logger.InfoContext(r.Context(), "rejected access token", "reason", err.Error(), "remote_addr", r.RemoteAddr)
	desc := describe(err)
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
	writeError(w, s.logger, http.StatusUnauthorized, "invalid_token", desc)
	return nil, false
}

// bearerToken extracts the token of "Authorization: Bearer <token>" (RFC 6750
// §2.1; the scheme is case-insensitive). ok is false when there is no bearer
// credential at all; an empty token is returned as "" and fails verification.
func bearerToken(values []string) (token string, ok bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// describe is the error_description for a rejected token. It says no more
// than the client can act on (refresh when expired), and it must stay within
// the characters RFC 6750 §3 allows in the header: no quote, no backslash.
func describe(err error) string {
	switch {
	case errors.Is(err, ErrExpired):
		return "the access token expired"
	case errors.Is(err, ErrMalformed):
		return "the access token is malformed"
	default:
		return "the access token is invalid"
	}
}

// onlyGet answers 405 to anything but GET and HEAD.
func (s *server) onlyGet(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, s.logger, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) handleNotFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, s.logger, http.StatusNotFound, "not_found", "no such endpoint")
}

// errorBody is every error response (RFC 6749 §5.2 shape).
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

func writeError(w http.ResponseWriter, logger *slog.Logger, status int, code, desc string) {
	writeJSON(w, logger, status, errorBody{Error: code, ErrorDescription: desc})
}

// writeJSON writes v as the response body. A failed write means the client
// went away, so it is only logged at debug.
func writeJSON(w http.ResponseWriter, logger *slog.Logger, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		logger.Debug("write response", "err", err)
	}
}
