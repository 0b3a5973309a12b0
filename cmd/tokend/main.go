// Command tokend is the token issuer: `tokend serve` runs the HTTP API, and
// the other subcommands administer the same database (migrate, users,
// clients, keys, audit, prune). main only wires packages together and turns errors
// into exit codes: 0 success, 1 failure, 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tokend/tokend/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// env is the program's outside world, replaced by tests.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// exitError carries an exit code with its one-line message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

const usageText = `tokend issues short-lived access tokens and rotating refresh tokens.

Usage:
  tokend serve [flags]          run the HTTP API (flags mirror the TOKEND_* variables)
  tokend migrate                apply database migrations
  tokend users create --email E --password-stdin
  tokend users list [--json]
  tokend users disable --email E
  tokend clients create --id ID --kind web|native [--audience AUD]... [--alg RS256|EdDSA]
  tokend clients list [--json]
  tokend keys list [--json]
  tokend keys rotate [--alg RS256|EdDSA] [--rsa-bits 2048|3072|4096] [--force]
  tokend keys import --alg RS256|EdDSA --file key.pem
  tokend keys revoke KID
  tokend masterkey rotate|status|drop-previous
  tokend audit [--user EMAIL] [--type T] [--since D] [--limit N] [--json]
  tokend prune                  delete expired and revoked data now (one pass, in batches)
  tokend version
  tokend help

Every command reads the TOKEND_* environment variables; run 'tokend <command> -h'
for a command's flags. Configuration:
`

func run(ctx context.Context, args []string, e env) int {
	err := dispatch(ctx, args, e)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *exitError
	var ue *config.UsageError
	var probs config.Problems
	switch {
	case errors.As(err, &ee):
		fmt.Fprintln(e.stderr, "tokend: "+oneLine(ee.msg))
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintln(e.stderr, "tokend: "+oneLine(ue.Msg))
		return 2
	case errors.As(err, &probs):
		for _, p := range probs {
			fmt.Fprintln(e.stderr, "tokend: config: "+oneLine(p))
		}
		return 1
	}
	fmt.Fprintln(e.stderr, "tokend: "+oneLine(err.Error()))
	return 1
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func dispatch(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		printUsage(e.stderr)
		return usageErr("no command given (try 'tokend help')")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, e)
	case "migrate":
		return cmdMigrate(ctx, rest, e)
	case "users":
		return cmdUsers(ctx, rest, e)
	case "clients":
		return cmdClients(ctx, rest, e)
	case "masterkey":
		return cmdMasterkey(ctx, rest, e)
	case "keys":
		return cmdKeys(ctx, rest, e)
	case "audit":
		return cmdAudit(ctx, rest, e)
	case "prune":
		return cmdPrune(ctx, rest, e)
	case "version", "--version", "-version":
		fmt.Fprintf(e.stdout, "tokend %s\n", version)
		return nil
	case "help", "-h", "--help", "-help":
		printUsage(e.stdout)
		return nil
	}
	return usageErr("unknown command %q (try 'tokend help')", cmd)
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usageText)
	config.Usage(w)
}

// parseFlags parses a subcommand's flags, turning syntax errors into usage
// errors and rejecting stray arguments unless allowArgs. -h prints usage and
// the flags to help.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool, help io.Writer, usage string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			config.PrintHelp(fs, help, usage)
			return err
		}
		return usageErr("%s: %v", fs.Name(), err)
	}
	if !allowArgs && fs.NArg() > 0 {
		return usageErr("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// subcommand splits "users create …" into the verb and its arguments.
func subcommand(group string, args []string, verbs ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, usageErr("%s: missing subcommand (%s)", group, strings.Join(verbs, ", "))
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return "help", nil, nil
	}
	for _, v := range verbs {
		if args[0] == v {
			return v, args[1:], nil
		}
	}
	return "", nil, usageErr("%s: unknown subcommand %q (%s)", group, args[0], strings.Join(verbs, ", "))
}
