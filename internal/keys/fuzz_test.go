package keys

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// FuzzParsePEM: `tokend keys import` never panics on a file, and anything
// it accepts is a signing key of the requested algorithm.
func FuzzParsePEM(f *testing.F) {
	_, ed, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(ed)
	f.Add(EdDSA, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	f.Add(RS256, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}))
	f.Add(RS256, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	f.Add(EdDSA, []byte("not a pem"))
	f.Fuzz(func(t *testing.T, alg string, data []byte) {
		k, err := ParsePEM(alg, data)
		if err != nil {
			return
		}
		if _, err := newMaterial(alg, k); err != nil {
			t.Fatalf("ParsePEM accepted a key newMaterial refuses: %v", err)
		}
	})
}
