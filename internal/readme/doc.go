// Package readme holds the test that keeps README.md true: it builds what
// the README and `make run` compile, starts `make run` (on a temporary
// SQLite file and a free port), and runs every `sh` block of the README, in
// order, in one shell, each block as its own bounded step, failing on the
// first command that fails and naming its block.
package readme
