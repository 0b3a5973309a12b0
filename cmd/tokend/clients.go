package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/store"
)

// clientIDPattern keeps client ids plain: they appear in tokens, logs and
// URLs.
var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func cmdClients(ctx context.Context, args []string, e env) error {
	verb, rest, err := subcommand("clients", args, "create", "list")
	if err != nil {
		return err
	}
	if verb == "help" {
		fmt.Fprintln(e.stdout, "Usage:\n  tokend clients create --id ID --kind web|native [--audience AUD]... [--alg RS256|EdDSA]\n  tokend clients list [--json]")
		return nil
	}
	fs := config.NewFlagSet("clients " + verb)
	id := fs.String("id", "", "client id")
	kind := fs.String("kind", "", "web (refresh token in a cookie) or native (refresh token in the body)")
	var auds multiFlag
	fs.Var(&auds, "audience", "aud of this client's access tokens (repeatable; default TOKEND_AUDIENCE)")
	alg := fs.String("alg", "", "signing algorithm of this client's tokens: RS256 or EdDSA (default TOKEND_SIGNING_ALG)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, rest, false, e.stdout, "Usage: tokend clients "+verb+" [flags]"); err != nil {
		return err
	}
	var c store.Client
	if verb == "create" {
		c, err = newClient(*id, *kind, auds, *alg)
		if err != nil {
			return err
		}
	}
	_, _, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	if verb == "create" {
		c.CreatedAt = time.Now()
		ev := audit.New(audit.ClientCreated, audit.Meta{Address: "cli", ClientID: c.ID}, "", c.CreatedAt,
			map[string]string{"kind": string(c.Kind)})
		if err := db.CreateClient(ctx, c, ev); err != nil {
			if errors.Is(err, store.ErrAlreadyExists) {
				return &exitError{code: 1, msg: fmt.Sprintf("a client with id %q already exists", c.ID)}
			}
			return err
		}
		fmt.Fprintf(e.stdout, "created %s client %s\n", c.Kind, c.ID)
		return nil
	}
	list, err := db.ListClients(ctx)
	if err != nil {
		return err
	}
	return printClients(e.stdout, list, *asJSON)
}

// newClient validates the flags of `clients create`.
func newClient(id, kind string, auds []string, alg string) (store.Client, error) {
	if id == "" || kind == "" {
		return store.Client{}, usageErr("clients create: --id and --kind are required")
	}
	if !clientIDPattern.MatchString(id) {
		return store.Client{}, usageErr("clients create: --id %q must be 1-64 letters, digits, '.', '_' or '-'", id)
	}
	k := store.ClientKind(kind)
	if !k.Valid() {
		return store.Client{}, usageErr("clients create: --kind %q must be web or native", kind)
	}
	if alg != "" && alg != config.AlgRS256 && alg != config.AlgEdDSA {
		return store.Client{}, usageErr("clients create: --alg %q must be RS256 or EdDSA", alg)
	}
	for _, a := range auds {
		if strings.TrimSpace(a) == "" || strings.ContainsAny(a, " \t\n") {
			return store.Client{}, usageErr("clients create: --audience %q must be a non-empty value without spaces", a)
		}
	}
	return store.Client{ID: id, Kind: k, Audience: auds, Alg: alg}, nil
}

func printClients(w io.Writer, list []store.Client, asJSON bool) error {
	if asJSON {
		type row struct {
			ID        string    `json:"id"`
			Kind      string    `json:"kind"`
			Audience  []string  `json:"audience"`
			Alg       string    `json:"alg,omitempty"`
			CreatedAt time.Time `json:"created_at"`
		}
		rows := make([]row, len(list))
		for i, c := range list {
			rows[i] = row{ID: c.ID, Kind: string(c.Kind), Audience: c.Audience, Alg: c.Alg, CreatedAt: c.CreatedAt}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tAUDIENCE\tALG\tCREATED")
	for _, c := range list {
		aud, alg := strings.Join(c.Audience, ","), c.Alg
		if aud == "" {
			aud = "(default)"
		}
		if alg == "" {
			alg = "(default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, aud, alg, c.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
