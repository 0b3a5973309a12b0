// Package api holds tokend's external contract, built into the binary: the
// OpenAPI 3.1 document of the HTTP API ([Spec], served at GET /openapi.yaml)
// and the reference page rendered from it by Redoc ([Docs], served at
// GET /docs).
//
// The document is the contract the HTTP server is tested against (see package
// apitest). The page loads Redoc from this binary and the document from
// /openapi.yaml and nothing from any other host; serve it with [DocsCSP].
// docs/update.sh re-fetches a pinned Redoc release from the npm registry.
package api

import (
	"embed"
	"io/fs"
)

// Spec is openapi.yaml, the OpenAPI 3.1.0 document of tokend's HTTP API.
// Serve it as application/yaml; do not modify it.
//
//go:embed openapi.yaml
var Spec []byte

//go:embed docs/index.html docs/redoc.standalone.js docs/LICENSE.redoc docs/VERSION
var docs embed.FS

// Docs holds the reference page's files at its root: index.html (served at
// /docs), redoc.standalone.js and LICENSE.redoc (served at /docs/NAME), and
// VERSION, the pinned npm version of Redoc. index.html refers to the script
// and the document by absolute paths, so it works at /docs and at /docs/.
var Docs fs.FS = subDocs()

// DocsCSP is the Content-Security-Policy of the /docs page. Redoc injects
// inline styles (styled-components), runs its search index in a worker it
// creates from a blob: URL, and fetches the document from this origin. Its
// side menu shows a logo from cdn.redoc.ly that no option turns off: img-src
// blocks it before any request leaves the browser, and Redoc hides the image.
const DocsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; worker-src blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func subDocs() fs.FS {
	sub, err := fs.Sub(docs, "docs")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "docs" is valid.
		panic(err)
	}
	return sub
}
