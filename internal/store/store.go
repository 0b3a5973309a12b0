package store

import (
	"context"
	"time"
)

// Store is everything tokend persists. It is wide on purpose: two backends
// implement it and one conformance suite (storetest) checks both. Domain
// packages declare the narrow interfaces they need instead of taking Store.
//
// Every mutating operation is atomic: it writes all of its rows, including the
// optional audit event, or none of them.
type Store interface {
	UserStore
	ClientStore
	AuditStore
	LeaseStore
	KeyStore
	MetaStore
	MasterKeyStore
	SessionStore
	ThrottleStore
	OneTimeStore
	MailStore
	SignInStore
	FormStore
	CodeStore
	FactorStore
	PruneStore

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the connections.
	Close() error
}

// UserStore holds accounts.
type UserStore interface {
	// CreateUser inserts u (and ev, when not nil) in one transaction. A user
	// whose normalized email exists already gets ErrEmailTaken.
	CreateUser(ctx context.Context, u User, ev *AuditEvent) error
	// UserByID returns ErrNotFound for an unknown id.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByEmail looks the email up case-insensitively.
	UserByEmail(ctx context.Context, email string) (User, error)
	// ListUsers lists users, oldest first.
	ListUsers(ctx context.Context, opts ListOptions) ([]User, error)
	// DisableUser marks the user disabled at `at` and revokes every one of
	// their sessions (refresh-token families and sign-in sessions), with
	// ev, in one transaction. Disabling a disabled user
	// is not an error.
	DisableUser(ctx context.Context, id string, at time.Time, ev *AuditEvent) error
	// UpdatePasswordHash replaces the hash only if it still equals oldHash
	// (an upgrade after login must not undo a concurrent password reset);
	// otherwise it returns ErrConflict.
	UpdatePasswordHash(ctx context.Context, id, oldHash, newHash string, at time.Time) error
}

// ClientStore holds registered clients.
type ClientStore interface {
	// CreateClient returns ErrAlreadyExists for a taken id.
	CreateClient(ctx context.Context, c Client, ev *AuditEvent) error
	ClientByID(ctx context.Context, id string) (Client, error)
	// ListClients lists clients ordered by id.
	ListClients(ctx context.Context) ([]Client, error)
	// DeleteClient deletes a client and revokes the sessions it holds, in
	// one transaction; ErrNotFound for an unknown id.
	DeleteClient(ctx context.Context, id string, at time.Time, ev *AuditEvent) error
	// RotateClientSecret applies r: the current hash becomes the previous
	// one (valid until r.Grace) and r.NewHash the current; ErrNotFound for
	// an unknown id.
	RotateClientSecret(ctx context.Context, r SecretRotation, ev *AuditEvent) error
	// UseClientAssertion records the jti (hash) of a client assertion until
	// expires; ErrAlreadyExists when it was seen before (a replay).
	UseClientAssertion(ctx context.Context, jtiHash, clientID string, expires time.Time) error
}

// AuditStore is the append-only audit log.
type AuditStore interface {
	AppendAudit(ctx context.Context, ev AuditEvent) error
	// ListAudit returns matching events, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// LeaseStore coordinates work that exactly one instance must do at a time
// (scheduled key rotation, migrations) through a lease row, which is portable
// to every SQL engine tokend supports, unlike advisory locks.
type LeaseStore interface {
	// AcquireLease takes the named lease for holder until `until`, if it is
	// free, expired at `now`, or already held by holder (a renewal). It
	// reports whether holder now has the lease.
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	// ReleaseLease gives the lease up if holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// KeyStore holds signing keys. Each method is one transaction whose
// conditions make concurrent callers safe: at most one current and one next
// key per algorithm can ever exist.
type KeyStore interface {
	// SigningKeys lists keys in the given states (all keys when none),
	// ordered by algorithm, then newest first.
	SigningKeys(ctx context.Context, states ...KeyState) ([]SigningKey, error)
	// BootstrapSigningKeys inserts a current and a next key for an algorithm
	// that has no current key; ErrAlreadyExists when another instance won.
	BootstrapSigningKeys(ctx context.Context, current, next SigningKey, ev *AuditEvent) error
	// RotateSigningKeys applies r, or returns ErrConflict when the keys
	// changed since the caller read them.
	RotateSigningKeys(ctx context.Context, r KeyRotation, ev *AuditEvent) error
	// ReplaceNextSigningKey drops the algorithm's next key (it never
	// signed) and inserts k as next (an imported key).
	ReplaceNextSigningKey(ctx context.Context, k SigningKey, ev *AuditEvent) error
	// RevokeSigningKey revokes kid at `at`. A revoked current key is
	// replaced by the next key; a revoked current or next key leaves the
	// algorithm without a next key, so newNext (required then) takes its
	// place. Revoking a revoked or expired key is ErrConflict; an unknown
	// kid is ErrNotFound.
	RevokeSigningKey(ctx context.Context, kid string, at time.Time, newNext *SigningKey, ev *AuditEvent) error
	// ExpireSigningKeys moves retired keys whose PublishUntil has passed at
	// now to expired, and returns how many moved.
	ExpireSigningKeys(ctx context.Context, now time.Time) (int, error)
}

// MetaStore keeps small named values (the master key check value).
type MetaStore interface {
	// PutMetaIfAbsent stores value under name unless one exists, and
	// returns the stored value.
	PutMetaIfAbsent(ctx context.Context, name, value string) (string, error)
}

// MasterKeyStore keeps the data keys and lets a master-key rotation
// re-seal, in one transaction, every value sealed under the master key.
type MasterKeyStore interface {
	// DataKeys lists every data key, by purpose then version.
	DataKeys(ctx context.Context) ([]DataKey, error)
	// AddDataKey stores k unless its purpose and version exist (then it
	// does nothing: the first writer wins).
	AddDataKey(ctx context.Context, k DataKey) error
	// SealedValues calls fn with every value sealed under the master key
	// (and the master key check value, kind SealedCheck), kind by kind.
	SealedValues(ctx context.Context, fn func(SealedValue) error) error
	// Reseal calls fn with every sealed value, as SealedValues does, inside
	// one transaction; a non-nil result replaces the value. It then appends
	// the audit event ev returns for the counts of replaced values (none
	// when ev or its result is nil). An error from fn rolls everything back.
	// It returns how many values of each kind were replaced.
	Reseal(ctx context.Context, fn func(SealedValue) ([]byte, error), ev func(map[SealedKind]int) *AuditEvent) (map[SealedKind]int, error)
}

// SessionStore holds refresh-token families and their tokens.
type SessionStore interface {
	// CreateSession writes a family at generation 1 and the audit event,
	// and settles the login's throttles, in one transaction, if the user is
	// still enabled at s.CredentialVersion; otherwise it writes nothing and
	// returns ErrStale. It holds the user's row so that a concurrent reset
	// or disable either sees the new family (and revokes it) or makes this
	// call fail.
	CreateSession(ctx context.Context, s NewSession) error
	// RotateFamily moves a live family (not revoked, not past its idle or
	// absolute expiry, of the right client, of an enabled user, under its
	// rate limit) from r.Generation to the next generation, in one
	// conditional UPDATE of its row, and returns the family as updated.
	// Any family that cannot rotate gives ErrNotFound and nothing is
	// written; Family, UserByID and RecentRotations tell why.
	RotateFamily(ctx context.Context, r FamilyRotation) (RefreshFamily, error)
	// RotateRefreshToken consumes the live token r.Hash of the old form
	// (unused, unexpired, of the right client, in a family at generation 0
	// that is not revoked, of an enabled user, under r.RateLimit) and moves
	// its family to generation 1, in one transaction. It returns the
	// consumed token and the family as updated. Any token that cannot
	// rotate gives ErrNotFound, and nothing is written.
	RotateRefreshToken(ctx context.Context, r Rotation) (parent RefreshToken, fam RefreshFamily, err error)
	// RefreshToken returns a token of the old form by hash, whatever its
	// state, with its family.
	RefreshToken(ctx context.Context, hash string) (RefreshToken, RefreshFamily, error)
	// RevokeFamily revokes a family (and so every token in it) unless it is
	// revoked already, writing ev only when it did. It reports whether it
	// changed anything.
	RevokeFamily(ctx context.Context, familyID string, at time.Time, reason string, ev *AuditEvent) (bool, error)
	// RevokeUserFamily revokes the user's family id; ErrNotFound when the
	// user has no such live family.
	RevokeUserFamily(ctx context.Context, userID, familyID string, at time.Time, reason string, ev *AuditEvent) error
	// RevokeUserFamilies revokes every live family of the user except
	// `except` (may be empty) and returns how many.
	RevokeUserFamilies(ctx context.Context, userID, except string, at time.Time, reason string, ev *AuditEvent) (int, error)
	// RecentRotations counts the tokens the family issued in its rate
	// window that is still open at `since` (its old-form tokens issued since
	// `since`, its first one included, for a family at generation 0).
	RecentRotations(ctx context.Context, familyID string, since time.Time) (int, error)
	// Family returns a family by id.
	Family(ctx context.Context, id string) (RefreshFamily, error)
	// SessionState returns what decides whether a family's tokens are
	// active, in one indexed read: the family with its user's state.
	SessionState(ctx context.Context, familyID string) (SessionState, error)
	// ListSessions returns the user's live families at now (not revoked, not
	// expired, not idled out), newest first.
	ListSessions(ctx context.Context, userID string, now time.Time) ([]RefreshFamily, error)
}

// ThrottleStore keeps the counters of brute-force protection and rate
// limits in the database, so that limits hold across instances.
type ThrottleStore interface {
	// Throttles returns the counters that exist among keys.
	Throttles(ctx context.Context, keys ...string) ([]Throttle, error)
	// HitThrottles counts one event on each key at now, starting a new
	// window for a key whose window began before now-window, and returns
	// the updated counters, in one transaction.
	HitThrottles(ctx context.Context, now time.Time, window time.Duration, keys ...string) ([]Throttle, error)
	// UpdateThrottles is a conditional update of counters: in one
	// transaction it locks the counters of keys (absent ones read as zero),
	// passes them to decide in the order of keys, and stores what decide
	// returns. An error from decide rolls everything back and is returned.
	// Concurrent callers on a key run one after the other, so decide sees
	// every earlier caller's result. decide may run more than once (the
	// transaction is retried on a conflict) and must have no side effects.
	UpdateThrottles(ctx context.Context, keys []string, decide func(current []Throttle) ([]Throttle, error)) error
	// SettleThrottles applies s in one transaction.
	SettleThrottles(ctx context.Context, s ThrottleSettlement) error
}

// OneTimeStore holds the single-use tokens mailed to users (password
// reset, email verification, change of email).
type OneTimeStore interface {
	// IssueOneTime writes n in one transaction (see NewOneTime).
	IssueOneTime(ctx context.Context, n NewOneTime) error
	// OneTimeToken returns a token by hash, whatever its state.
	OneTimeToken(ctx context.Context, hash string) (OneTimeToken, error)
	// UseOneTime applies u (see OneTimeUse) and returns the token as it
	// was before the use.
	UseOneTime(ctx context.Context, u OneTimeUse) (OneTimeToken, error)
}

// MailStore is the mail outbox.
type MailStore interface {
	// ClaimMail locks up to limit due, unexpired jobs for holder until
	// `until` and counts an attempt on each. Jobs another holder has
	// locked are skipped, so each job goes to one worker.
	ClaimMail(ctx context.Context, holder string, now, until time.Time, limit int) ([]MailJob, error)
	// CompleteMail deletes a sent job (if holder still has it).
	CompleteMail(ctx context.Context, id, holder string) error
	// RetryMail unlocks a job for another attempt at next.
	RetryMail(ctx context.Context, id, holder string, next time.Time, lastErr string) error
	// DropExpiredMail deletes jobs past their expiry and returns how many.
	DropExpiredMail(ctx context.Context, now time.Time) (int, error)
	// QueueMail queues a mail that announces no token (a notice), with
	// ev, in one transaction.
	QueueMail(ctx context.Context, job MailJob, ev *AuditEvent) error
	// PendingMail counts queued jobs.
	PendingMail(ctx context.Context) (int, error)
}

// SignInStore holds sign-in sessions (browser single sign-on).
type SignInStore interface {
	// CreateSignIn writes s (see NewSignIn) in one transaction.
	CreateSignIn(ctx context.Context, s NewSignIn) error
	// SignIn returns a sign-in session by id, whatever its state.
	SignIn(ctx context.Context, id string) (SignIn, error)
	// ListSignIns returns the user's live sign-in sessions at now, newest
	// first.
	ListSignIns(ctx context.Context, userID string, now time.Time) ([]SignIn, error)
	// RevokeSignIn ends a sign-in session and revokes every family started
	// through it, writing ev, in one transaction, unless it is revoked
	// already. When userID is not empty the session must be that user's
	// (ErrNotFound otherwise). It reports whether it changed anything.
	RevokeSignIn(ctx context.Context, id, userID string, at time.Time, reason string, ev *AuditEvent) (bool, error)
	// RevokeUserSignIns ends every live sign-in session of the user except
	// `except` (may be empty), with the families started through them, and
	// returns how many sessions.
	RevokeUserSignIns(ctx context.Context, userID, except string, at time.Time, reason string) (int, error)
	// StepUpSignIn records a further authentication in the live sign-in
	// session id: its methods become amr and its auth_time at; the second
	// step's throttles are settled and ev appended, in one transaction.
	// ErrStale (and nothing written) when the session ended meanwhile.
	StepUpSignIn(ctx context.Context, id string, amr []string, at time.Time, settle ThrottleSettlement, ev *AuditEvent) error
}

// FormStore remembers which single-use form states were used.
type FormStore interface {
	// UseForm records that the form state whose id hashes to idHash was
	// used, until expires (when no copy of it opens any more);
	// ErrAlreadyExists when it was used before, on any instance.
	UseForm(ctx context.Context, idHash, purpose string, expires time.Time) error
	// ReleaseForm forgets that the form state was used (its use was
	// reserved and then failed), so it can be used again.
	ReleaseForm(ctx context.Context, idHash string) error
}

// CodeStore holds authorization codes.
type CodeStore interface {
	// CreateCode stores a code for a live sign-in session and marks the
	// session used at c.CreatedAt; ErrStale when the sign-in session is
	// revoked or expired, or its user disabled.
	CreateCode(ctx context.Context, c AuthCode) error
	// Code returns a code by hash, whatever its state.
	Code(ctx context.Context, hash string) (AuthCode, error)
	// ExchangeCode consumes the code x names (see CodeExchange) and writes
	// the session it starts, in one transaction, recording the family on
	// the code. It returns the code and its user. A code that cannot be
	// exchanged for any reason — used, expired, unknown, another client's,
	// another redirect URI's or verifier's, its sign-in session ended, its
	// user disabled — is ErrNotFound, and nothing is written; Code and
	// SignIn tell why.
	ExchangeCode(ctx context.Context, x CodeExchange) (AuthCode, User, error)
}

// FactorStore holds second factors and recovery codes.
type FactorStore interface {
	// Factors lists the user's factors, oldest first.
	Factors(ctx context.Context, userID string) ([]Factor, error)
	// AddFactor inserts f and, when recoveryHashes is not empty, the user's
	// recovery codes in place of any earlier ones, and ev, in one
	// transaction. A second TOTP factor, or a WebAuthn credential id that
	// exists, is ErrAlreadyExists and writes nothing.
	AddFactor(ctx context.Context, f Factor, recoveryHashes []string, ev *AuditEvent) error
	// UseTOTPStep records that the TOTP factor id accepted step at `at`,
	// if step is later than every step it accepted before; false (and
	// nothing written) otherwise: a code is used once.
	UseTOTPStep(ctx context.Context, id string, step int64, at time.Time) (bool, error)
	// UseWebAuthn records a WebAuthn assertion of the factor with
	// credentialID: the new signature counter, when it is 0 (the
	// authenticator keeps none) or above the stored one; false (and nothing
	// written) when the counter did not move forward — a cloned
	// authenticator.
	UseWebAuthn(ctx context.Context, credentialID string, signCount int64, credential string, at time.Time) (bool, error)
	// FactorByCredential returns the WebAuthn factor with credentialID.
	FactorByCredential(ctx context.Context, credentialID string) (Factor, error)
	// UseChallenge records that the WebAuthn challenge whose hash is hash
	// was answered, until expires; ErrAlreadyExists when it was before, on
	// any instance: each challenge is answered once.
	UseChallenge(ctx context.Context, hash string, expires time.Time) error
	// UseRecoveryCode marks the user's unused recovery code with hash used,
	// with ev, in one transaction; false (and nothing written) when the user
	// has no such unused code.
	UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time, ev *AuditEvent) (bool, error)
	// RecoveryCodesLeft counts the user's unused recovery codes.
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
	// ReplaceRecoveryCodes replaces the user's recovery codes, with ev, in
	// one transaction.
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, at time.Time, ev *AuditEvent) error
	// RemoveFactor deletes the user's factor id, and the recovery codes when
	// it was the user's last factor, with ev; ErrNotFound when the user has
	// no such factor.
	RemoveFactor(ctx context.Context, userID, id string, ev *AuditEvent) error
	// RemoveFactors deletes every factor and recovery code of the user, with
	// ev, and returns how many factors there were.
	RemoveFactors(ctx context.Context, userID string, ev *AuditEvent) (int, error)
}

// PruneTarget names rows that can be pruned by age: those of Table whose
// Column (a time, with an index on it) is before a cutoff, identified by
// their primary key Key. The names are SQL identifiers of tokend's schema,
// set in code, never from input.
type PruneTarget struct {
	Table, Key, Column string
}

// PruneStore deletes old rows in small batches, so that pruning a large
// backlog never holds locks or scans a table for long.
type PruneStore interface {
	// PruneBatch deletes up to limit rows of t whose Column is before
	// `before`, oldest first, in one short transaction that reads them
	// through the index on Column, and returns how many it deleted.
	PruneBatch(ctx context.Context, t PruneTarget, before time.Time, limit int) (int, error)
}
