package tokendtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tokend/tokend/internal/keys"
	"github.com/tokend/tokend/internal/store"
)

// minSecretLen ignores short test values ("p", "short") that would match by
// accident.
const minSecretLen = 8

// secretScan records every secret that crosses the server's HTTP boundary
// in a test, and everything the server wrote, and checks at the end of the
// test that no secret reached a log line, an audit row or an error body.
type secretScan struct {
	mu      sync.Mutex
	secrets map[string]string // value → what it is
	log     bytes.Buffer
	errors  []string
}

func newSecretScan() *secretScan { return &secretScan{secrets: map[string]string{}} }

// Write captures the server's log output.
func (s *secretScan) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

func (s *secretScan) add(what, v string) {
	if len(v) < minSecretLen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[v] = what
}

// AddSecret registers a secret the test used outside HTTP (a password set
// through the service, say).
func (srv *Server) AddSecret(what, v string) { srv.scan.add(what, v) }

// fields of request and response bodies that hold secrets.
var secretFields = []string{"password", "token", "refresh_token", "access_token", "code", "client_secret"}

// observe records the secrets of one exchange.
func (s *secretScan) observe(req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	for _, c := range req.Cookies() {
		s.add("refresh cookie", c.Value)
	}
	if a := req.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		s.add("access token", strings.TrimPrefix(a, "Bearer "))
	}
	s.fromBody("request", req.Header.Get("Content-Type"), reqBody)
	for _, c := range resp.Cookies() {
		s.add("refresh cookie", c.Value)
	}
	s.fromBody("response", resp.Header.Get("Content-Type"), body)
	if resp.StatusCode >= 400 {
		s.mu.Lock()
		s.errors = append(s.errors, string(body))
		s.mu.Unlock()
	}
}

func (s *secretScan) fromBody(where, ctype string, body []byte) {
	switch {
	case strings.HasPrefix(ctype, "application/json"):
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			for _, f := range secretFields {
				if v, ok := m[f].(string); ok {
					s.add(where+" "+f, v)
				}
			}
		}
	case strings.HasPrefix(ctype, "application/x-www-form-urlencoded"):
		if v, err := url.ParseQuery(string(body)); err == nil {
			for _, f := range secretFields {
				s.add(where+" "+f, v.Get(f))
			}
		}
	}
}

// keySecrets registers the private signing keys in the forms a leak could
// take: the raw secret (Ed25519 seed, RSA private exponent) in base64url (as
// a JWK "d" member), standard base64 and hex, and the PKCS#8 encoding.
func (s *secretScan) keySecrets(m *keys.Manager) {
	for _, alg := range keys.Algs {
		sg, ok := m.Signer(alg)
		if !ok {
			continue
		}
		var raw []byte
		switch k := sg.Key.(type) {
		case ed25519.PrivateKey:
			raw = k.Seed()
		case *rsa.PrivateKey:
			raw = k.D.Bytes()
		}
		for _, enc := range []string{base64.RawURLEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(raw)} {
			s.add(alg+" private key", enc[:min(len(enc), 40)])
		}
		if der, err := x509.MarshalPKCS8PrivateKey(sg.Key); err == nil {
			b := base64.StdEncoding.EncodeToString(der)
			s.add(alg+" private key (PKCS#8)", b[len(b)-40:])
		}
	}
}

// check fails t if any secret appears where it must not.
func (s *secretScan) check(t testing.TB, audit []store.AuditEvent) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var haystack strings.Builder
	haystack.Write(s.log.Bytes())
	for _, e := range s.errors {
		haystack.WriteString(e)
	}
	for _, ev := range audit {
		fmt.Fprintf(&haystack, "%s %s %s %s %v\n", ev.Type, ev.UserID, ev.ClientID, ev.Address, ev.Details)
	}
	all := haystack.String()
	for v, what := range s.secrets {
		if strings.Contains(all, v) {
			t.Errorf("secret scan: a %s appears in the server's logs, audit rows or error bodies", what)
		}
	}
}

// scanNow runs the scan (Close calls it).
func (srv *Server) scanNow(t testing.TB) {
	if srv.scan == nil {
		return
	}
	srv.scan.keySecrets(srv.Keys)
	evs, err := srv.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 10000})
	if err != nil {
		evs = nil // the store may be closed by the test
	}
	srv.scan.check(t, evs)
}
