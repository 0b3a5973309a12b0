package httpapi

import (
	"io/fs"
	"net/http"
	"strconv"

	"github.com/tokend/tokend/api"
)

// Routes of the API's own documentation.
const (
	routeSpec       = "/openapi.yaml"
	routeDocs       = "/docs"
	routeDocsScript = "/docs/redoc.standalone.js"
	routeDocsLicnse = "/docs/LICENSE.redoc"
)

// staticFile is an embedded file with its headers, served as is.
type staticFile struct {
	body  []byte
	ctype string
	csp   string
	cache string
}

func (f staticFile) serve(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	if f.csp != "" {
		h.Set("Content-Security-Policy", f.csp)
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("Cache-Control", f.cache)
	_, _ = w.Write(f.body)
	return nil
}

func mustRead(fsys fs.FS, name string) []byte {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		panic("httpapi: embedded " + name + ": " + err.Error()) // a build defect
	}
	return b
}

// docRoutes serves the OpenAPI document and the Redoc page rendered from
// it, all from the binary.
func (s *Server) docRoutes() {
	files := map[string]staticFile{
		routeSpec:       {body: api.Spec, ctype: "application/yaml", cache: "public, max-age=300"},
		routeDocs:       {body: mustRead(api.Docs, "index.html"), ctype: "text/html; charset=utf-8", csp: api.DocsCSP, cache: "public, max-age=300"},
		routeDocsScript: {body: mustRead(api.Docs, "redoc.standalone.js"), ctype: "text/javascript; charset=utf-8", cache: "public, max-age=86400"},
		routeDocsLicnse: {body: mustRead(api.Docs, "LICENSE.redoc"), ctype: "text/plain; charset=utf-8", cache: "public, max-age=86400"},
	}
	for path, f := range files {
		s.route(path, f.serve, http.MethodGet, http.MethodHead)
	}
}
