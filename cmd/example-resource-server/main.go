package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	progName        = "example-resource-server"
	shutdownTimeout = 10 * time.Second
)

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(os.Stdout)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s (see -h)\n", progName, usageLine(err))
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("exiting", "err", err)
		os.Exit(1)
	}
}

// config is the command line and environment, validated.
type config struct {
	issuer   string
	audience string
	jwksURL  string // empty: discover it
	listen   string
	leeway   time.Duration
	logLevel slog.Level
	// introspect checks every token with tokend's introspection endpoint
	// (as clientID, a tokend server client) instead of offline.
	introspect   bool
	clientID     string
	clientSecret string
}

// parseConfig reads flags, each of which defaults to its environment
// variable; a flag given on the command line wins. Errors are usage errors.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	def, err := envDefaults(getenv)
	if err != nil {
		return config{}, err
	}
	var cfg config
	fs := newFlagSet(&cfg, def)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	switch {
	case cfg.issuer == "":
		return config{}, errors.New("--issuer (or RS_ISSUER) is required")
	case cfg.audience == "":
		return config{}, errors.New("--audience (or RS_AUDIENCE) is required")
	case cfg.leeway < 0:
		return config{}, errors.New("--leeway must not be negative")
	case cfg.introspect && (cfg.clientID == "" || cfg.clientSecret == ""):
		return config{}, errors.New("--introspect needs --client-id and RS_CLIENT_SECRET (this API's client at tokend)")
	}
	if err := checkHTTPURL(cfg.issuer); err != nil {
		return config{}, fmt.Errorf("--issuer: %w", err)
	}
	if cfg.jwksURL != "" {
		if err := checkHTTPURL(cfg.jwksURL); err != nil {
			return config{}, fmt.Errorf("--jwks-url: %w", err)
		}
	}
	return cfg, nil
}

// builtinDefaults are the defaults without any environment.
func builtinDefaults() config {
	return config{listen: "127.0.0.1:9090", leeway: 30 * time.Second, logLevel: slog.LevelInfo}
}

// envDefaults overlays the RS_* environment variables on builtinDefaults.
func envDefaults(getenv func(string) string) (config, error) {
	def := builtinDefaults()
	def.issuer = getenv("RS_ISSUER")
	def.audience = getenv("RS_AUDIENCE")
	def.jwksURL = getenv("RS_JWKS_URL")
	if v := getenv("RS_LISTEN"); v != "" {
		def.listen = v
	}
	if v := getenv("RS_LEEWAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return config{}, fmt.Errorf("RS_LEEWAY: %w", err)
		}
		def.leeway = d
	}
	def.clientID = getenv("RS_CLIENT_ID")
	def.clientSecret = getenv("RS_CLIENT_SECRET")
	if v := getenv("RS_INTROSPECT"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return config{}, fmt.Errorf("RS_INTROSPECT: %w", err)
		}
		def.introspect = b
	}
	if v := getenv("RS_LOG_LEVEL"); v != "" {
		if err := def.logLevel.UnmarshalText([]byte(v)); err != nil {
			return config{}, fmt.Errorf("RS_LOG_LEVEL: %w", err)
		}
	}
	return def, nil
}

// newFlagSet binds the flags to cfg with the given defaults. Its output is
// discarded: parse errors come back as one line, -h goes through printUsage.
func newFlagSet(cfg *config, def config) *flag.FlagSet {
	fs := flag.NewFlagSet(progName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.issuer, "issuer", def.issuer, "tokend's issuer URL, exactly as in the iss claim (RS_ISSUER, required)")
	fs.StringVar(&cfg.audience, "audience", def.audience, "the aud this API accepts (RS_AUDIENCE, required)")
	fs.StringVar(&cfg.jwksURL, "jwks-url", def.jwksURL, "JWKS URL (RS_JWKS_URL; default: jwks_uri from {issuer}/.well-known/openid-configuration,\nelse {issuer}/.well-known/jwks.json)")
	fs.StringVar(&cfg.listen, "listen", def.listen, "address to serve on (RS_LISTEN)")
	fs.DurationVar(&cfg.leeway, "leeway", def.leeway, "allowed clock skew for exp, nbf and iat (RS_LEEWAY)")
	fs.TextVar(&cfg.logLevel, "log-level", def.logLevel, "debug, info, warn or error (RS_LOG_LEVEL)")
	fs.BoolVar(&cfg.introspect, "introspect", def.introspect, "check each token with tokend's introspection endpoint instead of offline (RS_INTROSPECT)")
	fs.StringVar(&cfg.clientID, "client-id", def.clientID, "this API's server client at tokend, for --introspect (RS_CLIENT_ID; its secret in RS_CLIENT_SECRET)")
	cfg.clientSecret = def.clientSecret // a secret is read from the environment only, never from argv
	return fs
}

func printUsage(w io.Writer) {
	var cfg config
	fs := newFlagSet(&cfg, builtinDefaults())
	fs.SetOutput(w)
	fmt.Fprintf(w, "usage: %s --issuer URL --audience AUD [flags]\n\n", progName)
	fs.PrintDefaults()
}

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return serve(ctx, ln, cfg, logger)
}

// serve is run on a listener the caller opened (tests use 127.0.0.1:0).
func serve(ctx context.Context, ln net.Listener, cfg config, logger *slog.Logger) error {
	client := &http.Client{}
	if cfg.introspect {
		in, err := NewIntrospector(IntrospectorConfig{Endpoint: strings.TrimRight(cfg.issuer, "/") + "/oauth/introspect",
			ClientID: cfg.clientID, ClientSecret: cfg.clientSecret, Audience: cfg.audience,
			HTTPClient: &http.Client{Timeout: 5 * time.Second}})
		if err != nil {
			ln.Close()
			return err
		}
		logger.Info("checking tokens by introspection", "client_id", cfg.clientID)
		return listenAndServe(ctx, ln, &server{verifier: in, logger: logger}, logger, cfg, "introspection")
	}
	jwksURL := cfg.jwksURL
	if jwksURL == "" {
		u, err := discoverJWKSURL(ctx, client, cfg.issuer)
		if err != nil {
			u = defaultJWKSURL(cfg.issuer)
			logger.Warn("discovery failed; using the default JWKS URL", "err", err, "jwks_url", u)
		}
		jwksURL = u
	}

	verifier, err := NewVerifier(VerifierConfig{
		Issuer:     cfg.issuer,
		Audience:   cfg.audience,
		JWKSURL:    jwksURL,
		Leeway:     cfg.leeway,
		HTTPClient: client,
		Logger:     logger,
	})
	if err != nil {
		ln.Close()
		return err
	}
	// Warm the cache. If the issuer is not up yet, the first request
	// retries; every failure is logged by the verifier.
	_ = verifier.Refresh(ctx)

	return listenAndServe(ctx, ln, &server{verifier: verifier, logger: logger}, logger, cfg, jwksURL)
}

// listenAndServe serves s on ln until ctx ends, then shuts down gracefully.
func listenAndServe(ctx context.Context, ln net.Listener, s *server, logger *slog.Logger, cfg config, jwksURL string) error {
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second, // above the JWKS fetch timeout
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "issuer", cfg.issuer,
		"audience", cfg.audience, "jwks_url", jwksURL, "leeway", cfg.leeway.String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// usageLine trims a multi-line flag error to its first line.
func usageLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}
