package users_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/password"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/users"
)

func TestValidateEmail(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{"  Alice@Example.com\n", "Alice@Example.com", true},
		{"a.b+tag@sub.example.org", "a.b+tag@sub.example.org", true},
		{"", "", false},
		{"alice", "", false},
		{"alice@", "", false},
		{"@example.com", "", false},
		{"Alice <alice@example.com>", "", false},
		{"alice@example.com, bob@example.com", "", false},
		{"al ice@example.com", "", false},
		{"alice@[127.0.0.1]", "", false},
		{"alice\x00@example.com", "", false},
		{strings.Repeat("a", 250) + "@example.com", "", false},
		// Stored in NFC: "Å" decomposed becomes the composed code point.
		{"A\u030asa@example.com", "\u00c5sa@example.com", true},
		{"\u00c5sa@example.com", "\u00c5sa@example.com", true},
		// Control and format characters (Cc, Cf) look like nothing.
		{"ali\u200bce@example.com", "", false}, // zero-width space
		{"alice\u202e@example.com", "", false}, // right-to-left override
		{"alice@exa\u2066mple.com", "", false}, // left-to-right isolate
		{"\ufeffalice@example.com", "", false}, // byte order mark
		{"ali\u00adce@example.com", "", false}, // soft hyphen
		{"alice\u0085@example.com", "", false}, // next line (Cc)
		{"alice@example.com\U000e0041", "", false},
		{"ali\xffce@example.com", "", false},
	}
	for _, tc := range tests {
		got, err := users.ValidateEmail(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ValidateEmail(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		var ve *users.ValidationError
		if err != nil && !errors.As(err, &ve) {
			t.Errorf("ValidateEmail(%q) error %T is not a ValidationError", tc.in, err)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {7, false}, {8, true}, {1024, true}, {1025, false}} {
		err := users.ValidatePassword(strings.Repeat("p", tc.n))
		if (err == nil) != tc.ok {
			t.Errorf("ValidatePassword(len %d) = %v, want ok=%v", tc.n, err, tc.ok)
		}
	}
}

func newService(t *testing.T, s users.Store, c *clock.Fake) (*users.Service, *password.Hasher) {
	t.Helper()
	h, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := users.New(context.Background(), s, h, c.Now, dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc, h
}

func TestService(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		c := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		svc, _ := newService(t, db, c)

		u, err := svc.Create(ctx, " Alice@Example.com ", "correct horse", audit.CLI)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "Alice@Example.com" || !strings.HasPrefix(u.PasswordHash, "$argon2id$") || u.EmailVerified() {
			t.Fatalf("created %+v", u)
		}
		if stored, _ := db.UserByID(ctx, u.ID); stored.EmailVerified() {
			t.Fatal("Create stored a verified address")
		}
		v, err := svc.CreateVerified(ctx, "vouched@example.com", "correct horse", audit.CLI)
		if err != nil {
			t.Fatal(err)
		}
		if stored, _ := db.UserByID(ctx, v.ID); !stored.EmailVerifiedAt.Equal(c.Now()) {
			t.Fatalf("CreateVerified stored verified at %v", stored.EmailVerifiedAt)
		}
		if _, err := svc.Create(ctx, "alice@example.COM", "another password", audit.CLI); !errors.Is(err, store.ErrEmailTaken) {
			t.Fatalf("duplicate create: %v", err)
		}
		var ve *users.ValidationError
		if _, err := svc.Create(ctx, "bob@example.com", "short", audit.CLI); !errors.As(err, &ve) || ve.Field != "password" {
			t.Fatalf("short password: %v", err)
		}
		if _, err := svc.Create(ctx, "not-an-email", "long enough", audit.CLI); !errors.As(err, &ve) || ve.Field != "email" {
			t.Fatalf("bad email: %v", err)
		}

		got, err := svc.Authenticate(ctx, "ALICE@example.com", "correct horse")
		if err != nil || got.ID != u.ID {
			t.Fatalf("Authenticate = %+v, %v", got, err)
		}
		for _, tc := range []struct{ email, pw string }{
			{"alice@example.com", "wrong horse"},
			{"nobody@example.com", "correct horse"},
			{"alice@example.com", ""},
		} {
			if _, err := svc.Authenticate(ctx, tc.email, tc.pw); !errors.Is(err, users.ErrInvalidCredentials) || errors.Is(err, users.ErrDisabled) {
				t.Errorf("Authenticate(%q, %q) = %v, want ErrInvalidCredentials", tc.email, tc.pw, err)
			}
		}

		// bcrypt hashes from an imported table verify and are upgraded.
		bc, _ := bcrypt.GenerateFromPassword([]byte("imported pw"), bcrypt.MinCost)
		imp := store.User{ID: "imported", Email: "old@example.com", PasswordHash: "$2y$" + string(bc)[4:], CreatedAt: c.Now()}
		if err := db.CreateUser(ctx, imp, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, "old@example.com", "imported pw"); err != nil {
			t.Fatalf("bcrypt login: %v", err)
		}
		after, _ := db.UserByID(ctx, "imported")
		if !strings.HasPrefix(after.PasswordHash, "$argon2id$") {
			t.Fatalf("bcrypt hash not upgraded: %q", after.PasswordHash)
		}
		if _, err := svc.Authenticate(ctx, "old@example.com", "imported pw"); err != nil {
			t.Fatalf("login after upgrade: %v", err)
		}

		// A corrupt stored hash is a failed login, not a crash or a 500.
		bad := store.User{ID: "bad", Email: "bad@example.com", PasswordHash: "plaintext!", CreatedAt: c.Now()}
		if err := db.CreateUser(ctx, bad, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, "bad@example.com", "plaintext!"); !errors.Is(err, users.ErrInvalidCredentials) {
			t.Fatalf("malformed hash login: %v", err)
		}

		// Disabled users are refused with the same answer.
		c.Advance(time.Minute)
		if _, err := svc.Disable(ctx, "alice@example.com", audit.CLI); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, "alice@example.com", "correct horse"); !errors.Is(err, users.ErrDisabled) || !errors.Is(err, users.ErrInvalidCredentials) {
			t.Fatalf("disabled login: %v", err)
		}
		if _, err := svc.Disable(ctx, "ghost@example.com", audit.CLI); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("disable unknown: %v", err)
		}
		evs, _ := db.ListAudit(ctx, store.AuditFilter{UserID: u.ID})
		if len(evs) != 2 || evs[0].Type != audit.UserDisabled || evs[1].Type != audit.UserCreated {
			t.Fatalf("audit = %+v", evs)
		}
	})
}
