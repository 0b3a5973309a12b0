package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// AdminConfig configures the operators' listener (TOKEND_ADMIN_LISTEN).
type AdminConfig struct {
	Log *slog.Logger
	Now func() time.Time
	// Metrics serves /metrics in the Prometheus text format.
	Metrics http.Handler
}

// NewAdmin builds the server of the admin listener: /metrics, which is not
// served on the public listener (its counters tell apart real and unknown
// accounts), and /healthz. It is meant for an address only operators reach
// (loopback by default).
func NewAdmin(cfg AdminConfig) *Server {
	s := &Server{log: cfg.Log, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	r := mux.NewRouter()
	r.Use(routeNamer)
	s.router = r
	s.route(routeHealthz, s.healthz, http.MethodGet, http.MethodHead)
	if cfg.Metrics != nil {
		r.Handle(routeMetrics, cfg.Metrics).Methods(http.MethodGet).Name(routeMetrics)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, notFound("no such endpoint"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)
	s.handler = s.outer(r)
	return s
}
