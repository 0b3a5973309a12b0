// Package metrics exposes tokend's Prometheus metrics (client_golang) on a
// registry of its own, created in main and handed to the components: no
// metric is a package-level global. Names follow Prometheus conventions:
// counters end in _total, durations are in seconds.
package metrics

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds tokend's collectors.
type Metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	tokens        *prometheus.CounterVec
	reuse         prometheus.Counter
	loginFailures *prometheus.CounterVec
	throttled     prometheus.Counter
	mailQueued    prometheus.Counter
	mailSent      prometheus.Counter
	mailFailed    *prometheus.CounterVec
	pruned        *prometheus.CounterVec
	pruneBatch    prometheus.Gauge
}

// Options add the collectors that read live state.
type Options struct {
	Version string
	// DB is the connection pool to report (and its name).
	DB     *sql.DB
	DBName string
	// KeyAges reports, per algorithm, how long the current key has signed.
	KeyAges func() map[string]time.Duration
	// PendingMail counts queued mails (read at scrape time, bounded).
	PendingMail func(ctx context.Context) (int, error)
}

// New registers every collector.
func New(o Options) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tokend_http_requests_total",
			Help: "HTTP requests by route, method and status code."}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tokend_http_request_duration_seconds",
			Help:    "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}},
			[]string{"route", "method"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tokend_tokens_issued_total",
			Help: "Access tokens issued by grant (password, refresh_token) and signing algorithm."}, []string{"grant", "alg"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{Name: "tokend_refresh_reuse_detected_total",
			Help: "Refresh tokens presented again after the grace window; each revoked its session."}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tokend_login_failures_total",
			Help: "Failed logins by reason (unknown_email, wrong_password, disabled, email_not_verified, wrong_factor, pending_replayed)."}, []string{"reason"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: "tokend_login_throttled_total",
			Help: "Logins refused because the account or address was locked by failed attempts."}),
		mailQueued: prometheus.NewCounter(prometheus.CounterOpts{Name: "tokend_mail_queued_total",
			Help: "Mails queued in the outbox."}),
		mailSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "tokend_mail_sent_total",
			Help: "Mails delivered to the SMTP server."}),
		mailFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tokend_mail_failed_total",
			Help: "Failed mail deliveries; final=\"true\" when the mail was given up (its link expired)."}, []string{"final"}),
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tokend_pruned_rows_total",
			Help: "Rows deleted by pruning, by kind of data (on the instance that ran the pass)."}, []string{"kind"}),
		pruneBatch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokend_prune_longest_batch_seconds",
			Help: "The longest single batch statement of this instance's last pruning pass."}),
	}
	reg.MustRegister(m.requests, m.duration, m.tokens, m.reuse, m.loginFailures, m.throttled,
		m.mailQueued, m.mailSent, m.mailFailed, m.pruned, m.pruneBatch,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokend_build_info", Help: "tokend's version.",
		ConstLabels: prometheus.Labels{"version": o.Version}})
	build.Set(1)
	reg.MustRegister(build)
	if o.DB != nil {
		reg.MustRegister(collectors.NewDBStatsCollector(o.DB, o.DBName))
	}
	if o.KeyAges != nil {
		reg.MustRegister(&keyAgeCollector{ages: o.KeyAges, desc: prometheus.NewDesc("tokend_signing_key_age_seconds",
			"How long the current signing key of each algorithm has been signing.", []string{"alg"}, nil)})
	}
	if o.PendingMail != nil {
		reg.MustRegister(&pendingCollector{count: o.PendingMail, desc: prometheus.NewDesc("tokend_mail_outbox_pending",
			"Mails waiting in the outbox (on every instance's database).", nil, nil)})
	}
	// Pre-create the label sets people alert on, so the series exist at 0.
	for _, r := range []string{"unknown_email", "wrong_password", "disabled", "email_not_verified"} {
		m.loginFailures.WithLabelValues(r)
	}
	m.mailFailed.WithLabelValues("false")
	m.mailFailed.WithLabelValues("true")
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

// Registry is the registry (for tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// statusText avoids an allocation per request for every status code.
var statusText = func() map[int]string {
	m := make(map[int]string, 500)
	for c := 100; c < 600; c++ {
		m[c] = strconv.Itoa(c)
	}
	return m
}()

// knownMethods bounds the method label: a client may send any token as
// its method, and every distinct label value is a new series in memory.
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true}

// ObserveRequest records one HTTP request.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	code, ok := statusText[status]
	if !ok {
		code = "other"
	}
	if !knownMethods[method] {
		method = "other"
	}
	m.requests.WithLabelValues(route, method, code).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// TokenIssued counts an access token.
func (m *Metrics) TokenIssued(grant, alg string) { m.tokens.WithLabelValues(grant, alg).Inc() }

// RefreshReuse counts a detected reuse.
func (m *Metrics) RefreshReuse() { m.reuse.Inc() }

// LoginFailed counts a failed login.
func (m *Metrics) LoginFailed(reason string) { m.loginFailures.WithLabelValues(reason).Inc() }

// LoginThrottled counts a throttled login.
func (m *Metrics) LoginThrottled() { m.throttled.Inc() }

// MailQueued counts a queued mail.
func (m *Metrics) MailQueued() { m.mailQueued.Inc() }

// MailSent counts a delivered mail.
func (m *Metrics) MailSent() { m.mailSent.Inc() }

// MailFailed counts a failed delivery.
func (m *Metrics) MailFailed(final bool) {
	m.mailFailed.WithLabelValues(strconv.FormatBool(final)).Inc()
}

// Pruned records a pruning pass: the rows deleted per kind and its longest
// batch.
func (m *Metrics) Pruned(rows map[string]int, longest time.Duration) {
	for kind, n := range rows {
		m.pruned.WithLabelValues(kind).Add(float64(n))
	}
	m.pruneBatch.Set(longest.Seconds())
}

type keyAgeCollector struct {
	ages func() map[string]time.Duration
	desc *prometheus.Desc
}

func (c *keyAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *keyAgeCollector) Collect(ch chan<- prometheus.Metric) {
	for alg, age := range c.ages() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, age.Seconds(), alg)
	}
}

// pendingCollector reads the outbox size at scrape time, at most once per
// 10 s, so a scrape storm cannot load the database.
type pendingCollector struct {
	count func(ctx context.Context) (int, error)
	desc  *prometheus.Desc
	last  atomic.Int64 // unix nanos of the last read
	value atomic.Int64
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if now.UnixNano()-c.last.Load() > int64(10*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if n, err := c.count(ctx); err == nil {
			c.value.Store(int64(n))
			c.last.Store(now.UnixNano())
		}
		cancel()
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.value.Load()))
}
