// Package audit names tokend's audit events and builds them from the request
// metadata every audited action carries. Events are written by the store in
// the same transaction as the change they describe; their details never hold
// a secret.
package audit

import (
	"time"

	"github.com/tokend/tokend/internal/store"
)

// Event types.
const (
	UserCreated            = "user.created"
	UserDisabled           = "user.disabled"
	ClientCreated          = "client.created"
	LoginSucceeded         = "login.succeeded"
	LoginFailed            = "login.failed"
	LoginThrottled         = "login.throttled"
	PasswordUpgraded       = "password.rehashed"
	RefreshReuseDetected   = "refresh.reuse_detected"
	Logout                 = "session.logout"
	SessionRevoked         = "session.revoked"
	TokenRevoked           = "token.revoked"
	PasswordResetRequested = "password_reset.requested"
	PasswordResetCompleted = "password_reset.completed"
	// SignupAddressTaken: a sign-up for an address that has an account
	// (its owner was mailed instead).
	SignupAddressTaken         = "signup.address_taken"
	EmailVerificationRequested = "email.verification_requested"
	EmailVerified              = "email.verified"
	EmailChangeRequested       = "email.change_requested"
	EmailChanged               = "email.changed"
	KeyGenerated               = "key.generated"
	KeyRotated                 = "key.rotated"
	KeyImported                = "key.imported"
	KeyRevoked                 = "key.revoked"
	ClientDeleted              = "client.deleted"
	ClientSecretRotated        = "client.secret_rotated"
	CodeReplayed               = "authorization_code.replayed"
	SignInStarted              = "signin.started"
	SignInEnded                = "signin.ended"
	FactorAdded                = "factor.added"
	FactorRemoved              = "factor.removed"
	FactorsReset               = "factors.reset"
	FactorFailed               = "factor.failed"
	RecoveryCodeUsed           = "recovery_code.used"
	RecoveryCodesRenewed       = "recovery_codes.renewed"
	SignInSteppedUp            = "signin.stepped_up"
	// FactorCloned: a passkey's signature counter did not move forward (a
	// cloned authenticator); the assertion was refused.
	FactorCloned = "factor.clone_detected"

	// MasterKeyRotated: `tokend masterkey rotate` re-sealed what the
	// previous master key had sealed (details: counts per kind).
	MasterKeyRotated = "masterkey.rotated"
)

// Meta is who caused an event: the client application and the network
// address of the request (empty for CLI actions, which record "cli").
type Meta struct {
	ClientID  string
	Address   string
	UserAgent string
	// Device is the browser's device cookie ("" when it sent none): it
	// names the browser to the brute-force limits (throttle.LoginRules) and
	// is never written to the audit log.
	Device string
}

// CLI is the metadata of operator commands.
var CLI = Meta{Address: "cli"}

// New returns an event of type typ for userID at `at`. details must not hold
// secrets.
func New(typ string, m Meta, userID string, at time.Time, details map[string]string) *store.AuditEvent {
	return &store.AuditEvent{Type: typ, UserID: userID, ClientID: m.ClientID, Address: m.Address,
		Details: details, CreatedAt: at}
}
