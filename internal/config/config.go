package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/secret"
)

// Config is tokend's validated configuration.
type Config struct {
	// DatabaseURL, MasterKey and SMTPURL may hold secrets (a password, the
	// key): they print redacted and are read with Reveal.
	DatabaseURL       secret.String
	Listen            string
	Issuer            string // no trailing slash
	Audience          string
	AccessTokenTTL    time.Duration
	RefreshTokenTTL   time.Duration
	SessionMaxAge     time.Duration
	RefreshReuseGrace time.Duration
	ResetTokenTTL     time.Duration
	SigningAlg        string
	KeyRotationPeriod time.Duration
	JWKSMaxAge        time.Duration
	MasterKeyFile     string
	MasterKey         secret.String // base64
	SMTPURL           secret.String // may hold a password
	MailFrom          string
	ResetURL          string
	AllowedOrigins    []string
	Signup            bool
	// RequireVerifiedEmail refuses sign-in to accounts whose address is
	// not verified (default: on, off in dev mode).
	RequireVerifiedEmail bool
	Argon2               password.Params
	HashMaxConcurrent    int
	// LoginSessionMaxAge is the lifetime of a sign-in session.
	LoginSessionMaxAge time.Duration
	// BrandingDir holds the hosted pages' overrides (empty: none).
	BrandingDir string
	// MasterKeyPrevious[File] is the key being rotated out: it only
	// decrypts (see masterkey.Keyring).
	MasterKeyPreviousFile string
	MasterKeyPrevious     secret.String // base64
	// AdminListen is the operators' listener (/metrics); empty when off.
	AdminListen string
	// RefreshRateLimit caps rotations per session per minute (0: no cap).
	RefreshRateLimit int
	// PruneInterval is how often one instance prunes old data (0: never on
	// a schedule, only through `tokend prune`).
	PruneInterval time.Duration
	// AuditRetention is how long audit events are kept (0: forever).
	AuditRetention time.Duration
	Dev            bool
}

// Signing algorithms tokend supports.
const (
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// ReloadInterval bounds how long an instance keeps an outdated key set: every
// instance reloads the keys from the database at least this often.
const ReloadInterval = 30 * time.Second

// Problems is the list of everything wrong with a configuration, one line each.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "\n") }

// FromEnv loads the configuration from the environment only (the CLI
// subcommands other than serve).
func FromEnv(getenv func(string) string) (Config, error) {
	raw := map[string]string{}
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			raw[s.env] = v
		}
	}
	return parse(raw, nil)
}

// Load loads the configuration of `tokend serve`: the environment, overridden
// by flags in args. Flag syntax errors are returned as *UsageError.
func Load(args []string, getenv func(string) string, helpOut io.Writer) (Config, error) {
	fs := NewFlagSet("serve")
	raw := map[string]string{}
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			raw[s.env] = v
		}
	}
	fromFlag := map[string]bool{}
	for _, s := range settings {
		fs.Var(&flagValue{s: s, raw: raw, set: fromFlag}, s.flag, s.usage+defaultNote(s))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			PrintHelp(fs, helpOut, "Usage: tokend serve [flags]\n\nEvery flag overrides the environment variable named beside it.")
			return Config{}, err
		}
		return Config{}, &UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return Config{}, &UsageError{Msg: fmt.Sprintf("serve takes no arguments, got %q", fs.Arg(0))}
	}
	return parse(raw, fromFlag)
}

// UsageError is a command-line mistake: the CLI prints it on one line and
// exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// NewFlagSet returns a flag set that reports errors instead of exiting or
// printing: a mistake becomes one line from the caller, and only -h prints
// the flags (PrintHelp).
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// PrintHelp prints a usage line and the flag set's defaults to out.
func PrintHelp(fs *flag.FlagSet, out io.Writer, usage string) {
	fmt.Fprintln(out, usage)
	fs.SetOutput(out)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func defaultNote(s setting) string {
	if s.def == "" {
		return " (env " + s.env + ")"
	}
	return fmt.Sprintf(" (env %s, default %s)", s.env, s.def)
}

// flagValue records a flag into the raw map under its environment name.
type flagValue struct {
	s   setting
	raw map[string]string
	set map[string]bool
}

func (f *flagValue) String() string {
	if f == nil || f.raw == nil || f.s.secret {
		return ""
	}
	return f.raw[f.s.env]
}

func (f *flagValue) Set(v string) error {
	f.raw[f.s.env] = v
	f.set[f.s.env] = true
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.s.isBool }

// parse turns raw text values into a Config, collecting every problem.
func parse(raw map[string]string, fromFlag map[string]bool) (Config, error) {
	var probs Problems
	name := func(env string) string {
		if fromFlag[env] {
			for _, s := range settings {
				if s.env == env {
					return "--" + s.flag
				}
			}
		}
		return env
	}
	get := func(env string) string {
		if v, ok := raw[env]; ok {
			return strings.TrimSpace(v)
		}
		for _, s := range settings {
			if s.env == env {
				return s.def
			}
		}
		return ""
	}
	bad := func(env, format string, args ...any) {
		probs = append(probs, name(env)+": "+fmt.Sprintf(format, args...))
	}
	dur := func(env string, min, max time.Duration) time.Duration {
		v := get(env)
		d, err := time.ParseDuration(v)
		if err != nil {
			bad(env, "%q is not a duration (use Go syntax such as 15m or 720h)", v)
			return 0
		}
		if d < min || (max > 0 && d > max) {
			if max > 0 {
				bad(env, "%s is out of range (%s to %s)", d, min, max)
			} else {
				bad(env, "%s is below the minimum %s", d, min)
			}
		}
		return d
	}
	boolean := func(env string) bool {
		v := get(env)
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(env, "%q is not a boolean (use true or false)", v)
		}
		return b
	}

	var c Config
	c.Dev = boolean("TOKEND_DEV")
	c.Signup = boolean("TOKEND_SIGNUP")
	c.RequireVerifiedEmail = !c.Dev
	if get("TOKEND_REQUIRE_VERIFIED_EMAIL") != "" {
		c.RequireVerifiedEmail = boolean("TOKEND_REQUIRE_VERIFIED_EMAIL")
	}

	c.DatabaseURL = secret.String(get("TOKEND_DATABASE_URL"))
	if err := CheckDatabaseURL(c.DatabaseURL.Reveal()); err != nil {
		bad("TOKEND_DATABASE_URL", "%v", err)
	}

	c.Listen = get("TOKEND_LISTEN")
	if err := listenAddrErr(c.Listen); err != nil {
		bad("TOKEND_LISTEN", "%v", err)
	}

	issuer, err := checkIssuer(get("TOKEND_ISSUER"), c.Dev)
	if err != nil {
		bad("TOKEND_ISSUER", "%v", err)
	}
	c.Issuer = issuer
	c.Audience = get("TOKEND_AUDIENCE")
	if c.Audience == "" {
		c.Audience = c.Issuer
	}

	c.AccessTokenTTL = dur("TOKEND_ACCESS_TOKEN_TTL", time.Minute, 24*time.Hour)
	c.RefreshTokenTTL = dur("TOKEND_REFRESH_TOKEN_TTL", time.Minute, 0)
	c.SessionMaxAge = dur("TOKEND_SESSION_MAX_AGE", time.Minute, 0)
	c.RefreshReuseGrace = dur("TOKEND_REFRESH_REUSE_GRACE", 0, 5*time.Minute)
	c.ResetTokenTTL = dur("TOKEND_RESET_TOKEN_TTL", time.Minute, 7*24*time.Hour)
	c.JWKSMaxAge = dur("TOKEND_JWKS_MAX_AGE", 0, 24*time.Hour)
	c.KeyRotationPeriod = dur("TOKEND_KEY_ROTATION_PERIOD", 0, 0)
	if p := c.KeyRotationPeriod; p != 0 && p < c.JWKSMaxAge+ReloadInterval {
		bad("TOKEND_KEY_ROTATION_PERIOD", "%s is shorter than TOKEND_JWKS_MAX_AGE plus the %s key reload; "+
			"a next key could never be published long enough to sign (use 0 to turn the schedule off)", p, ReloadInterval)
	}

	c.SigningAlg = get("TOKEND_SIGNING_ALG")
	if c.SigningAlg != AlgRS256 && c.SigningAlg != AlgEdDSA {
		bad("TOKEND_SIGNING_ALG", "%q is not supported (use RS256 or EdDSA)", c.SigningAlg)
	}

	c.MasterKeyFile = get("TOKEND_MASTER_KEY_FILE")
	c.MasterKey = secret.String(get("TOKEND_MASTER_KEY"))
	if c.MasterKeyFile != "" && c.MasterKey != "" {
		bad("TOKEND_MASTER_KEY", "set only one of TOKEND_MASTER_KEY and TOKEND_MASTER_KEY_FILE")
	}
	c.MasterKeyPreviousFile = get("TOKEND_MASTER_KEY_PREVIOUS_FILE")
	c.MasterKeyPrevious = secret.String(get("TOKEND_MASTER_KEY_PREVIOUS"))
	if c.MasterKeyPreviousFile != "" && c.MasterKeyPrevious != "" {
		bad("TOKEND_MASTER_KEY_PREVIOUS", "set only one of TOKEND_MASTER_KEY_PREVIOUS and TOKEND_MASTER_KEY_PREVIOUS_FILE")
	}

	c.SMTPURL = secret.String(get("TOKEND_SMTP_URL"))
	if c.SMTPURL != "" {
		if err := CheckSMTPURL(c.SMTPURL.Reveal()); err != nil {
			bad("TOKEND_SMTP_URL", "%v", err)
		}
	}
	c.MailFrom = get("TOKEND_MAIL_FROM")
	if a, err := mail.ParseAddress(c.MailFrom); err != nil || a.Address == "" {
		bad("TOKEND_MAIL_FROM", "%q is not an email address", c.MailFrom)
	}

	c.ResetURL = get("TOKEND_RESET_URL")
	if c.ResetURL == "" && issuer != "" {
		c.ResetURL = issuer + "/reset"
	} else if c.ResetURL != "" {
		u, err := url.Parse(c.ResetURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			bad("TOKEND_RESET_URL", "%q is not an absolute http(s) URL", c.ResetURL)
		case u.Fragment != "" || strings.Contains(c.ResetURL, "#"):
			bad("TOKEND_RESET_URL", "must not have a fragment: tokend appends #token=…")
		}
	}

	if v := get("TOKEND_ALLOWED_ORIGINS"); v != "" {
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			norm, err := CheckOrigin(o)
			if err != nil {
				bad("TOKEND_ALLOWED_ORIGINS", "%v", err)
				continue
			}
			c.AllowedOrigins = append(c.AllowedOrigins, norm)
		}
	}

	if p, err := password.ParseParams(get("TOKEND_ARGON2_PARAMS")); err != nil {
		bad("TOKEND_ARGON2_PARAMS", "%v", err)
	} else {
		c.Argon2 = p
	}

	if v := get("TOKEND_HASH_MAX_CONCURRENT"); v == "" {
		c.HashMaxConcurrent = 2 * runtime.NumCPU()
	} else if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 1024 {
		bad("TOKEND_HASH_MAX_CONCURRENT", "%q is not a number from 1 to 1024", v)
	} else {
		c.HashMaxConcurrent = n
	}

	c.LoginSessionMaxAge = dur("TOKEND_LOGIN_SESSION_MAX_AGE", time.Minute, 0)
	c.BrandingDir = get("TOKEND_BRANDING_DIR")

	switch v := get("TOKEND_ADMIN_LISTEN"); {
	case v == "off":
	case listenAddrErr(v) != nil:
		bad("TOKEND_ADMIN_LISTEN", "%v (or off)", listenAddrErr(v))
	case v == c.Listen && !strings.HasSuffix(v, ":0"):
		bad("TOKEND_ADMIN_LISTEN", "%q is also TOKEND_LISTEN: the admin listener needs its own address", v)
	default:
		c.AdminListen = v
	}

	if v := get("TOKEND_REFRESH_RATE_LIMIT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100000 {
			bad("TOKEND_REFRESH_RATE_LIMIT", "%q is not a number from 0 to 100000", v)
		}
		c.RefreshRateLimit = n
	}

	c.PruneInterval = dur("TOKEND_PRUNE_INTERVAL", 0, 7*24*time.Hour)
	if p := c.PruneInterval; p > 0 && p < time.Minute {
		bad("TOKEND_PRUNE_INTERVAL", "%s is below the minimum 1m (use 0 to turn the schedule off)", p)
	}
	c.AuditRetention = dur("TOKEND_AUDIT_RETENTION", 0, 0)
	if r := c.AuditRetention; r > 0 && r < 24*time.Hour {
		bad("TOKEND_AUDIT_RETENTION", "%s is below the minimum 24h (use 0 to keep every event)", r)
	}

	if len(probs) > 0 {
		return Config{}, probs
	}
	return c, nil
}

// listenAddrErr checks a host:port listen address.
func listenAddrErr(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", v)
	}
	return nil
}

// checkIssuer validates and normalizes the issuer URL (no trailing slash).
// Outside dev mode it must be https, except on a loopback host.
func checkIssuer(v string, dev bool) (string, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", v)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(v, "?#") {
		return "", fmt.Errorf("%q must not carry user info, a query or a fragment", v)
	}
	if u.Scheme == "http" && !dev && !IsLoopback(u.Hostname()) {
		return "", fmt.Errorf("%q must use https (http is allowed on loopback hosts and in dev mode)", v)
	}
	return strings.TrimRight(v, "/"), nil
}

// IsLoopback reports whether host names the local machine.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckOrigin validates a web origin (scheme://host[:port]) and returns it in
// the form browsers send in the Origin header.
func CheckOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port])", o)
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), nil
}

// CheckDatabaseURL validates a TOKEND_DATABASE_URL without echoing any
// password it may hold.
func CheckDatabaseURL(v string) error {
	switch {
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		u, err := url.Parse(v)
		if err != nil {
			return errors.New("not a valid postgres URL (postgres://user[:password]@host[:port]/dbname)")
		}
		if u.Host == "" {
			return errors.New("the postgres URL has no host")
		}
		if strings.Trim(u.Path, "/") == "" {
			return errors.New("the postgres URL names no database")
		}
		return nil
	case strings.HasPrefix(v, "sqlite:"):
		path := strings.TrimPrefix(v, "sqlite:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return errors.New("sqlite: needs a file path (sqlite:data/tokend.db)")
		}
		if strings.Contains(path, ":memory:") || strings.HasPrefix(path, "file::memory") {
			return errors.New("an in-memory SQLite database cannot be shared by tokend's connections; use a file")
		}
		return nil
	case v == "":
		return errors.New("empty (use postgres://… or sqlite:PATH)")
	default:
		// Name the scheme only when there is one: a value without one (a
		// pasted DSN, a password) must not be echoed.
		if scheme, _, ok := strings.Cut(v, ":"); ok && schemePattern.MatchString(scheme) {
			return fmt.Errorf("unsupported scheme %q (use postgres://, postgresql:// or sqlite:PATH)", scheme)
		}
		return errors.New("not a database URL (use postgres://user@host/db or sqlite:PATH)")
	}
}

// schemePattern is a URL scheme (RFC 3986 §3.1), short enough to print.
var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]{0,19}$`)

// CheckSMTPURL validates TOKEND_SMTP_URL without echoing its password.
func CheckSMTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a valid URL (smtp://[user:pass@]host:port or smtps://…)")
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return fmt.Errorf("unsupported scheme %q (use smtp:// or smtps://)", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("the SMTP URL has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("the SMTP URL has an invalid port")
		}
	}
	return nil
}

// Redacted returns the settings as name=value lines for the startup log, with
// secrets replaced.
func (c Config) Redacted() map[string]string {
	m := map[string]string{
		"TOKEND_DATABASE_URL":           RedactURL(c.DatabaseURL.Reveal()),
		"TOKEND_LISTEN":                 c.Listen,
		"TOKEND_ISSUER":                 c.Issuer,
		"TOKEND_AUDIENCE":               c.Audience,
		"TOKEND_ACCESS_TOKEN_TTL":       c.AccessTokenTTL.String(),
		"TOKEND_REFRESH_TOKEN_TTL":      c.RefreshTokenTTL.String(),
		"TOKEND_SESSION_MAX_AGE":        c.SessionMaxAge.String(),
		"TOKEND_REFRESH_REUSE_GRACE":    c.RefreshReuseGrace.String(),
		"TOKEND_RESET_TOKEN_TTL":        c.ResetTokenTTL.String(),
		"TOKEND_SIGNING_ALG":            c.SigningAlg,
		"TOKEND_KEY_ROTATION_PERIOD":    c.KeyRotationPeriod.String(),
		"TOKEND_JWKS_MAX_AGE":           c.JWKSMaxAge.String(),
		"TOKEND_MASTER_KEY_FILE":        c.MasterKeyFile,
		"TOKEND_MASTER_KEY":             redactIfSet(c.MasterKey),
		"TOKEND_SMTP_URL":               RedactURL(c.SMTPURL.Reveal()),
		"TOKEND_MAIL_FROM":              c.MailFrom,
		"TOKEND_RESET_URL":              c.ResetURL,
		"TOKEND_ALLOWED_ORIGINS":        strings.Join(c.AllowedOrigins, ","),
		"TOKEND_SIGNUP":                 strconv.FormatBool(c.Signup),
		"TOKEND_REQUIRE_VERIFIED_EMAIL": strconv.FormatBool(c.RequireVerifiedEmail),
		"TOKEND_ARGON2_PARAMS":          c.Argon2.String(),
		"TOKEND_HASH_MAX_CONCURRENT":    strconv.Itoa(c.HashMaxConcurrent),
		"TOKEND_LOGIN_SESSION_MAX_AGE":  c.LoginSessionMaxAge.String(),
		"TOKEND_BRANDING_DIR":           c.BrandingDir,
		"TOKEND_ADMIN_LISTEN":           orOff(c.AdminListen),
		"TOKEND_REFRESH_RATE_LIMIT":     strconv.Itoa(c.RefreshRateLimit),
		"TOKEND_PRUNE_INTERVAL":         c.PruneInterval.String(),
		"TOKEND_AUDIT_RETENTION":        c.AuditRetention.String(),
		"TOKEND_DEV":                    strconv.FormatBool(c.Dev),
	}
	m["TOKEND_MASTER_KEY_PREVIOUS_FILE"] = c.MasterKeyPreviousFile
	m["TOKEND_MASTER_KEY_PREVIOUS"] = redactIfSet(c.MasterKeyPrevious)
	return m
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

func redactIfSet(s secret.String) string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// RedactURL hides the password of a URL (and the whole value if it does not
// parse, since it may be a secret).
func RedactURL(v string) string {
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return "<redacted>" // not a URL: it may be anything, a password included
	}
	switch strings.ToLower(u.Scheme) {
	case "postgres", "postgresql", "smtp", "smtps":
		if u.Opaque != "" {
			return u.Scheme + ":<redacted>" // postgres:user:pw@host and the like
		}
	case "sqlite":
	default:
		return u.Scheme + ":<redacted>" // not ours: keep nothing of it
	}
	u.Fragment, u.RawFragment = "", "" // no database or SMTP URL needs one
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "redacted")
		}
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "pass") {
			q.Set(k, "redacted")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Usage writes the configuration table (for `tokend help`).
func Usage(w io.Writer) {
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(w, "  %-28s --%-22s %s (default %s)\n", s.env, s.flag, s.usage, def)
	}
}
