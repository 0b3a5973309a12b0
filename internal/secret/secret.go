// Package secret types the values tokend must never print: passwords,
// bearer tokens, client secrets, database and SMTP URLs that may hold a
// password. A String prints "<redacted>" through every door a value leaves
// by — fmt's verbs (String, GoString and Format, so %v, %+v, %#v, %s, %q and
// %x alike, also as a field of a printed struct), log/slog (LogValue), and
// encoding/json and encoding.TextMarshaler — and Reveal is the one way to
// its text, so that each use of the value is a visible, deliberate call.
package secret

import (
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what a secret prints as.
const Redacted = "<redacted>"

// String is a secret text.
type String string

// Reveal returns the secret text, for the one place that needs it.
func (s String) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty (safe to print).
func (s String) IsZero() bool { return s == "" }

// String implements fmt.Stringer.
func (String) String() string { return Redacted }

// GoString implements fmt.GoStringer.
func (String) GoString() string { return Redacted }

// Format implements fmt.Formatter: every verb prints the redaction.
func (String) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// LogValue implements slog.LogValuer.
func (String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler.
func (String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
