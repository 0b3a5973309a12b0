package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/store"
)

func cmdKeys(ctx context.Context, args []string, e env) error {
	verb, rest, err := subcommand("keys", args, "list", "rotate", "import", "revoke")
	if err != nil {
		return err
	}
	if verb == "help" {
		fmt.Fprintln(e.stdout, `Usage:
  tokend keys list [--json]
  tokend keys rotate [--alg RS256|EdDSA] [--rsa-bits 2048|3072|4096] [--force]
  tokend keys import --alg RS256|EdDSA --file key.pem
  tokend keys revoke KID`)
		return nil
	}
	fs := config.NewFlagSet("keys " + verb)
	alg := fs.String("alg", "", "algorithm: RS256 or EdDSA")
	bits := fs.Int("rsa-bits", 0, "size of the new RS256 next key: 2048, 3072 or 4096 (default: the current key's size)")
	force := fs.Bool("force", false, "promote a next key that has not been published for TOKEND_JWKS_MAX_AGE yet")
	file := fs.String("file", "", "PEM file holding a PKCS#8 or PKCS#1 private key")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, rest, verb == "revoke", e.stdout, "Usage: tokend keys "+verb+" [flags]"); err != nil {
		return err
	}
	if *alg != "" && *alg != keys.RS256 && *alg != keys.EdDSA {
		return usageErr("keys %s: --alg %q must be RS256 or EdDSA", verb, *alg)
	}
	var pemData []byte
	switch verb {
	case "import":
		if *alg == "" || *file == "" {
			return usageErr("keys import: --alg and --file are required")
		}
		if pemData, err = os.ReadFile(*file); err != nil {
			return &exitError{code: 1, msg: fmt.Sprintf("keys import: cannot read %s: %v", *file, errors.Unwrap(err))}
		}
	case "revoke":
		if fs.NArg() != 1 {
			return usageErr("keys revoke: give exactly one KID")
		}
	case "rotate":
		if *bits != 0 && *bits != 2048 && *bits != 3072 && *bits != 4096 {
			return usageErr("keys rotate: --rsa-bits must be 2048, 3072 or 4096")
		}
	}
	cfg, log, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "list" {
		list, err := db.SigningKeys(ctx)
		if err != nil {
			return err
		}
		return printKeys(e.stdout, list, *asJSON)
	}
	mk, err := loadMasterKey(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	m := app.NewKeyManager(cfg, db, mk, time.Now, log, "")
	// A fresh database gets its first keys here as it would at serve start.
	if err := m.Bootstrap(ctx); err != nil {
		return err
	}
	switch verb {
	case "rotate":
		algs := keys.Algs
		if *alg != "" {
			algs = []string{*alg}
		}
		for _, a := range algs {
			kid, err := m.Rotate(ctx, a, keys.RotateOptions{Force: *force, RSABits: *bits, Meta: audit.CLI})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s current key: %s\n", a, kid)
		}
		fmt.Fprintf(e.stdout, "running instances sign with it within %s\n", keys.PublishMargin)
	case "import":
		kid, err := m.Import(ctx, *alg, pemData, audit.CLI)
		if err != nil {
			return &exitError{code: 1, msg: "keys import: " + err.Error()}
		}
		fmt.Fprintf(e.stdout, "imported %s key %s as next; it signs after the next rotation\n", *alg, kid)
	case "revoke":
		kid := fs.Arg(0)
		if err := m.Revoke(ctx, kid, audit.CLI); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return &exitError{code: 1, msg: fmt.Sprintf("no signing key %s", kid)}
			}
			if errors.Is(err, store.ErrConflict) {
				return &exitError{code: 1, msg: fmt.Sprintf("key %s is already revoked or expired", kid)}
			}
			return err
		}
		fmt.Fprintf(e.stdout, "revoked %s; it left the JWKS\n", kid)
	}
	return nil
}

func printKeys(w io.Writer, list []store.SigningKey, asJSON bool) error {
	type row struct {
		KID        string     `json:"kid"`
		Alg        string     `json:"alg"`
		State      string     `json:"state"`
		Origin     string     `json:"origin"`
		Created    time.Time  `json:"created"`
		Activated  *time.Time `json:"activated,omitempty"`
		Retired    *time.Time `json:"retired,omitempty"`
		LeavesJWKS *time.Time `json:"leaves_jwks,omitempty"`
	}
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	rows := make([]row, len(list))
	for i, k := range list {
		rows[i] = row{KID: k.KID, Alg: k.Alg, State: string(k.State), Origin: k.Origin, Created: k.CreatedAt,
			Activated: opt(k.ActivatedAt), Retired: opt(k.RetiredAt), LeavesJWKS: opt(keys.LeavesJWKS(k))}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tLEAVES JWKS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.KID, r.Alg, r.State, ts(&r.Created), ts(r.Activated), ts(r.Retired), ts(r.LeavesJWKS))
	}
	return tw.Flush()
}
