package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `tokend-load drives tokend with load and reports throughput and latency.

Usage:
  tokend-load run --target URL --scenario S --workers N --duration D [flags]
  tokend-load suite [--quick] [--postgres URL] [--tokend bin/tokend] [--runs 3] [--duration 10s] [flags]
  tokend-load serve-baseline --listen ADDR [--size BYTES | --sign]
  tokend-load scale --postgres URL [--sessions 1000000] [--days 90] [--tokend bin/tokend] [flags]
  tokend-load prune-backlog --postgres URL [--families 2000000] [--tokend bin/tokend]

Scenarios: jwks, login-web, login-native, refresh-cookie, refresh-token, mixed, reuse,
code-exchange, baseline-http, baseline-db. "tokend-load <mode> -h" lists a mode's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "suite":
		err = cmdSuite(ctx, args[1:], stdout, stderr)
	case "serve-baseline":
		err = cmdServeBaseline(ctx, args[1:], stderr)
	case "scale":
		err = cmdScale(ctx, args[1:], stdout, stderr)
	case "prune-backlog":
		err = cmdPruneBacklog(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tokend-load: unknown mode %q (run, suite, serve-baseline, scale or prune-backlog)\n", args[0])
		return 2
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "tokend-load: "+ue.msg)
		return 2
	default:
		fmt.Fprintln(stderr, "tokend-load: "+err.Error())
		return 1
	}
}

// newFlagSet returns a flag set that reports mistakes as usage errors.
func newFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tokend-load "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func cmdServeBaseline(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve-baseline", stderr)
	listen := fs.String("listen", "127.0.0.1:8099", "address to serve on")
	size := fs.Int("size", 1230, "size of the body in bytes (the JWKS's size)")
	sign := fs.Bool("sign", false, "answer POST /oauth/token with a freshly signed EdDSA access token instead (the client-credentials floor)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *size < 0 {
		return &usageError{"serve-baseline: --size must not be negative"}
	}
	return serveBaseline(ctx, *listen, *size, *sign)
}
