package onetime_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/mail"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/onetime"
	"github.com/tokend/tokend/internal/store"
)

// TestIssueLookupUse: a token is looked up with its data only while it is
// live and only for its purpose; its mail carries the link; the data is
// sealed, bound to its token, and never stored in clear.
func TestIssueLookupUse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		c := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		mk := masterkey.Generate()
		svc := onetime.New(onetime.Config{Store: db, MailSealer: mk.Sealer(masterkey.PurposeMail),
			DataSealer: mk.Sealer(masterkey.PurposeOneTimeData), Now: c.Now})
		u := store.User{ID: "u1", Email: "ada@example.com", PasswordHash: "x", CreatedAt: c.Now()}
		if err := db.CreateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
		p := onetime.Purpose{Name: store.PurposeChangeEmail, URL: "https://auth.example/verify", TTL: time.Hour}
		secretData := []byte(`{"email":"new-address@example.com"}`)
		if err := svc.Issue(ctx, onetime.Issue{Purpose: p, User: u, To: "new-address@example.com", Data: secretData}); err != nil {
			t.Fatal(err)
		}
		jobs, err := db.ClaimMail(ctx, "t", c.Now(), c.Now().Add(time.Minute), 10)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("jobs %v %v", jobs, err)
		}
		payload, err := mail.Open(mk.Sealer(masterkey.PurposeMail), jobs[0].ID, jobs[0].Payload)
		if err != nil || payload.To != "new-address@example.com" || payload.Kind != "change_email" {
			t.Fatalf("payload %+v %v", payload, err)
		}
		_, token, _ := bytes.Cut([]byte(payload.Link), []byte("#token="))
		presented, ok := onetime.Parse(string(token))
		if !ok {
			t.Fatalf("link %q", payload.Link)
		}
		var row struct {
			Hash string `db:"token_hash"`
			Data []byte `db:"data"`
		}
		if err := db.Reader().GetContext(ctx, &row, `SELECT token_hash, data FROM onetime_tokens`); err != nil {
			t.Fatal(err)
		}
		stored := row.Data
		if len(stored) == 0 || bytes.Contains(stored, []byte("new-address")) {
			t.Fatalf("the data is stored in clear: %q", stored)
		}
		tok, err := svc.Lookup(ctx, presented)
		if err != nil || tok.Purpose != store.PurposeChangeEmail || tok.UserID != "u1" || !bytes.Equal(tok.Data, secretData) {
			t.Fatalf("Lookup = %+v, %v", tok, err)
		}
		// Data sealed for one token does not open under another.
		other := onetime.Issue{Purpose: onetime.Purpose{Name: store.PurposeVerifyEmail, URL: p.URL, TTL: time.Hour}, User: u}
		if err := svc.Issue(ctx, other); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Writer().ExecContext(ctx, db.Writer().Rebind(`UPDATE onetime_tokens SET data = ? WHERE token_hash <> ?`),
			row.Data, row.Hash); err != nil {
			t.Fatal(err)
		}
		jobs, _ = db.ClaimMail(ctx, "t", c.Now(), c.Now().Add(time.Minute), 10)
		op, _ := mail.Open(mk.Sealer(masterkey.PurposeMail), jobs[0].ID, jobs[0].Payload)
		_, otherToken, _ := bytes.Cut([]byte(op.Link), []byte("#token="))
		otherPresented, _ := onetime.Parse(string(otherToken))
		if _, err := svc.Lookup(ctx, otherPresented); err == nil || errors.Is(err, onetime.ErrInvalid) {
			t.Fatalf("data moved to another token opened, or looked like a bad token: %v", err)
		}

		// The wrong purpose is invalid and leaves the token usable.
		if _, err := svc.Use(ctx, presented, store.OneTimeUse{Purpose: store.PurposeVerifyEmail, VerifyEmail: true}); !errors.Is(err, onetime.ErrInvalid) {
			t.Fatalf("use for another purpose: %v", err)
		}
		c.Advance(time.Hour)
		if _, err := svc.Lookup(ctx, presented); !errors.Is(err, onetime.ErrInvalid) {
			t.Fatalf("an expired token looked up: %v", err)
		}
		if _, err := svc.Use(ctx, presented, store.OneTimeUse{Purpose: store.PurposeChangeEmail, NewEmail: "new-address@example.com"}); !errors.Is(err, onetime.ErrInvalid) {
			t.Fatalf("an expired token used: %v", err)
		}
		if _, ok := onetime.Parse("short"); ok {
			t.Fatal("a malformed token parsed")
		}
		if _, err := svc.Lookup(ctx, onetime.Presented{}); !errors.Is(err, onetime.ErrInvalid) {
			t.Fatal("the zero Presented looked up")
		}
	})
}
