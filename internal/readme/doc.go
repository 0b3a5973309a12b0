// Package readme holds the test that keeps README.md true: it starts
// `make run` (on a temporary SQLite file and a free port) and runs every
// `sh` block of the README, in order, in one shell, failing on the first
// command that fails.
package readme
