// Package httpapi is tokend's HTTP surface: the gorilla/mux router, the
// handlers of every endpoint in API.md, the middleware every request passes
// through, and the one place where domain errors become OAuth error bodies
// ({"error", "error_description"}, RFC 6749 §5.2).
//
// Handlers return an error instead of writing one; the adapter in errors.go
// maps it to a status and code. Anything it does not recognise is a 500
// server_error whose detail goes to the log only. Domain packages never see
// HTTP; this package declares the narrow interfaces it needs from them.
package httpapi
