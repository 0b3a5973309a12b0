// Package pages renders tokend's HTML pages — sign-in, sign-up, password
// reset, email verification, sign-out and error pages — with one renderer:
// one layout, one stylesheet, the operator's branding, and a strict
// Content-Security-Policy built from the hashes of exactly the style and
// script each page carries (no outside assets, nothing inline that is not
// hashed, frame-ancestors 'none'). Pages work without JavaScript; the reset
// and verification pages, which read their token from the URL fragment,
// have a script, and so do the passkey ceremonies (WebAuthn is a browser
// API): the page that adds a passkey, and, when passkeys are on, the login
// page's "Sign in with a passkey" and the second step's passkey.
package pages

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

//go:embed templates/*.html templates/*.css templates/*.js
var files embed.FS

// Page names.
const (
	Login    = "login"
	Signup   = "signup"
	Forgot   = "forgot"
	Message  = "message"
	Logout   = "logout"
	Reset    = "reset"
	Verify   = "verify"
	Resend   = "resend"
	Factor   = "factor"
	Account  = "account"
	TOTP     = "totp"
	Recovery = "recovery"
	Passkey  = "passkey"
)

// scripts are the pages that carry a script; optional ones only when the
// page asks (Page.Script).
var (
	scripts = map[string]string{Reset: "templates/reset.js", Verify: "templates/verify.js", Passkey: "templates/passkey.js",
		Login: "templates/passkey.js", Factor: "templates/passkey.js"}
	optional = map[string]bool{Login: true, Factor: true}
)

// Brand is what operators may change without rebuilding.
type Brand struct {
	Name string
	// Logo is a data: URL of the logo (img-src admits data: only).
	Logo template.URL
	// Colours, as CSS hex colours.
	Accent, OnAccent, Background, Text string
}

// brandFile is brand.json in the branding directory.
type brandFile struct {
	ProductName     string `json:"product_name"`
	AccentColor     string `json:"accent_color"`
	OnAccentColor   string `json:"on_accent_color"`
	BackgroundColor string `json:"background_color"`
	TextColor       string `json:"text_color"`
}

var hexColor = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// maxLogo bounds the logo file (it is inlined into every page).
const maxLogo = 64 << 10

// LoadBrand reads the overrides in dir (TOKEND_BRANDING_DIR): brand.json
// (product_name, accent_color, on_accent_color, background_color,
// text_color) and logo.svg or logo.png. Every file is optional; an empty
// dir means tokend's defaults.
func LoadBrand(dir string) (Brand, error) {
	b := Brand{Name: "tokend", Accent: "#1f4fd1", OnAccent: "#ffffff", Background: "#ffffff", Text: "#1a1a1a"}
	if dir == "" {
		return b, nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, "brand.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return b, fmt.Errorf("branding: %v", err)
	default:
		var f brandFile
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return b, fmt.Errorf("branding: brand.json: %v", err)
		}
		if f.ProductName != "" {
			if len(f.ProductName) > 60 || strings.ContainsAny(f.ProductName, "\r\n") {
				return b, errors.New("branding: brand.json: product_name must be one line of at most 60 bytes")
			}
			b.Name = f.ProductName
		}
		for _, c := range []struct {
			name string
			v    string
			into *string
		}{{"accent_color", f.AccentColor, &b.Accent}, {"on_accent_color", f.OnAccentColor, &b.OnAccent},
			{"background_color", f.BackgroundColor, &b.Background}, {"text_color", f.TextColor, &b.Text}} {
			if c.v == "" {
				continue
			}
			if !hexColor.MatchString(c.v) {
				return b, fmt.Errorf("branding: brand.json: %s %q is not a hex colour (#rgb or #rrggbb)", c.name, c.v)
			}
			*c.into = c.v
		}
	}
	for _, l := range []struct{ file, mime string }{{"logo.svg", "image/svg+xml"}, {"logo.png", "image/png"}} {
		data, err := os.ReadFile(filepath.Join(dir, l.file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return b, fmt.Errorf("branding: %v", err)
		}
		if len(data) > maxLogo {
			return b, fmt.Errorf("branding: %s is larger than 64 KiB", l.file)
		}
		// A data: URL in an img element: an SVG logo cannot run script.
		b.Logo = template.URL("data:" + l.mime + ";base64," + base64.StdEncoding.EncodeToString(data))
		break
	}
	return b, nil
}

// Renderer renders the pages.
type Renderer struct {
	brand     Brand
	css       template.CSS
	styleHash string
	pages     map[string]*template.Template
	js        map[string]template.JS
	jsHash    map[string]string
}

// New parses the pages under brand.
func New(brand Brand) (*Renderer, error) {
	css, err := files.ReadFile("templates/style.css")
	if err != nil {
		return nil, err
	}
	root := fmt.Sprintf(":root { color-scheme: light; --accent: %s; --on-accent: %s; --bg: %s; --fg: %s; --field: %s; --border: #8a8a8a; --error: #b00020; --ok: #1b6e2e; }\n",
		brand.Accent, brand.OnAccent, brand.Background, brand.Text, brand.Background)
	r := &Renderer{brand: brand, css: template.CSS(root + string(css)), pages: map[string]*template.Template{},
		js: map[string]template.JS{}, jsHash: map[string]string{}}
	r.styleHash = hash([]byte(r.css))
	for _, name := range []string{Login, Signup, Forgot, Message, Logout, Reset, Verify, Resend, Factor, Account, TOTP, Recovery, Passkey} {
		t, err := template.ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		r.pages[name] = t
	}
	for name, file := range scripts {
		js, err := files.ReadFile(file)
		if err != nil {
			return nil, err
		}
		r.js[name] = template.JS(js) // our own embedded file: trusted
		r.jsHash[name] = hash(js)
	}
	return r, nil
}

func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Page is one response.
type Page struct {
	Name   string
	Title  string
	Status int // 200 when 0
	Data   any
	// FormAction lists sources the page's forms may post to, or be
	// redirected to after posting, beyond 'self' (the client's redirect
	// URI after a sign-in: browsers apply form-action to that redirect).
	FormAction []string
	// Script includes the page's optional script (the passkey ceremony of
	// the login and second-step pages).
	Script bool
}

// script is p's script, if it has one.
func (r *Renderer) script(p Page) (template.JS, string, bool) {
	if optional[p.Name] && !p.Script {
		return "", "", false
	}
	h, ok := r.jsHash[p.Name]
	return r.js[p.Name], h, ok
}

// Render writes p with its security headers.
func (r *Renderer) Render(w http.ResponseWriter, p Page) error {
	t, ok := r.pages[p.Name]
	if !ok {
		return fmt.Errorf("pages: no page %q", p.Name)
	}
	js, _, _ := r.script(p)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", struct {
		Title  string
		Brand  Brand
		CSS    template.CSS
		Script template.JS
		Data   any
	}{p.Title, r.brand, r.css, js, p.Data}); err != nil {
		return fmt.Errorf("render %s: %w", p.Name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", r.csp(p))
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	status := p.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// csp admits the page's own hashed style and script, data: images (the
// logo), fetches to its own origin (the reset page), and forms posting to
// its own origin and the listed sources; nothing else, and no framing.
func (r *Renderer) csp(p Page) string {
	script := "'none'"
	connect := "'none'"
	if _, h, ok := r.script(p); ok {
		script, connect = h, "'self'"
	}
	form := "'self'"
	for _, src := range p.FormAction {
		form += " " + src
	}
	return fmt.Sprintf("default-src 'none'; script-src %s; style-src %s; img-src data:; connect-src %s; form-action %s; "+
		"base-uri 'none'; frame-ancestors 'none'", script, r.styleHash, connect, form)
}

// FormActionSource is the CSP source that admits a redirect to uri: its
// origin, or its scheme for a private-use scheme (com.example.app:).
func FormActionSource(uri string) string {
	i := strings.Index(uri, "://")
	if i < 0 {
		if j := strings.IndexByte(uri, ':'); j > 0 {
			return uri[:j+1]
		}
		return ""
	}
	rest := uri[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	src := uri[:i+3] + rest
	if strings.ContainsAny(src, " ;,'\"") {
		return ""
	}
	return src
}
