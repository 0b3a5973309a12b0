package store

import (
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"
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
	// CredentialVersion changes with every password change (a reset); a
	// session is created only for the version its login verified.
	CredentialVersion int64
	// EmailVerifiedAt is when the owner proved the address; zero until.
	EmailVerifiedAt time.Time
}

// EmailVerified reports whether the address was verified.
func (u User) EmailVerified() bool { return !u.EmailVerifiedAt.IsZero() }

// Disabled reports whether the user has been disabled.
func (u User) Disabled() bool { return !u.DisabledAt.IsZero() }

// NormalizeEmail is the form under which emails are unique: trimmed,
// lower-cased and in Unicode Normalization Form C. Backends index this form
// so that uniqueness is case-insensitive, and blind to how a character was
// composed ("Å" as U+00C5 or as "A" and U+030A), whatever the caller passes.
func NormalizeEmail(email string) string {
	return norm.NFC.String(strings.ToLower(strings.TrimSpace(email)))
}

// ClientKind is what a client is: where it runs and whether it can keep a
// secret.
type ClientKind string

// Client kinds.
const (
	// ClientWeb clients are first-party browser apps on tokend's site: they
	// use the /auth/* endpoints and get the refresh token in an HttpOnly
	// cookie.
	ClientWeb ClientKind = "web"
	// ClientNative clients are public apps (mobile, desktop, single-page)
	// using /oauth/token; the refresh token is in the response body.
	ClientNative ClientKind = "native"
	// ClientServer clients are confidential (a server-side web app, a
	// service): they authenticate at the token endpoint.
	ClientServer ClientKind = "server"
)

// Valid reports whether k is a known kind.
func (k ClientKind) Valid() bool { return k == ClientWeb || k == ClientNative || k == ClientServer }

// Client is a registered application. The clients package owns its rules
// (validation, redirect URI matching, defaults); the store keeps it.
type Client struct {
	ID                     string
	Kind                   ClientKind
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Grants                 []string // grant types it may use
	Scopes                 []string // scopes it may be granted
	Audience               []string // empty: the configured default audience
	Alg                    string   // empty: the configured default signing algorithm
	CreatedAt              time.Time
	// SecretHash is the keyed hash of a server client's secret;
	// PreviousSecretHash the one it replaced, accepted until
	// PreviousSecretExpiresAt (a rotation's grace).
	SecretHash              string
	PreviousSecretHash      string
	PreviousSecretExpiresAt time.Time
	// JWKS holds the public keys of a client using private_key_jwt (a JWK
	// Set as JSON); empty otherwise.
	JWKS string
}

// SecretRotation replaces a client's secret, keeping the current one
// valid until Grace.
type SecretRotation struct {
	ClientID string
	NewHash  string
	At       time.Time
	Grace    time.Time // when the replaced secret stops working
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

// KeyState is a signing key's place in its lifecycle:
// next → current → retired → expired, or revoked from any state.
type KeyState string

// Key states.
const (
	// KeyNext is published in the JWKS but does not sign yet.
	KeyNext KeyState = "next"
	// KeyCurrent signs new tokens (one per algorithm).
	KeyCurrent KeyState = "current"
	// KeyRetired no longer signs and stays published until PublishUntil.
	KeyRetired KeyState = "retired"
	// KeyExpired has left the JWKS; the row is kept for the record.
	KeyExpired KeyState = "expired"
	// KeyRevoked left the JWKS at once.
	KeyRevoked KeyState = "revoked"
)

// SigningKey is a stored signing key. The private key is only ever stored
// encrypted (PrivateSealed, AES-GCM under a key derived from the master key,
// bound to KID).
type SigningKey struct {
	KID           string
	Alg           string
	State         KeyState
	PublicJWK     []byte // the public JWK as JSON
	PrivateSealed []byte
	Origin        string // "generated" or "imported"
	CreatedAt     time.Time
	ActivatedAt   time.Time // when it became current
	RetiredAt     time.Time
	PublishUntil  time.Time // for retired keys: when it leaves the JWKS
	RevokedAt     time.Time
}

// KeyRotation is one atomic rotation of an algorithm's keys: the current
// key retires (published until PublishUntil), the next becomes current, and
// NewNext is added. It applies only if CurrentKID and NextKID still hold
// those states, so two concurrent rotations cannot both succeed.
type KeyRotation struct {
	Alg          string
	CurrentKID   string // "" when the algorithm has no current key
	NextKID      string
	NewNext      SigningKey
	At           time.Time
	PublishUntil time.Time
}

// RefreshFamily is one login on one device (a "session"): the chain of
// refresh tokens that descends from it. Revoking the family revokes every
// token in it.
type RefreshFamily struct {
	ID           string
	UserID       string
	ClientID     string
	Scope        string
	UserAgent    string
	Address      string
	CreatedAt    time.Time
	ExpiresAt    time.Time // absolute (TOKEND_SESSION_MAX_AGE)
	RevokedAt    time.Time
	RevokeReason string
	// LastUsedAt is when the family's newest token was issued (filled by
	// listings).
	LastUsedAt time.Time
	// SignInID is the sign-in session the family was started through (the
	// code flow), empty for a password login; AuthTime and AMR say when and
	// how the user authenticated.
	SignInID string
	AuthTime time.Time
	AMR      []string
	// ClientKind is the kind of the client the family belongs to.
	ClientKind ClientKind
	// Generation counts the family's refresh tokens: the live one is the
	// token of this generation (1 for the first); every lower one has been
	// rotated out. 0 is a family of the old form, whose tokens are rows in
	// refresh_tokens, until its live token rotates once.
	Generation int64
	// RotatedAt is when the live generation was issued; IdleExpiresAt is
	// when it idles out (never after ExpiresAt).
	RotatedAt     time.Time
	IdleExpiresAt time.Time
}

// Revoked reports whether the family has been revoked.
func (f RefreshFamily) Revoked() bool { return !f.RevokedAt.IsZero() }

// RefreshToken is a stored refresh token: its hash, never the token.
type RefreshToken struct {
	Hash       string
	FamilyID   string
	UserID     string
	ClientID   string
	ClientKind ClientKind
	Scope      string
	ParentHash string
	CreatedAt  time.Time
	ExpiresAt  time.Time // idle expiry, never after the family's
	UsedAt     time.Time // when it was rotated
}

// NewSession is what a successful login writes in one transaction: a
// family at generation 1 (Family.ClientKind and Family.IdleExpiresAt set;
// its RotatedAt is its CreatedAt) and no token row.
type NewSession struct {
	Family RefreshFamily
	// Legacy, when set, writes the family in the form it had before one
	// row per session (generation 0, this first token a row in
	// refresh_tokens). Only for tests and tools that exercise the
	// migration path; tokend itself never sets it.
	Legacy *RefreshToken
	Audit  *AuditEvent
	// CredentialVersion is the user's credential version the login
	// verified: the session is created only if the user is still enabled
	// and still at this version when the transaction commits (ErrStale
	// otherwise, and nothing is written).
	CredentialVersion int64
	// Settle settles the login's brute-force reservation in the same
	// transaction.
	Settle ThrottleSettlement
}

// Rotation consumes a live refresh token of the old form (a row in
// refresh_tokens, in a family at generation 0) and moves its family to
// generation 1: the migration path of sessions created before one row per
// session.
type Rotation struct {
	// RateLimit, when not zero, refuses the rotation (as any token that
	// cannot rotate) when the family already issued that many tokens since
	// RateSince.
	RateLimit int
	RateSince time.Time

	Hash       string     // the presented token's hash
	ClientKind ClientKind // the token must belong to a client of this kind
	ClientID   string     // and, when set, to this client
	At         time.Time
	// IdleExpiresAt is generation 1's idle expiry; the store caps it at
	// the family's absolute expiry.
	IdleExpiresAt time.Time
}

// FamilyRotation moves a family from Generation to Generation+1: the one
// write of a refresh.
type FamilyRotation struct {
	FamilyID   string
	Generation int64      // the presented token's: the family must be at it
	ClientKind ClientKind // the family must belong to a client of this kind
	ClientID   string     // and, when set, to this client
	At         time.Time
	// IdleExpiresAt is the new generation's idle expiry; the store caps it
	// at the family's absolute expiry.
	IdleExpiresAt time.Time
	// RateLimit, when not zero, refuses the rotation when the family's
	// current one-minute window (which starts at a rotation after
	// RateSince's window ended) already counts that many tokens.
	RateLimit int
	RateSince time.Time
}

// Throttle is a counter of events in a window. A counter that does not
// exist reads as the zero Throttle with its Key.
type Throttle struct {
	Key         string
	Hits        int
	WindowStart time.Time
	LastHit     time.Time
}

// ThrottleSettlement is what becomes of reserved attempts once their outcome
// is known: Clear deletes counters (a success that proves the owner),
// Release gives one hit back on each counter (an attempt that should not
// count, such as a success or one never evaluated), and Mark writes
// markers: rows that record a fact until a time (an address or a device
// from which an account signed in; see throttle.Trusted). A marker is stored
// as a counter of one hit whose WindowStart is when it was set and whose
// LastHit is when it lapses, so that pruning (by LastHit) keeps it that long.
type ThrottleSettlement struct {
	Clear   []string
	Release []string
	Mark    []Throttle
}

// Empty reports whether the settlement changes nothing.
func (s ThrottleSettlement) Empty() bool {
	return len(s.Clear) == 0 && len(s.Release) == 0 && len(s.Mark) == 0
}

// OneTimePurpose names what a single-use mailed token is for. A token of
// one purpose is never accepted for another.
type OneTimePurpose string

// Purposes of single-use tokens.
const (
	// PurposePasswordReset: the link of a password-reset mail.
	PurposePasswordReset OneTimePurpose = "password_reset"
	// PurposeVerifyEmail: the confirmation link mailed at sign-up.
	PurposeVerifyEmail OneTimePurpose = "verify_email"
	// PurposeChangeEmail: the confirmation link mailed to the new address
	// of an account; Data carries that address.
	PurposeChangeEmail OneTimePurpose = "change_email"
)

// OneTimeToken is a stored single-use token (its hash, never the token).
type OneTimeToken struct {
	Hash    string
	Purpose OneTimePurpose
	UserID  string
	// Data is what the purpose needs besides the user, sealed by the
	// caller (the store never reads it); nil when nothing.
	Data      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	VoidedAt  time.Time
}

// MailJob is a queued mail. Payload is sealed under the master key.
type MailJob struct {
	ID            string
	Kind          string
	UserID        string
	Payload       []byte
	CreatedAt     time.Time
	NextAttemptAt time.Time
	ExpiresAt     time.Time // given up after this
	Attempts      int
	LastError     string
	LockedBy      string
	LockedUntil   time.Time
}

// NewOneTime is what issuing a token writes in one transaction: the user
// first when CreateUser is set (a sign-up; ErrEmailTaken when the address
// has an account), the token, its mail and the audit event. The user's
// older live tokens of the same purpose are voided and their unsent mails
// (of Mail.Kind) dropped, so at most one token per user and purpose is
// usable. Unless CreateUser is set, the user must still be enabled and
// still have the address UserEmail (the one the caller read), or nothing
// is written and the answer is ErrStale: a link is never mailed for an
// address the account no longer has.
type NewOneTime struct {
	CreateUser *User
	UserEmail  string
	Token      OneTimeToken
	Mail       MailJob
	// Notice, when set, is another mail written with the token (the notice
	// to the old address of an email change).
	Notice *MailJob
	Audit  *AuditEvent
}

// OneTimeUse consumes the live token Hash of Purpose (unused, not voided,
// unexpired at At) and applies its effects to the token's user, in one
// transaction. A token that cannot be used — unknown, of another purpose,
// used, voided, expired, or its user disabled — is ErrNotFound and nothing
// is written. The effects, each optional:
type OneTimeUse struct {
	Hash    string
	Purpose OneTimePurpose
	At      time.Time
	// PasswordHash sets the password (and bumps the credential version).
	PasswordHash string
	// NewEmail replaces the address (ErrEmailTaken when another account
	// has it; nothing is written then).
	NewEmail string
	// VerifyEmail marks the user's address verified at At (it keeps an
	// earlier verification time).
	VerifyEmail bool
	// VoidOthers voids every other live token of the user, whatever its
	// purpose (the links of a changed password or address).
	VoidOthers bool
	// RevokeSessions ends the user's refresh-token families and sign-in
	// sessions, except the family KeepFamily (and the sign-in session it
	// was started through), with RevokeReason.
	RevokeSessions bool
	KeepFamily     string
	RevokeReason   string
	// Audit is written with the token's user.
	Audit *AuditEvent
}

// SignIn is a sign-in session at tokend: the browser's single sign-on,
// behind an HttpOnly cookie that holds ID and a secret whose SHA-256 is
// SecretHash.
type SignIn struct {
	ID           string
	SecretHash   string
	UserID       string
	AuthTime     time.Time
	AMR          []string
	UserAgent    string
	Address      string
	CreatedAt    time.Time
	LastUsedAt   time.Time
	ExpiresAt    time.Time
	RevokedAt    time.Time
	RevokeReason string
}

// Revoked reports whether the sign-in session was ended.
func (s SignIn) Revoked() bool { return !s.RevokedAt.IsZero() }

// NewSignIn is what a successful sign-in on the login page writes in one
// transaction: the session, the settlement of the attempt's throttles and
// the audit event, if the user is still enabled at CredentialVersion
// (ErrStale otherwise).
type NewSignIn struct {
	SignIn            SignIn
	CredentialVersion int64
	Settle            ThrottleSettlement
	Audit             *AuditEvent
}

// AuthCode is an authorization code (its hash, never the code), bound to
// the client, the redirect URI, the PKCE challenge, the nonce and the
// sign-in session it was issued for.
type AuthCode struct {
	Hash          string
	ClientID      string
	RedirectURI   string
	CodeChallenge string
	Nonce         string
	Scope         string
	SignInID      string
	UserID        string
	AuthTime      time.Time
	AMR           []string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	UsedAt        time.Time
	// FamilyID is the session the code's exchange started.
	FamilyID string
}

// CodeExchange consumes a code and starts its session in one transaction.
// The code must be unused, unexpired, ClientID's, for RedirectURI, with
// code_challenge Challenge (the S256 of the presented verifier, "" when
// none was presented and the request had none), and its sign-in session
// live and its user enabled.
type CodeExchange struct {
	Hash        string
	ClientID    string
	RedirectURI string
	Challenge   string
	At          time.Time
	// The session it starts: the user, the scope, the sign-in session and
	// the authentication come from the code.
	FamilyID        string
	FamilyExpiresAt time.Time
	// TokenExpiresAt is generation 1's idle expiry, capped at
	// FamilyExpiresAt by the caller.
	TokenExpiresAt time.Time
	ClientKind     ClientKind
	UserAgent      string
	Address        string
	// Audit is written with the code's user.
	Audit *AuditEvent
}

// SessionState is a family and whether its user is enabled.
type SessionState struct {
	Family       RefreshFamily
	UserDisabled bool
}

// Kinds of second factors.
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
)

// Factor is a second factor of an account: a TOTP authenticator or a
// WebAuthn credential (a passkey).
type Factor struct {
	ID     string
	UserID string
	Kind   string // FactorTOTP or FactorWebAuthn
	Name   string // shown to the user
	// SecretSealed is a TOTP factor's secret, sealed under the master key
	// (masterkey.PurposeTOTP, bound to ID).
	SecretSealed string
	// LastStep is the last RFC 6238 time step a TOTP factor accepted.
	LastStep int64
	// CredentialID (base64url), Credential (the public credential as JSON)
	// and SignCount belong to a WebAuthn factor.
	CredentialID string
	Credential   string
	SignCount    int64
	CreatedAt    time.Time
	LastUsedAt   time.Time
}

// DataKey is a key for keyed hashes (client secrets, recovery codes,
// refresh tokens, CSRF tokens), generated once and kept sealed under the
// master key, so that rotating the master key does not change it.
type DataKey struct {
	Purpose   string
	Version   uint32
	Sealed    []byte
	CreatedAt time.Time
}

// SealedKind names a kind of value sealed under the master key.
type SealedKind string

// The kinds of sealed values, in the order Reseal visits them. ID is what
// each seal is bound to.
const (
	SealedSigningKey SealedKind = "signing_key" // ID: the kid
	SealedMail       SealedKind = "mail"        // ID: the job's id
	SealedTOTP       SealedKind = "totp"        // ID: the factor's id; the value is its base64 text
	SealedOneTime    SealedKind = "onetime"     // ID: the token's hash
	SealedDataKey    SealedKind = "data_key"    // ID: purpose + "/" + version
	SealedCheck      SealedKind = "check"       // ID: the meta name (master_key_check); base64 text
)

// SealedValue is one value sealed under the master key, as stored.
type SealedValue struct {
	Kind   SealedKind
	ID     string
	Sealed []byte
}
