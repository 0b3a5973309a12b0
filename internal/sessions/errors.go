package sessions

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; the HTTP layer maps them to OAuth errors.
var (
	// ErrInvalidScope: a scope tokend does not know, or more than granted.
	ErrInvalidScope = errors.New("invalid scope")
	// ErrNotFound: no such session of this user.
	ErrNotFound = errors.New("session not found")
)

// GrantError is an invalid_grant with the reason for the logs (the client
// always sees the same generic description).
type GrantError struct{ Reason string }

func (e *GrantError) Error() string { return "invalid grant: " + e.Reason }

func grantErr(format string, args ...any) error {
	return &GrantError{Reason: fmt.Sprintf(format, args...)}
}

// ThrottledError refuses a login while its account or address is locked.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins; retry after %s", e.RetryAfter)
}
