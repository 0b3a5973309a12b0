package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gorilla/mux"
)

// maxBody is the request body limit; larger bodies get 413.
const maxBody = 64 << 10

// MaxHeaderBytes is tokend's limit on a request's header (the request line
// included); larger ones get 431 in the OAuth error shape. The HTTP server's
// own MaxHeaderBytes must be above it (cmd/tokend doubles it), or net/http
// answers first, in text/plain.
const MaxHeaderBytes = 32 << 10

// headerBytes is about what the request's header took on the wire: the
// request line, Host and every field (HTTP/1.1 framing; HTTP/2 compresses,
// but the limit is on what the fields hold).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2 + len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// hstsValue is Strict-Transport-Security (RFC 6797), one year, sent on
// every response when the issuer is https. An http issuer (dev mode,
// loopback) never sends it: browsers would then refuse that host over http.
const hstsValue = "max-age=31536000"

// reqInfo travels in the request context so that the outer middleware
// (which runs before routing) learns the matched route and the error code.
type reqInfo struct {
	id      string
	route   string
	errCode string
}

type ctxKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	i, _ := ctx.Value(ctxKey{}).(*reqInfo)
	return i
}

// RequestID returns the id of the request being served, for log lines.
func RequestID(ctx context.Context) string {
	if i := infoFrom(ctx); i != nil {
		return i.id
	}
	return ""
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// outer wraps the whole router (so 404 and 405 pass through it too): request
// id, security headers (HSTS when the issuer is https), header and body
// limits, panic recovery, access log and metrics.
func (s *Server) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{id: requestID(r), route: "unmatched"}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, info))
		h := w.Header()
		h.Set("X-Request-Id", info.id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if s.hsts {
			h.Set("Strict-Transport-Security", hstsValue)
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					s.writeError(sw, r, fmt.Errorf("panic: %v", p))
				}
			}
			s.observe(r, info, sw, time.Since(start))
		}()
		if headerBytes(r) > MaxHeaderBytes {
			s.writeError(sw, r, &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Code: codeInvalidRequest,
				Description: "request headers larger than 32 KiB"})
			return
		}
		if r.ContentLength > maxBody {
			s.writeError(sw, r, &http.MaxBytesError{Limit: maxBody})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(sw, r.Body, maxBody)
		}
		next.ServeHTTP(sw, r)
	})
}

// observe logs the request and records metrics. High-volume read-only
// endpoints log at debug level.
func (s *Server) observe(r *http.Request, info *reqInfo, sw *statusWriter, d time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	if s.metrics != nil {
		s.metrics.ObserveRequest(info.route, r.Method, status, d)
	}
	level := slog.LevelInfo
	switch info.route {
	case routeJWKS, routeDiscovery, routeHealthz, routeReadyz, routeMetrics:
		level = slog.LevelDebug
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.id),
		slog.String("method", r.Method),
		slog.String("route", info.route),
		slog.Int("status", status),
		slog.Int("bytes", sw.bytes),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("remote", clientAddr(r)),
	}
	if info.errCode != "" {
		attrs = append(attrs, slog.String("error", info.errCode))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// routeNamer is the inner middleware that records the matched route
// template for the outer one.
func routeNamer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if info := infoFrom(r.Context()); info != nil {
				if name := route.GetName(); name != "" {
					info.route = name
				} else if tpl, err := route.GetPathTemplate(); err == nil {
					info.route = tpl
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// requestID accepts a caller's X-Request-Id when it is short and plain, or
// makes a new one.
func requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); v != "" && len(v) <= 64 && strings.IndexFunc(v, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) < 0 {
		return v
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clientAddr is the request's network address (the peer; tokend does not
// trust forwarding headers).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
