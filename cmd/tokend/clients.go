package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

const clientsUsage = `Usage:
  tokend clients create --id ID --kind web|native|server [--redirect-uri URI]... [--post-logout-redirect-uri URI]...
                        [--grant G]... [--scope S]... [--audience AUD]... [--alg RS256|EdDSA] [--jwks-file F] [--json]
  tokend clients list [--json]
  tokend clients secret rotate --id ID [--grace 24h] [--json]
  tokend clients delete --id ID`

// DefaultSecretGrace is how long a rotated client secret keeps working: a
// day, for a deployment to roll out the new one.
const DefaultSecretGrace = 24 * time.Hour

func cmdClients(ctx context.Context, args []string, e env) error {
	verb, rest, err := subcommand("clients", args, "create", "list", "delete", "secret")
	if err != nil {
		return err
	}
	if verb == "secret" {
		sub, more, err := subcommand("clients secret", rest, "rotate")
		if err != nil {
			return err
		}
		if sub == "help" {
			fmt.Fprintln(e.stdout, clientsUsage)
			return nil
		}
		return cmdClientSecretRotate(ctx, more, e)
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
	kind, jwksFile := "", ""
	if verb == "create" {
		fs.StringVar(&kind, "kind", "", "web (cookie flow on tokend's site), native (public app) or server (confidential)")
		fs.Var(&redirects, "redirect-uri", "a redirect URI of the authorization code flow (repeatable)")
		fs.Var(&postLogout, "post-logout-redirect-uri", "where RP-initiated logout may send the browser (repeatable)")
		fs.Var(&grants, "grant", "a grant type the client may use (repeatable; default: the kind's)")
		fs.Var(&scopes, "scope", "a scope the client may be granted (repeatable; default: openid profile email)")
		fs.Var(&auds, "audience", "aud of this client's access tokens (repeatable; default TOKEND_AUDIENCE)")
		fs.StringVar(&spec.Alg, "alg", "", "signing algorithm of this client's tokens: RS256 or EdDSA (default TOKEND_SIGNING_ALG)")
		fs.StringVar(&jwksFile, "jwks-file", "", "a server client's public keys (a JWK Set) for private_key_jwt, instead of a secret")
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
		if jwksFile != "" {
			b, err := os.ReadFile(jwksFile)
			if err != nil {
				return usageErr("clients create: --jwks-file: %v", unwrapPathErr(err))
			}
			spec.JWKS = b
		}
		// Validate before touching the database: a usage mistake exits 2.
		if _, err := clients.Build(spec, time.Now()); err != nil {
			return usageErr("clients create: %v", err)
		}
	}
	svc, closeDB, err := openClients(ctx, e, spec.Kind == store.ClientServer)
	if err != nil {
		return err
	}
	defer closeDB()
	switch verb {
	case "create":
		c, sec, err := svc.Create(ctx, spec, time.Now(), func(c clients.Client) *store.AuditEvent {
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
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret,omitempty"`
			}{c.ID, sec.Reveal()})
		}
		fmt.Fprintf(e.stdout, "created %s client %s (grants: %s)\n", c.Kind, c.ID, strings.Join(c.Grants, ", "))
		if sec != "" {
			fmt.Fprintf(e.stdout, "client secret (shown once; tokend keeps only a hash): %s\n", sec.Reveal())
		}
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

// openClients opens the store and returns the clients service. Client
// secrets are hashed under a data key sealed by the master key, so commands
// that make one (withSecrets) load it.
func openClients(ctx context.Context, e env, withSecrets bool) (*clients.Service, func(), error) {
	cfg, log, db, err := openAdmin(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	if !withSecrets {
		return clients.New(db, clients.Hasher{}), func() { db.Close() }, nil
	}
	ring, err := loadMasterKey(ctx, cfg, db, log)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	dk, err := ring.LoadDataKeys(ctx, db, time.Now())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return clients.New(db, clients.NewHasher(dk.MustCurrent(masterkey.PurposeClientSecrets))), func() { db.Close() }, nil
}

// cmdClientSecretRotate: tokend clients secret rotate --id ID [--grace D].
func cmdClientSecretRotate(ctx context.Context, args []string, e env) error {
	fs := config.NewFlagSet("clients secret rotate")
	id := fs.String("id", "", "client id")
	grace := fs.Duration("grace", DefaultSecretGrace, "how long the current secret keeps working (0 ends it now)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, false, e.stdout, "Usage: tokend clients secret rotate --id ID [--grace 24h] [--json]"); err != nil {
		return err
	}
	if *id == "" {
		return usageErr("clients secret rotate: --id is required")
	}
	if *grace < 0 || *grace > 30*24*time.Hour {
		return usageErr("clients secret rotate: --grace must be from 0 to 720h")
	}
	svc, closeDB, err := openClients(ctx, e, true)
	if err != nil {
		return err
	}
	defer closeDB()
	now := time.Now()
	sec, err := svc.RotateSecret(ctx, *id, *grace, now, audit.New(audit.ClientSecretRotated, audit.Meta{Address: "cli", ClientID: *id}, "",
		now, map[string]string{"grace": grace.String()}))
	switch {
	case errors.Is(err, clients.ErrNotFound):
		return &exitError{code: 1, msg: fmt.Sprintf("no client with id %q", *id)}
	case errors.Is(err, clients.ErrNoSecret):
		return &exitError{code: 1, msg: fmt.Sprintf("client %q has no secret (a public client, or one with keys)", *id)}
	case err != nil:
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, struct {
			ClientID     string    `json:"client_id"`
			ClientSecret string    `json:"client_secret"`
			OldUntil     time.Time `json:"previous_secret_expires_at"`
		}{*id, sec.Reveal(), now.Add(*grace).UTC()})
	}
	fmt.Fprintf(e.stdout, "new client secret for %s (shown once): %s\nthe previous secret works until %s\n", *id, sec.Reveal(),
		now.Add(*grace).UTC().Format(time.RFC3339))
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
