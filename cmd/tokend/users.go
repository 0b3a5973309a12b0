package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/factors"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/users"
)

func cmdUsers(ctx context.Context, args []string, e env) error {
	verb, rest, err := subcommand("users", args, "create", "list", "disable", "reset-factors")
	if err != nil {
		return err
	}
	fs := config.NewFlagSet("users " + verb)
	email := fs.String("email", "", "the user's email")
	stdinPw := fs.Bool("password-stdin", false, "read the password from standard input (one trailing newline is dropped)")
	verified := fs.Bool("verified", false, "mark the email address as verified (the operator vouches for it)")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 1000, "list at most this many users")
	if verb == "help" {
		fmt.Fprintln(e.stdout, "Usage:\n  tokend users create --email E --password-stdin [--verified]\n  tokend users list [--json] [--limit N]\n"+
			"  tokend users disable --email E\n  tokend users reset-factors --email E")
		return nil
	}
	if err := parseFlags(fs, rest, false, e.stdout, "Usage: tokend users "+verb+" [flags]"); err != nil {
		return err
	}
	switch verb {
	case "create":
		if *email == "" {
			return usageErr("users create: --email is required")
		}
		if !*stdinPw {
			return usageErr("users create: --password-stdin is required (passwords are never taken as arguments)")
		}
	case "disable", "reset-factors":
		if *email == "" {
			return usageErr("users %s: --email is required", verb)
		}
	}
	cfg, log, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()

	switch verb {
	case "create":
		pw, err := readPassword(e.stdin)
		if err != nil {
			return err
		}
		svc, _, err := newUsers(ctx, cfg, db, time.Now, log)
		if err != nil {
			return err
		}
		create := svc.Create
		if *verified {
			create = svc.CreateVerified
		}
		u, err := create(ctx, *email, pw, audit.CLI)
		if err != nil {
			return userError(err)
		}
		note := " (email not verified)"
		if u.EmailVerified() {
			note = " (email verified)"
		}
		fmt.Fprintf(e.stdout, "created user %s %s%s\n", u.ID, displayText(u.Email), note)
		return nil
	case "disable":
		// Disabling needs no hashing; the service is built for its audit.
		svc, _, err := newUsers(ctx, cfg, db, time.Now, log)
		if err != nil {
			return err
		}
		u, err := svc.Disable(ctx, *email, audit.CLI)
		if err != nil {
			return userError(err)
		}
		fmt.Fprintf(e.stdout, "disabled user %s %s; their sessions are revoked\n", u.ID, displayText(u.Email))
		return nil
	case "reset-factors":
		u, err := db.UserByEmail(ctx, *email)
		if err != nil {
			return userError(err)
		}
		n, err := factors.New(factors.Config{Store: db}).Reset(ctx, u.ID, audit.CLI)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed %d second factor(s) and the recovery codes of user %s %s; they sign in with their password alone until they set one up again\n",
			n, u.ID, displayText(u.Email))
		return nil
	}
	list, err := db.ListUsers(ctx, store.ListOptions{Limit: *limit})
	if err != nil {
		return err
	}
	return printUsers(e.stdout, list, *asJSON)
}

// readPassword reads the password from stdin; one trailing newline (LF or
// CRLF) is not part of it.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, users.MaxPasswordLen+3))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	return s, nil
}

// userError turns domain errors into one clear line.
func userError(err error) error {
	var ve *users.ValidationError
	switch {
	case errors.As(err, &ve):
		return &exitError{code: 1, msg: "invalid " + ve.Error()}
	case errors.Is(err, store.ErrEmailTaken):
		return &exitError{code: 1, msg: "a user with this email already exists"}
	case errors.Is(err, store.ErrNotFound):
		return &exitError{code: 1, msg: "no user with this email"}
	}
	return err
}

type userJSON struct {
	ID              string     `json:"id"`
	Email           string     `json:"email"`
	EmailVerified   bool       `json:"email_verified"`
	EmailVerifiedAt *time.Time `json:"email_verified_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	DisabledAt      *time.Time `json:"disabled_at,omitempty"`
	HashAlg         string     `json:"hash_alg"`
}

// printUsers prints the users as a table or as JSON, with every character
// a terminal would not show as itself escaped (see displayText and
// escapeJSON): an email is whatever the store holds.
func printUsers(w io.Writer, list []store.User, asJSON bool) error {
	rows := make([]userJSON, len(list))
	for i, u := range list {
		rows[i] = userJSON{ID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified(), CreatedAt: u.CreatedAt, HashAlg: hashAlg(u.PasswordHash)}
		if u.EmailVerified() {
			v := u.EmailVerifiedAt
			rows[i].EmailVerifiedAt = &v
		}
		if u.Disabled() {
			d := u.DisabledAt
			rows[i].DisabledAt = &d
		}
	}
	if asJSON {
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return fmt.Errorf("encode users: %w", err)
		}
		_, err = w.Write(append(escapeJSON(b), '\n'))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tVERIFIED\tCREATED\tSTATUS\tHASH")
	for _, r := range rows {
		status := "active"
		if r.DisabledAt != nil {
			status = "disabled " + r.DisabledAt.Format(time.RFC3339)
		}
		verified := "no"
		if r.EmailVerified {
			verified = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", displayText(r.ID), displayText(r.Email), verified, r.CreatedAt.Format(time.RFC3339),
			status, r.HashAlg)
	}
	return tw.Flush()
}

// hashAlg names a stored hash's algorithm without showing it.
func hashAlg(h string) string {
	switch {
	case strings.HasPrefix(h, "$argon2id$"):
		return "argon2id"
	case strings.HasPrefix(h, "$2"):
		return "bcrypt"
	}
	return "unknown"
}
