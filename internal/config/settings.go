package config

// setting describes one configuration variable.
type setting struct {
	env    string // TOKEND_… name
	flag   string // kebab-case flag of `tokend serve`
	def    string // default as text; "" means none
	usage  string
	secret bool // never printed or echoed in errors
	isBool bool
}

// settings is the configuration table of API.md, in its order.
var settings = []setting{
	{env: "TOKEND_DATABASE_URL", flag: "database-url", def: "sqlite:data/tokend.db", secret: true,
		usage: "postgres://… (or postgresql://…) or sqlite:PATH"},
	{env: "TOKEND_LISTEN", flag: "listen", def: "127.0.0.1:8080", usage: "address to serve on"},
	{env: "TOKEND_ISSUER", flag: "issuer", def: "http://127.0.0.1:8080",
		usage: "the iss claim and the base of every URL in discovery"},
	{env: "TOKEND_AUDIENCE", flag: "audience", usage: "default aud of access tokens (default: the issuer)"},
	{env: "TOKEND_ACCESS_TOKEN_TTL", flag: "access-token-ttl", def: "15m", usage: "access token lifetime"},
	{env: "TOKEND_REFRESH_TOKEN_TTL", flag: "refresh-token-ttl", def: "720h",
		usage: "idle lifetime of a refresh token"},
	{env: "TOKEND_SESSION_MAX_AGE", flag: "session-max-age", def: "2160h",
		usage: "absolute lifetime of a refresh-token family"},
	{env: "TOKEND_REFRESH_REUSE_GRACE", flag: "refresh-reuse-grace", def: "10s",
		usage: "window in which a just-rotated refresh token may be presented again"},
	{env: "TOKEND_RESET_TOKEN_TTL", flag: "reset-token-ttl", def: "1h", usage: "password-reset token lifetime"},
	{env: "TOKEND_SIGNING_ALG", flag: "signing-alg", def: "RS256", usage: "algorithm of new access tokens: RS256 or EdDSA"},
	{env: "TOKEND_KEY_ROTATION_PERIOD", flag: "key-rotation-period", def: "720h",
		usage: "how long a key signs before the scheduler rotates it; 0 turns the schedule off"},
	{env: "TOKEND_JWKS_MAX_AGE", flag: "jwks-max-age", def: "5m", usage: "Cache-Control max-age of the JWKS"},
	{env: "TOKEND_MASTER_KEY_FILE", flag: "master-key-file", usage: "file holding the 32-byte master key (base64)"},
	{env: "TOKEND_MASTER_KEY", flag: "master-key", secret: true,
		usage: "32-byte key-encryption key (base64) that encrypts private signing keys at rest"},
	{env: "TOKEND_MASTER_KEY_PREVIOUS_FILE", flag: "master-key-previous-file",
		usage: "file holding the previous master key during a rotation: it only decrypts (see tokend masterkey)"},
	{env: "TOKEND_MASTER_KEY_PREVIOUS", flag: "master-key-previous", secret: true,
		usage: "the previous master key (base64) during a rotation: it only decrypts"},
	{env: "TOKEND_SMTP_URL", flag: "smtp-url", secret: true,
		usage: "smtp://[user:pass@]host:port (STARTTLS when offered) or smtps://…; none means the dev mailer"},
	{env: "TOKEND_MAIL_FROM", flag: "mail-from", def: "tokend@localhost", usage: "sender of reset mails"},
	{env: "TOKEND_RESET_URL", flag: "reset-url", usage: "page the reset link opens (default: {issuer}/reset)"},
	{env: "TOKEND_ALLOWED_ORIGINS", flag: "allowed-origins",
		usage: "comma-separated origins allowed to call the cookie endpoints and get CORS headers"},
	{env: "TOKEND_SIGNUP", flag: "signup", def: "true", isBool: true, usage: "whether POST /auth/signup is open"},
	{env: "TOKEND_REQUIRE_VERIFIED_EMAIL", flag: "require-verified-email", isBool: true,
		usage: "refuse sign-in until the account's email address is verified (default: true, false in dev mode)"},
	{env: "TOKEND_ARGON2_PARAMS", flag: "argon2-params", def: "m=19456,t=2,p=1",
		usage: "argon2id memory (KiB), passes and lanes for new hashes"},
	{env: "TOKEND_HASH_MAX_CONCURRENT", flag: "hash-max-concurrent",
		usage: "hashes computed at once (default: twice the CPUs)"},
	{env: "TOKEND_LOGIN_SESSION_MAX_AGE", flag: "login-session-max-age", def: "24h",
		usage: "lifetime of the browser sign-in session at tokend (single sign-on of the authorization endpoint)"},
	{env: "TOKEND_BRANDING_DIR", flag: "branding-dir",
		usage: "directory of overrides for the hosted pages: brand.json (product_name, colours) and logo.svg or logo.png"},
	{env: "TOKEND_ADMIN_LISTEN", flag: "admin-listen", def: "127.0.0.1:8081",
		usage: "second listener for operators: /metrics; off disables it"},
	{env: "TOKEND_REFRESH_RATE_LIMIT", flag: "refresh-rate-limit", def: "60",
		usage: "refresh-token rotations one session may make per minute (more get 429); 0 turns the limit off"},
	{env: "TOKEND_PRUNE_INTERVAL", flag: "prune-interval", def: "1h",
		usage: "how often one instance deletes expired and revoked data, in small batches; 0 turns the schedule off (tokend prune still works)"},
	{env: "TOKEND_AUDIT_RETENTION", flag: "audit-retention", def: "2160h",
		usage: "how long audit events are kept before pruning deletes them; 0 keeps them all"},
	{env: "TOKEND_DEV", flag: "dev", def: "false", isBool: true,
		usage: "dev mode: generated master key, dev mailer, demo clients and user, non-Secure cookies on http"},
}
