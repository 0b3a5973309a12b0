package main

import (
	"context"
	"fmt"

	"github.com/tokend/tokend/internal/config"
)

func cmdMigrate(ctx context.Context, args []string, e env) error {
	fs := config.NewFlagSet("migrate")
	if err := parseFlags(fs, args, false, e.stdout, "Usage: tokend migrate\n\nApplies pending schema migrations to TOKEND_DATABASE_URL."); err != nil {
		return err
	}
	_, _, db, err := openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	cur, latest, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s schema at version %d (latest %d)\n", db.Dialect(), cur, latest)
	return nil
}
