package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/throttle"
	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/users"
)

// Error is an HTTP error in the OAuth shape. Description goes to the client;
// Err only to the log.
type Error struct {
	Status      int
	Code        string
	Description string
	RetryAfter  time.Duration
	// Header holds extra response headers (WWW-Authenticate, Allow).
	Header http.Header
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Description + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Err }

// Error codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009, and tokend's own).
const (
	codeInvalidRequest   = "invalid_request"
	codeInvalidClient    = "invalid_client"
	codeInvalidGrant     = "invalid_grant"
	codeUnsupportedGrant = "unsupported_grant_type"
	codeInvalidScope     = "invalid_scope"
	codeInvalidToken     = "invalid_token"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeRateLimited      = "rate_limited"
	codeForbiddenOrigin  = "forbidden_origin"
	codeUnavailable      = "temporarily_unavailable"
	codeServerError      = "server_error"
	codeSignupDisabled   = "signup_disabled"
)

func badRequest(desc string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: codeInvalidRequest, Description: desc}
}

func invalidClient() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: codeInvalidClient, Description: "unknown client or wrong client kind for this endpoint"}
}

func invalidToken(desc string) *Error {
	h := http.Header{}
	h.Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+sanitize(desc)+`"`)
	return &Error{Status: http.StatusUnauthorized, Code: codeInvalidToken, Description: desc, Header: h}
}

func notFound(desc string) *Error {
	return &Error{Status: http.StatusNotFound, Code: codeNotFound, Description: desc}
}

func rateLimited(retry time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimited,
		Description: "too many requests; retry later", RetryAfter: retry}
}

// oauthError is an *oauth.Error with its status: 401 for invalid_client
// (RFC 6749 §5.2), 400 for the others.
func oauthError(e *oauth.Error) *Error {
	status := http.StatusBadRequest
	if e.Code == oauth.CodeInvalidClient {
		status = http.StatusUnauthorized
	}
	var cause error
	if e.Reason != "" {
		cause = e
	}
	return &Error{Status: status, Code: e.Code, Description: e.Description, Err: cause}
}

// toError maps any error a handler returns to an *Error.
func toError(err error) *Error {
	var e *Error
	var oe *oauth.Error
	var ve *users.ValidationError
	var mbe *http.MaxBytesError
	var lte *login.ThrottledError
	var ste *sessions.ThrottledError
	var le *throttle.LimitedError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &oe):
		return oauthError(oe)
	case errors.As(err, &lte):
		return rateLimited(lte.RetryAfter)
	case errors.As(err, &ste):
		return rateLimited(ste.RetryAfter)
	case errors.As(err, &le):
		return rateLimited(le.RetryAfter)
	case errors.Is(err, tokens.ErrNoSigningKey):
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Description: "no signing key is loaded yet; retry shortly", RetryAfter: 5 * time.Second, Err: err}
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: codeInvalidRequest,
			Description: "request body larger than 64 KiB"}
	case errors.As(err, &ve):
		return badRequest(ve.Error())
	case errors.Is(err, password.ErrBusy):
		return &Error{Status: http.StatusTooManyRequests, Code: codeRateLimited,
			Description: "the server is busy checking passwords; retry shortly", RetryAfter: time.Second, Err: err}
	case errors.Is(err, store.ErrInvalid):
		// A value the checks before the store let through and the
		// database refused: the request's fault, and nothing was written.
		return &Error{Status: http.StatusBadRequest, Code: codeInvalidRequest,
			Description: "the request holds a value that cannot be stored", Err: err}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrConflict),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Description: "the service is temporarily unavailable; retry shortly", RetryAfter: 2 * time.Second, Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: codeServerError,
		Description: "internal error", Err: err}
}

// writeError writes err in the OAuth error shape and logs what the client
// does not see.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	info := infoFrom(r.Context())
	if info != nil {
		info.errCode = e.Code
	}
	if s.pageError(w, r, e) {
		return
	}
	switch {
	case e.Status >= 500 && e.Status != http.StatusServiceUnavailable:
		s.log.ErrorContext(r.Context(), "request failed", "code", e.Code, "err", e.Err)
	case e.Err != nil:
		s.log.WarnContext(r.Context(), "request refused", "code", e.Code, "err", e.Err)
	}
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, e.Status, errorBody{Error: e.Code, Description: sanitize(e.Description)})
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// sanitize keeps only the characters RFC 6749 §5.2 allows in
// error_description (%x20-21 / %x23-5B / %x5D-7E).
func sanitize(s string) string {
	b := []byte(s)
	out := b[:0]
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\'')
		case c >= 0x20 && c <= 0x7e:
			out = append(out, c)
		}
	}
	return string(out)
}
