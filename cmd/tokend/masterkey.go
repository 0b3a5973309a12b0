package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
)

const masterkeyUsage = `Usage:
  tokend masterkey rotate          re-seal under TOKEND_MASTER_KEY what TOKEND_MASTER_KEY_PREVIOUS sealed
  tokend masterkey status          count the sealed values under each key
  tokend masterkey drop-previous   check that nothing needs TOKEND_MASTER_KEY_PREVIOUS any more

Run them with the new key in TOKEND_MASTER_KEY[_FILE] and the old one in
TOKEND_MASTER_KEY_PREVIOUS[_FILE]; the README's Operations section has the
procedure for several instances.`

// kindNames are the sealed kinds as the commands print them.
var kindNames = map[store.SealedKind]string{
	store.SealedSigningKey: "signing keys",
	store.SealedMail:       "queued mails",
	store.SealedTOTP:       "TOTP secrets",
	store.SealedOneTime:    "one-time token data",
	store.SealedDataKey:    "data keys",
	store.SealedCheck:      "key check",
}

func cmdMasterkey(ctx context.Context, args []string, e env) error {
	verb, rest, err := subcommand("masterkey", args, "rotate", "status", "drop-previous")
	if err != nil {
		return err
	}
	if verb == "help" {
		fmt.Fprintln(e.stdout, masterkeyUsage)
		return nil
	}
	fs := config.NewFlagSet("masterkey " + verb)
	if err := parseFlags(fs, rest, false, e.stdout, "Usage: tokend masterkey "+verb); err != nil {
		return err
	}
	cfg, log, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	ring, err := loadKeyring(cfg, log)
	if err != nil {
		return err
	}
	switch verb {
	case "rotate":
		counts, err := ring.Rotate(ctx, db, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "re-sealed %d values under TOKEND_MASTER_KEY (%s)\n", masterkey.Total(counts), summary(counts))
		fmt.Fprintln(e.stdout, "instances must now run with TOKEND_MASTER_KEY set to the new key and TOKEND_MASTER_KEY_PREVIOUS to the old one; "+
			"then run 'tokend masterkey rotate' again and 'tokend masterkey drop-previous'")
		return nil
	case "status":
		st, err := ring.Status(ctx, db)
		if err != nil {
			return err
		}
		return printStatus(e.stdout, st)
	}
	// drop-previous
	st, err := ring.Status(ctx, db)
	if err != nil {
		return err
	}
	if n := masterkey.Total(st.Previous); n > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("masterkey drop-previous: %d values are still sealed under TOKEND_MASTER_KEY_PREVIOUS (%s): "+
			"keep it, make sure every instance runs with the new TOKEND_MASTER_KEY, and run 'tokend masterkey rotate'", n, summary(st.Previous))}
	}
	if n := masterkey.Total(st.Unreadable); n > 0 {
		msg := fmt.Sprintf("masterkey drop-previous: %d values open with neither key (%s)", n, summary(st.Unreadable))
		if ring.Previous == nil {
			msg += ": set TOKEND_MASTER_KEY_PREVIOUS to the old key and run 'tokend masterkey rotate'"
		}
		return &exitError{code: 1, msg: msg}
	}
	fmt.Fprintf(e.stdout, "all %d sealed values are under TOKEND_MASTER_KEY: you can remove TOKEND_MASTER_KEY_PREVIOUS from every instance's configuration\n",
		masterkey.Total(st.Current))
	return nil
}

// summary lists non-zero counts by kind: "signing keys: 4, queued mails: 1".
func summary(counts map[store.SealedKind]int) string {
	var parts []string
	for _, k := range masterkey.SealedKinds {
		if n := counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", kindNames[k], n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func printStatus(w io.Writer, st masterkey.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tCURRENT\tPREVIOUS\tNEITHER")
	for _, k := range masterkey.SealedKinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", kindNames[k], st.Current[k], st.Previous[k], st.Unreadable[k])
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\n", masterkey.Total(st.Current), masterkey.Total(st.Previous), masterkey.Total(st.Unreadable))
	return tw.Flush()
}
