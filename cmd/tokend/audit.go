package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/store"
)

func cmdAudit(ctx context.Context, args []string, e env) error {
	fs := config.NewFlagSet("audit")
	user := fs.String("user", "", "only events of the user with this email")
	typ := fs.String("type", "", "only events of this type (e.g. login.failed, refresh.reuse_detected)")
	since := fs.String("since", "", "only events since this long ago (24h) or this time (RFC 3339)")
	limit := fs.Int("limit", 100, "at most this many events")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := parseFlags(fs, args, false, e.stdout,
		"Usage: tokend audit [--user EMAIL] [--type T] [--since D] [--limit N] [--json]\n\nLists audit events, newest first."); err != nil {
		return err
	}
	if *limit < 1 || *limit > 10000 {
		return usageErr("audit: --limit must be from 1 to 10000")
	}
	now := time.Now()
	f := store.AuditFilter{Type: *typ, Limit: *limit}
	if *since != "" {
		t, err := parseSince(*since, now)
		if err != nil {
			return usageErr("audit: --since %q: %v", *since, err)
		}
		f.Since = t
	}
	_, _, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	if *user != "" {
		u, err := db.UserByEmail(ctx, *user)
		if errors.Is(err, store.ErrNotFound) {
			return &exitError{code: 1, msg: "no user with this email"}
		}
		if err != nil {
			return err
		}
		f.UserID = u.ID
	}
	evs, err := db.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	return printAudit(e.stdout, evs, *asJSON)
}

// parseSince accepts a duration back from now or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("must not be negative")
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want a duration such as 24h or an RFC 3339 time")
}

func printAudit(w io.Writer, evs []store.AuditEvent, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, ev := range evs {
			if err := enc.Encode(map[string]any{
				"id": ev.ID, "type": ev.Type, "user_id": ev.UserID, "client_id": ev.ClientID,
				"address": ev.Address, "details": ev.Details, "created_at": ev.CreatedAt,
			}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tUSER\tCLIENT\tADDRESS\tDETAILS")
	for _, ev := range evs {
		keys := make([]string, 0, len(ev.Details))
		for k := range ev.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + ev.Details[k]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.CreatedAt.Format(time.RFC3339), ev.Type,
			dash(ev.UserID), dash(ev.ClientID), dash(ev.Address), strings.Join(parts, " "))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
