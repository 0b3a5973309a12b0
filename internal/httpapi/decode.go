package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mediaType returns the request's media type, lower-cased, without
// parameters.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return mt
}

// readBody reads the (already size-limited) body.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, err
	}
	if err != nil {
		return nil, badRequest("could not read the request body")
	}
	return b, nil
}

// decodeJSON reads a JSON object whose listed fields must be strings. Other
// fields are ignored (clients may send extra data), but any field sent twice
// is refused, as is anything after the object: a body must mean one thing
// to every parser that reads it.
func decodeJSON(r *http.Request, fields ...string) (map[string]string, error) {
	if mt := mediaType(r); mt != "application/json" {
		return nil, badRequest("Content-Type must be application/json")
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if err := checkText(body); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, badRequest("the body must be a JSON object")
	}
	want := make(map[string]bool, len(fields))
	for _, f := range fields {
		want[f] = true
	}
	out := make(map[string]string, len(fields))
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badRequest("the body is not valid JSON")
		}
		key, ok := tok.(string)
		if !ok {
			return nil, badRequest("the body is not valid JSON")
		}
		if seen[key] {
			return nil, badRequest(fmt.Sprintf("field %s appears more than once", printable(key)))
		}
		seen[key] = true
		if !want[key] {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, badRequest("the body is not valid JSON")
			}
			continue
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, badRequest("the body is not valid JSON")
		}
		v, ok := tok.(string)
		if !ok {
			return nil, badRequest(fmt.Sprintf("field %s must be a string", key))
		}
		out[key] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, badRequest("the body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("unexpected data after the JSON object")
	}
	return out, nil
}

// checkText refuses what encoding/json would silently replace with U+FFFD:
// bytes that are not UTF-8, and \u escapes of surrogates that are not a
// high one followed by a low one (RFC 8259 §8.2). Otherwise two different
// passwords, say, would decode to the same string.
func checkText(body []byte) error {
	if !utf8.Valid(body) {
		return badRequest("the body is not valid UTF-8")
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && i+1 < len(body):
			if body[i+1] == 'u' {
				if r, ok := hex4(body[i+2:]); ok && utf16.IsSurrogate(rune(r)) {
					low, ok := rune(0), false
					if r < 0xdc00 && i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
						var l uint16
						l, ok = hex4(body[i+8:])
						low = rune(l)
					}
					if !ok || low < 0xdc00 || low > 0xdfff {
						return badRequest("the body holds an unpaired UTF-16 surrogate escape")
					}
					i += 6 // the loop and the next step skip the low half's \u
				}
			}
			i++ // the escaped character, never a closing quote
		}
	}
	return nil
}

// hex4 parses the four hex digits a \u escape starts with.
func hex4(b []byte) (uint16, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return uint16(v), err == nil
}

// decodeForm reads an application/x-www-form-urlencoded body. Per RFC 6749
// §3.2 parameters must not be repeated and none may travel in the URL query
// (where proxies and logs would keep them).
func decodeForm(r *http.Request) (url.Values, error) {
	if r.URL.RawQuery != "" {
		return nil, badRequest("parameters must be sent in the body, not the URL query")
	}
	if mt := mediaType(r); mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("the form body is malformed")
	}
	for k, v := range vals {
		if len(v) > 1 {
			return nil, badRequest(fmt.Sprintf("parameter %s appears more than once", printable(k)))
		}
	}
	return vals, nil
}

// printable shortens a client-supplied name for an error message.
func printable(s string) string {
	s = sanitize(s)
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.TrimSpace(s)
}

// writeJSON writes v with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error (an unencodable type) gets here.
		b = []byte(`{"error":"server_error","error_description":"internal error"}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
