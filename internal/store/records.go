package store

import (
	"strings"
	"time"
)

// User is an account. PasswordHash is a PHC argon2id string or a bcrypt hash;
// the store never interprets it.
type User struct {
	ID           string
	Email        string // as entered, trimmed
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	DisabledAt   time.Time // zero while the user is enabled
}

// Disabled reports whether the user has been disabled.
func (u User) Disabled() bool { return !u.DisabledAt.IsZero() }

// NormalizeEmail is the form under which emails are unique: trimmed and
// lower-cased. Backends index this form so that uniqueness is
// case-insensitive whatever the caller passes.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// ClientKind says how a client receives its refresh token.
type ClientKind string

// Client kinds.
const (
	// ClientWeb clients use the /auth/* endpoints and get the refresh token in
	// an HttpOnly cookie.
	ClientWeb ClientKind = "web"
	// ClientNative clients use /oauth/token and get it in the response body.
	ClientNative ClientKind = "native"
)

// Valid reports whether k is a known kind.
func (k ClientKind) Valid() bool { return k == ClientWeb || k == ClientNative }

// Client is a registered first-party application (a public client).
type Client struct {
	ID        string
	Kind      ClientKind
	Audience  []string // empty: the configured default audience
	Alg       string   // empty: the configured default signing algorithm
	CreatedAt time.Time
}

// AuditEvent is one entry of the append-only audit log. Details must never
// hold a secret (password, token, reset link, key material).
type AuditEvent struct {
	ID        int64
	Type      string
	UserID    string
	ClientID  string
	Address   string
	Details   map[string]string
	CreatedAt time.Time
}

// AuditFilter selects audit events, newest first.
type AuditFilter struct {
	UserID string
	Type   string
	Since  time.Time // zero: no lower bound
	Limit  int       // <= 0: a default of 100
}

// ListOptions pages through a list ordered by creation.
type ListOptions struct {
	Limit int // <= 0: a default of 100
}
