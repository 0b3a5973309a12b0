// Package config loads tokend's settings from TOKEND_* environment variables
// and the equally named kebab-case flags of `tokend serve`, validates them, and
// reports every problem on its own line.
//
// The table of settings in settings.go is the single source of truth for
// names, defaults and help text; API.md's configuration table mirrors it.
// Config is a plain value passed down to the components that need each field:
// there is no global configuration.
package config
