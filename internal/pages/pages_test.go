package pages_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/pages"
)

// TestBranding: an operator's brand.json and logo change the pages without
// a rebuild, and the CSP still admits exactly the page's own style.
func TestBranding(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "brand.json"), []byte(`{"product_name":"Acme <ID>","accent_color":"#aa3300","background_color":"#fafafa"}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "logo.svg"), []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 0o644))
	b, err := pages.LoadBrand(dir)
	must(t, err)
	r, err := pages.New(b)
	must(t, err)
	w := httptest.NewRecorder()
	must(t, r.Render(w, pages.Page{Name: pages.Message, Title: "Hello", Data: map[string]any{"Heading": "Hi", "Paragraphs": []string{"x"}},
		FormAction: []string{"https://app.example.com"}}))
	body := w.Body.String()
	for _, want := range []string{"Acme &lt;ID&gt;", "--accent: #aa3300", "--bg: #fafafa", `src="data:image/svg&#43;xml;base64,`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	csp := w.Header().Get("Content-Security-Policy")
	style := regexp.MustCompile(`(?s)<style>(.*)</style>`).FindStringSubmatch(body)[1]
	sum := sha256.Sum256([]byte(style))
	for _, want := range []string{"style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'", "script-src 'none'",
		"frame-ancestors 'none'", "form-action 'self' https://app.example.com", "img-src data:", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("Cache-Control") != "no-store" {
		t.Error("missing framing or caching headers")
	}
}

func TestBrandingRefused(t *testing.T) {
	for name, content := range map[string]string{
		"a colour that is CSS":    `{"accent_color":"red; background: url(https://evil.example/)"}`,
		"an unknown field":        `{"product":"x"}`,
		"not JSON":                `product_name = "x"`,
		"a multi-line name":       `{"product_name":"a\nb"}`,
		"a name that is too long": `{"product_name":"` + strings.Repeat("x", 61) + `"}`,
	} {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "brand.json"), []byte(content), 0o644))
		if _, err := pages.LoadBrand(dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "logo.png"), make([]byte, 65<<10), 0o644))
	if _, err := pages.LoadBrand(dir); err == nil {
		t.Error("a 65 KiB logo was accepted")
	}
}

func TestFormActionSource(t *testing.T) {
	for in, want := range map[string]string{
		"https://app.example.com/cb?x=1":  "https://app.example.com",
		"http://127.0.0.1:53117/callback": "http://127.0.0.1:53117",
		"com.example.app:/oauth/callback": "com.example.app:",
		"https://a.example/;x":            "https://a.example",
		"":                                "",
	} {
		if got := pages.FormActionSource(in); got != want {
			t.Errorf("FormActionSource(%q) = %q, want %q", in, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
