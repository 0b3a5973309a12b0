package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/config"
)

func cmdPrune(ctx context.Context, args []string, e env) error {
	fs := config.NewFlagSet("prune")
	if err := parseFlags(fs, args, false, e.stdout,
		"Usage: tokend prune\n\nRuns one pruning pass now: deletes expired and revoked sessions, spent tokens and\n"+
			"challenges, dead mail, idle counters and audit events older than TOKEND_AUDIT_RETENTION,\n"+
			"in batches, and prints the rows deleted per kind."); err != nil {
		return err
	}
	cfg, log, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := app.NewPruner(cfg, db, time.Now, log, "", nil)
	if err != nil {
		return err
	}
	res, err := r.Pass(ctx)
	if err != nil {
		return err
	}
	if !res.Ran {
		return &exitError{code: 1, msg: "another instance is pruning now; try again when it is done"}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tROWS\tBATCHES\tLONGEST BATCH\tSMALLEST SIZE")
	for _, k := range res.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", k.Kind, k.Rows, k.Batches, k.Longest.Round(time.Microsecond), k.Smallest)
	}
	fmt.Fprintf(tw, "total\t%d\t\t%s\n", res.Rows(), res.Longest.Round(time.Microsecond))
	return tw.Flush()
}
