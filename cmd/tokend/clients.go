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
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/store"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

const clientsUsage = `Usage:
  tokend clients create --id ID --kind web|native|server [--redirect-uri URI]... [--post-logout-redirect-uri URI]...
                        [--grant G]... [--scope S]... [--audience AUD]... [--alg RS256|EdDSA] [--json]
  tokend clients list [--json]
  tokend clients delete --id ID`

func cmdClients(ctx context.Context, args []string, e env) error {
	verb, rest, err := subcommand("clients", args, "create", "list", "delete")
	if err != nil {
		return err
	}
	if verb == "help" {
		fmt.Fprintln(e.stdout, clientsUsage)
		return nil
	}
	fs := config.NewFlagSet("clients " + verb)
	id := fs.String("id", "", "client id")
	asJSON := fs.Bool("json", false, "print JSON")
	var spec clients.Spec
	var redirects, postLogout, grants, scopes, auds multiFlag
	kind := ""
	if verb == "create" {
		fs.StringVar(&kind, "kind", "", "web (cookie flow on tokend's site), native (public app) or server (confidential)")
		fs.Var(&redirects, "redirect-uri", "a redirect URI of the authorization code flow (repeatable)")
		fs.Var(&postLogout, "post-logout-redirect-uri", "where RP-initiated logout may send the browser (repeatable)")
		fs.Var(&grants, "grant", "a grant type the client may use (repeatable; default: the kind's)")
		fs.Var(&scopes, "scope", "a scope the client may be granted (repeatable; default: openid profile email)")
		fs.Var(&auds, "audience", "aud of this client's access tokens (repeatable; default TOKEND_AUDIENCE)")
		fs.StringVar(&spec.Alg, "alg", "", "signing algorithm of this client's tokens: RS256 or EdDSA (default TOKEND_SIGNING_ALG)")
	}
	if err := parseFlags(fs, rest, false, e.stdout, "Usage: tokend clients "+verb+" [flags]"); err != nil {
		return err
	}
	if verb != "list" && *id == "" {
		return usageErr("clients %s: --id is required", verb)
	}
	if verb == "create" {
		if kind == "" {
			return usageErr("clients create: --kind is required (web, native or server)")
		}
		spec.ID, spec.Kind = *id, store.ClientKind(kind)
		spec.RedirectURIs, spec.PostLogoutRedirectURIs, spec.Grants, spec.Scopes, spec.Audience = redirects, postLogout, grants, scopes, auds
		// Validate before touching the database: a usage mistake exits 2.
		if _, err := clients.Build(spec, time.Now()); err != nil {
			return usageErr("clients create: %v", err)
		}
	}
	_, _, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := clients.New(db)
	switch verb {
	case "create":
		c, err := svc.Create(ctx, spec, time.Now(), func(c clients.Client) *store.AuditEvent {
			return audit.New(audit.ClientCreated, audit.Meta{Address: "cli", ClientID: c.ID}, "", c.CreatedAt,
				map[string]string{"kind": string(c.Kind), "grants": strings.Join(c.Grants, " ")})
		})
		if errors.Is(err, store.ErrAlreadyExists) {
			return &exitError{code: 1, msg: fmt.Sprintf("a client with id %q already exists", spec.ID)}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, struct {
				ClientID string `json:"client_id"`
			}{c.ID})
		}
		fmt.Fprintf(e.stdout, "created %s client %s (grants: %s)\n", c.Kind, c.ID, strings.Join(c.Grants, ", "))
		return nil
	case "delete":
		now := time.Now()
		err := svc.Delete(ctx, *id, now, audit.New(audit.ClientDeleted, audit.Meta{Address: "cli", ClientID: *id}, "", now, nil))
		if errors.Is(err, clients.ErrNotFound) {
			return &exitError{code: 1, msg: fmt.Sprintf("no client with id %q", *id)}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted client %s; its sessions are revoked\n", *id)
		return nil
	}
	list, err := svc.List(ctx)
	if err != nil {
		return err
	}
	return printClients(e.stdout, list, *asJSON)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printClients(w io.Writer, list []store.Client, asJSON bool) error {
	if asJSON {
		type row struct {
			ID                     string    `json:"id"`
			Kind                   string    `json:"kind"`
			RedirectURIs           []string  `json:"redirect_uris"`
			PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris"`
			Grants                 []string  `json:"grants"`
			Scopes                 []string  `json:"scopes"`
			Audience               []string  `json:"audience"`
			Alg                    string    `json:"alg,omitempty"`
			CreatedAt              time.Time `json:"created_at"`
		}
		rows := make([]row, len(list))
		for i, c := range list {
			rows[i] = row{ID: c.ID, Kind: string(c.Kind), RedirectURIs: orEmpty(c.RedirectURIs), PostLogoutRedirectURIs: orEmpty(c.PostLogoutRedirectURIs),
				Grants: orEmpty(c.Grants), Scopes: orEmpty(c.Scopes), Audience: orEmpty(c.Audience), Alg: c.Alg, CreatedAt: c.CreatedAt}
		}
		return printJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tGRANTS\tREDIRECT URIS\tSCOPES\tAUDIENCE\tALG\tCREATED")
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, joinOr(c.Grants, "-"), joinOr(c.RedirectURIs, "-"),
			joinOr(c.Scopes, "-"), joinOr(c.Audience, "(default)"), orDefault(c.Alg), c.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func joinOr(l []string, none string) string {
	if len(l) == 0 {
		return none
	}
	return strings.Join(l, ",")
}

func orDefault(s string) string {
	if s == "" {
		return "(default)"
	}
	return s
}
