// Package apitest checks HTTP responses against tokend's OpenAPI document
// (api/openapi.yaml), so that the server's tests fail when the server and its
// contract disagree.
//
// A [Validator] finds the operation of a request by method and path (the host
// and port are ignored, so requests to httptest servers match) and checks the
// response's status, headers, content type and body with kin-openapi's
// openapi3filter.ValidateResponse, plus what that function leaves out: bodies
// of responses documented without content must be empty, 304 responses must
// carry their documented headers, requests that match no operation must
// get the documented 404 or 405 error, and a 431 (headers too large, on any
// path) must be the documented one.
package apitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tokend/tokend/api"
)

// Validator checks responses against api/openapi.yaml. It is safe for
// concurrent use by parallel tests.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

// NewValidator loads and validates api/openapi.yaml, failing tb if the
// document is not a valid OpenAPI document.
func NewValidator(tb testing.TB) *Validator {
	tb.Helper()
	v, err := newValidator()
	if err != nil {
		tb.Fatalf("apitest: %v", err)
	}
	return v
}

func newValidator() (*Validator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate api/openapi.yaml: %w", err)
	}
	// Without servers the router matches paths on any host and scheme:
	// tests talk to httptest servers on random ports.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.yaml: %w", err)
	}
	return &Validator{doc: doc, router: router}, nil
}

// Paths returns every path template of the document with its methods, in
// upper case and sorted: "/auth/sessions/{id}" → ["DELETE", "OPTIONS"]. A
// route-coverage test compares it with the server's routes.
func (v *Validator) Paths() map[string][]string {
	paths := make(map[string][]string, v.doc.Paths.Len())
	for path, item := range v.doc.Paths.Map() {
		var methods []string
		for method := range item.Operations() {
			methods = append(methods, strings.ToUpper(method))
		}
		slices.Sort(methods)
		paths[path] = methods
	}
	return paths
}

// ValidateResponse fails tb, without stopping it, when resp does not match
// the operation of req in the document: an undocumented status, a missing or
// malformed header, a wrong content type, or a body that does not match its
// schema. body is resp's body, already read. req may be nil to use
// resp.Request.
func (v *Validator) ValidateResponse(tb testing.TB, req *http.Request, resp *http.Response, body []byte) {
	tb.Helper()
	if err := v.Check(req, resp, body); err != nil {
		tb.Errorf("%v", err)
	}
}

// Check is [Validator.ValidateResponse] returning the mismatch as an error
// instead of failing a test.
func (v *Validator) Check(req *http.Request, resp *http.Response, body []byte) error {
	if req == nil {
		req = resp.Request
	}
	if req == nil {
		return errors.New("apitest: no request to find the operation by")
	}
	err := v.check(req, resp, body)
	if err == nil {
		return nil
	}
	return fmt.Errorf("apitest: %s %s → %d does not match api/openapi.yaml: %w%s",
		req.Method, req.URL.Path, resp.StatusCode, err, quoteBody(body))
}

func (v *Validator) check(req *http.Request, resp *http.Response, body []byte) error {
	// Route on method and path alone.
	r := &http.Request{
		Method: req.Method,
		URL:    &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery},
		Header: req.Header,
		Body:   http.NoBody,
	}
	head := r.Method == http.MethodHead
	if head {
		// HEAD is documented by its GET; openapi3filter skips HEAD.
		r.Method = http.MethodGet
	}

	if resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
		// Any path, any method: answered before routing.
		return v.validate(v.componentRoute("HeadersTooLarge", http.StatusRequestHeaderFieldsTooLarge), nil, r, resp, body, head)
	}
	route, params, err := v.router.FindRoute(r)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		if resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("no path of the document matches, and the status is not 404")
		}
		return v.validate(v.componentRoute("NotFound", http.StatusNotFound), nil, r, resp, body, head)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if resp.StatusCode != http.StatusMethodNotAllowed {
			return fmt.Errorf("the document has no %s operation on this path, and the status is not 405", req.Method)
		}
		if err := v.checkAllow(r, resp.Header); err != nil {
			return err
		}
		return v.validate(v.componentRoute("MethodNotAllowed", http.StatusMethodNotAllowed), nil, r, resp, body, head)
	case err != nil:
		return fmt.Errorf("find operation: %w", err)
	}

	if resp.StatusCode == http.StatusNotModified {
		// openapi3filter skips 304: check its headers as if it were a 200.
		ref := route.Operation.Responses.Status(http.StatusNotModified)
		if ref == nil || ref.Value == nil {
			return fmt.Errorf("status 304 is not documented for %s %s", route.Method, route.Path)
		}
		if len(body) != 0 {
			return fmt.Errorf("a 304 response has a body")
		}
		synthetic := *route
		synthetic.Operation = &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(http.StatusOK, ref))}
		resp304 := *resp
		resp304.StatusCode = http.StatusOK
		return v.validate(&synthetic, params, r, &resp304, body, head)
	}
	return v.validate(route, params, r, resp, body, head)
}

// validate runs openapi3filter.ValidateResponse and checks that a response
// documented without content has no body.
func (v *Validator) validate(route *routers.Route, params map[string]string, r *http.Request, resp *http.Response, body []byte, head bool) error {
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		ExcludeResponseBody:   head,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("email", openapi3.NewCallbackValidator(validateEmail)),
			openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(validateURI)),
		},
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    r,
			PathParams: params,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return err
	}

	ref := route.Operation.Responses.Status(resp.StatusCode)
	if ref == nil || ref.Value == nil {
		return nil // ValidateResponse rejected undocumented statuses already
	}
	if (head || len(ref.Value.Content) == 0) && len(body) != 0 {
		return fmt.Errorf("status %d is documented without a body, but the response has %d bytes", resp.StatusCode, len(body))
	}
	return nil
}

// componentRoute builds a route whose only response is a response component,
// for requests that match no operation.
func (v *Validator) componentRoute(name string, status int) *routers.Route {
	ref := v.doc.Components.Responses[name]
	return &routers.Route{
		Spec:      v.doc,
		Path:      "(" + name + ")",
		Operation: &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, ref))},
	}
}

// checkAllow checks that the Allow header of a 405 lists the methods the
// document has on the path (and maybe HEAD, where it has GET).
func (v *Validator) checkAllow(r *http.Request, h http.Header) error {
	var want []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		probe := *r
		probe.Method = m
		if _, _, err := v.router.FindRoute(&probe); err == nil {
			want = append(want, m)
		}
	}
	var got []string
	for _, value := range h.Values("Allow") {
		for m := range strings.SplitSeq(value, ",") {
			if m = strings.TrimSpace(m); m != "" {
				got = append(got, strings.ToUpper(m))
			}
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if slices.Contains(want, http.MethodGet) {
		got = slices.DeleteFunc(got, func(m string) bool { return m == http.MethodHead })
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("header Allow lists %v, the document has %v on this path", got, want)
	}
	return nil
}

// validateEmail accepts a bare address (no display name), as tokend stores it.
func validateEmail(s string) error {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s {
		return fmt.Errorf("not an email address")
	}
	return nil
}

// validateURI accepts an absolute URL with a host (RFC 3986).
func validateURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("not an absolute URL")
	}
	return nil
}

func quoteBody(body []byte) string {
	const max = 1000
	if len(body) == 0 {
		return "\n(empty body)"
	}
	if len(body) > max {
		return fmt.Sprintf("\nbody (first %d of %d bytes): %s", max, len(body), body[:max])
	}
	return fmt.Sprintf("\nbody: %s", body)
}
