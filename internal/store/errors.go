package store

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Backends wrap them with context; compare with errors.Is.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a record with the same key exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrEmailTaken means another user already has this email
	// (compared case-insensitively). It also matches ErrAlreadyExists.
	ErrEmailTaken = &takenError{what: "email"}
	// ErrConflict means a concurrent change won; the caller may retry or
	// report the conflict.
	ErrConflict = errors.New("conflicting concurrent change")
	// ErrUnavailable means the database cannot be reached right now
	// (connection refused or lost, server shutting down). Callers answer
	// 503 temporarily_unavailable and nothing was written.
	ErrUnavailable = errors.New("database unavailable")
	// ErrStale means a precondition read earlier no longer holds (the
	// user's password changed or the account was disabled since the login
	// checked it); nothing was written.
	ErrStale = errors.New("record changed since it was read")
	// ErrInvalid means the record violates a constraint the caller should
	// have checked (a programming error or a corrupt input, never a race).
	ErrInvalid = errors.New("invalid record")
)

// takenError is the typed "taken" error for unique user attributes.
type takenError struct{ what string }

func (e *takenError) Error() string { return e.what + " already taken" }

// Is makes ErrEmailTaken match ErrAlreadyExists as well.
func (e *takenError) Is(target error) bool { return target == ErrAlreadyExists }

// Storable reports whether s can be stored as text by every backend: valid
// UTF-8 without NUL (PostgreSQL refuses both in text columns). No record
// has a key that is not storable, so lookups by such a key find nothing.
func Storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
