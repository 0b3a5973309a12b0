package secret_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/opaque"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/sessions"
)

// TestNothingPrintsASecret formats every secret-bearing type, alone and as
// a field of the structs that carry it, through fmt's verbs, log/slog's
// handlers and encoding/json: the secret text never comes out.
func TestNothingPrintsASecret(t *testing.T) {
	const pw = "hunter2-correct-horse"
	raw := opaque.New()
	refresh := opaque.Encode(raw)
	mk := masterkey.Generate()
	cfg, err := config.FromEnv(func(k string) string {
		switch k {
		case "TOKEND_MASTER_KEY":
			return mk.Encode()
		case "TOKEND_SMTP_URL":
			return "smtp://mailer:" + pw + "@smtp.example.com:587"
		case "TOKEND_DATABASE_URL":
			return "postgres://tokend:" + pw + "@db.example.com/tokend"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	keyBytes, err := base64.StdEncoding.DecodeString(mk.Encode())
	if err != nil {
		t.Fatal(err)
	}
	decimal := fmt.Sprint(keyBytes)
	secrets := map[string]string{"password": pw, "refresh token": refresh.Reveal(), "master key": mk.Encode(),
		"master key (hex)": hex.EncodeToString(keyBytes), "master key (bytes)": decimal[1 : len(decimal)-1],
		"refresh token (bytes)": strings.Trim(fmt.Sprint(raw), "[]")}
	values := map[string]any{
		"secret.String":   secret.String(pw),
		"*secret.String":  ptr(secret.String(pw)),
		"refresh token":   refresh,
		"masterkey.Key":   *mk,
		"*masterkey.Key":  mk,
		"config.Config":   cfg,
		"*config.Config":  &cfg,
		"a struct field":  credentials{Email: "a@example.com", Password: secret.String(pw)},
		"*struct field":   &credentials{Email: "a@example.com", Password: secret.String(pw)},
		"sessions.Result": sessions.Result{Refresh: refresh},
		"in a slice":      []any{secret.String(pw), mk, refresh},
		"in a map":        map[string]any{"pw": secret.String(pw), "key": mk},
	}
	for name, v := range values {
		var outs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
			outs = append(outs, fmt.Sprintf(verb, v, v))
		}
		outs = append(outs, fmt.Sprint(v), fmt.Sprintln(v))
		for _, h := range []func(*bytes.Buffer) slog.Handler{
			func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
			func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		} {
			var b bytes.Buffer
			slog.New(h(&b)).Info("msg", "value", v, slog.Any("any", v), slog.Group("g", "nested", v))
			outs = append(outs, b.String())
		}
		if b, err := json.Marshal(v); err == nil {
			outs = append(outs, string(b))
		}
		for _, out := range outs {
			for what, sec := range secrets {
				if strings.Contains(out, sec) || strings.Contains(out, fmt.Sprintf("%x", sec)) {
					t.Errorf("%s: the %s is printed: %q", name, what, out)
				}
			}
		}
	}
	// The one door that opens: Reveal.
	if secret.String(pw).Reveal() != pw || cfg.SMTPURL.Reveal() == "" {
		t.Fatal("Reveal does not return the secret")
	}
	if !strings.Contains(fmt.Sprint(secret.String(pw)), secret.Redacted) {
		t.Fatal("a secret does not print as the redaction")
	}
}

func ptr[T any](v T) *T { return &v }

// credentials is a request type as domain code declares them.
type credentials struct {
	Email    string
	Password secret.String
}
