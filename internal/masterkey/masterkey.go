// Package masterkey loads tokend's master key (TOKEND_MASTER_KEY[_FILE]) and
// uses it only to derive purpose-bound subkeys (HKDF-SHA256) that encrypt
// secrets at rest with AES-256-GCM: private signing keys, queued mails, TOTP
// secrets, one-time token data, and the data keys of keyed hashes (client
// secrets, recovery codes, refresh and CSRF tokens).
//
// A Keyring adds the previous master key (TOKEND_MASTER_KEY_PREVIOUS), which
// only decrypts, and Rotate re-seals everything under the current key in one
// transaction.
//
// The key never leaves this package's types: Key has no String or
// MarshalJSON, and LogValue prints a redaction.
package masterkey

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/tokend/tokend/internal/secret"
)

// Size is the master key length in bytes.
const Size = 32

// Purposes of derived keys. Each purpose gets an independent key.
const (
	PurposeSigningKeys   = "tokend signing keys v1"
	PurposeMail          = "tokend mail outbox v1"
	PurposeRefresh       = "tokend refresh derivation v1"
	PurposeAuthorize     = "tokend authorization requests v1"
	PurposeCSRF          = "tokend csrf v1"
	PurposeClientSecrets = "tokend client secrets v1"
	PurposeTOTP          = "tokend totp secrets v1"
	PurposeRecoveryCodes = "tokend recovery codes v1"
	PurposeOneTimeData   = "tokend one-time token data v1"
	PurposeRefreshMAC    = "tokend refresh mac v1"
	purposeCheck         = "tokend master key check v1"
)

// PurposeDataKeys seals the data keys (the keys of keyed hashes, among them
// PurposeRefreshMAC's).
const PurposeDataKeys = "tokend data keys v1"

// ErrWrongKey means a ciphertext did not open: the master key differs from
// the one that sealed it, or the data was tampered with or moved.
var ErrWrongKey = errors.New("cannot decrypt: wrong master key or tampered data")

// Key is the master key. It prints "<redacted>" through every formatting
// door (fmt's verbs, slog, encoding/json), as a value or a pointer.
type Key struct{ b [Size]byte }

// LogValue keeps the key out of logs.
func (Key) LogValue() slog.Value { return slog.StringValue(secret.Redacted) }

// String implements fmt.Stringer.
func (Key) String() string { return secret.Redacted }

// GoString implements fmt.GoStringer.
func (Key) GoString() string { return secret.Redacted }

// Format implements fmt.Formatter: every verb prints the redaction.
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, secret.Redacted) }

// MarshalJSON implements json.Marshaler.
func (Key) MarshalJSON() ([]byte, error) { return []byte(`"` + secret.Redacted + `"`), nil }

// Parse decodes a base64 (standard or URL alphabet, padded or not) master key.
// Its errors never contain the input.
func Parse(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("the master key is not base64")
	}
	if len(raw) != Size {
		return nil, fmt.Errorf("the master key is %d bytes, want %d (generate one with: head -c 32 /dev/urandom | base64)", len(raw), Size)
	}
	if bytes.Count(raw, raw[:1]) == Size {
		return nil, errors.New("the master key has no entropy: all its bytes are equal (generate one with: head -c 32 /dev/urandom | base64)")
	}
	k := &Key{}
	copy(k.b[:], raw)
	return k, nil
}

// Generate returns a new random key.
func Generate() *Key {
	k := &Key{}
	if _, err := rand.Read(k.b[:]); err != nil {
		panic("masterkey: crypto/rand failed: " + err.Error())
	}
	return k
}

// Encode returns the key in base64, for writing the dev key file only.
func (k *Key) Encode() string { return base64.StdEncoding.EncodeToString(k.b[:]) }

// Source says where the key comes from.
type Source struct {
	Value string // TOKEND_MASTER_KEY
	File  string // TOKEND_MASTER_KEY_FILE
	Dev   bool
	// DevFile is where dev mode keeps a generated key (keys/dev-master.key).
	DevFile string
}

// Load returns the configured key. In dev mode without one, it reads or
// creates DevFile and reports generated=true when it made a new key.
func Load(src Source) (k *Key, generated bool, err error) {
	if src.Value != "" || src.File != "" {
		k, err = loadFrom("TOKEND_MASTER_KEY", src.Value, src.File)
		return k, false, err
	}
	if !src.Dev {
		return nil, false, errors.New("no master key: set TOKEND_MASTER_KEY_FILE (or TOKEND_MASTER_KEY) to 32 random bytes in base64; generate one with: head -c 32 /dev/urandom | base64")
	}
	if b, err := os.ReadFile(src.DevFile); err == nil {
		k, err = Parse(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("dev master key %s: %w", src.DevFile, err)
		}
		return k, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("dev master key %s: %v", src.DevFile, unwrap(err))
	}
	k = Generate()
	if err := os.MkdirAll(filepath.Dir(src.DevFile), 0o700); err != nil {
		return nil, false, fmt.Errorf("dev master key: %v", unwrap(err))
	}
	f, err := os.OpenFile(src.DevFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("dev master key %s: %v", src.DevFile, unwrap(err))
	}
	defer f.Close()
	if _, err := f.WriteString(k.Encode() + "\n"); err != nil {
		return nil, false, fmt.Errorf("dev master key %s: %v", src.DevFile, unwrap(err))
	}
	return k, true, nil
}

// loadFrom parses the key of the variable name (value) or of name_FILE
// (file); the configuration allows only one of them.
func loadFrom(name, value, file string) (*Key, error) {
	if value != "" {
		k, err := Parse(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return k, nil
	}
	b, err := readPrivate(file)
	if err != nil {
		return nil, fmt.Errorf("%s_FILE: %w", name, err)
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s_FILE %s: %w", name, file, err)
	}
	return k, nil
}

// maxFileSize bounds what readPrivate reads: a base64 key and some
// whitespace are far smaller.
const maxFileSize = 4096

// readPrivate reads a key file that only its owner may access: a key that
// group or others can read is no longer secret, so it is refused rather
// than used. The mode is checked on the open file, not on the name.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, unwrap(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, unwrap(err))
	}
	// Windows has no group and other permission bits to check.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s has mode %04o, which lets group or others read it; allow its owner only (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, unwrap(err))
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a master key file", path, maxFileSize)
	}
	return b, nil
}

func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Derive returns a 32-byte subkey for purpose.
func (k *Key) Derive(purpose string) []byte {
	b, err := hkdf.Key(sha256.New, k.b[:], nil, purpose, 32)
	if err != nil {
		panic("masterkey: hkdf: " + err.Error())
	}
	return b
}

// Sealer encrypts with one derived key and decrypts with it or, during a
// master-key rotation, with the previous master key's (see Keyring).
type Sealer struct {
	aead cipher.AEAD
	// older open what the previous master key sealed.
	older []cipher.AEAD
}

// Sealer returns the AES-256-GCM sealer for purpose.
func (k *Key) Sealer(purpose string) *Sealer { return &Sealer{aead: k.aead(purpose)} }

func (k *Key) aead(purpose string) cipher.AEAD {
	block, err := aes.NewCipher(k.Derive(purpose))
	if err != nil {
		panic("masterkey: aes: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("masterkey: gcm: " + err.Error())
	}
	return aead
}

// sealVersion prefixes ciphertexts so the format can change later.
const sealVersion = 1

// Seal encrypts plaintext, binding ad (for example the row's id) so that
// the ciphertext only opens with the same ad.
func (s *Sealer) Seal(plaintext, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("masterkey: crypto/rand failed: " + err.Error())
	}
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, plaintext, ad)
}

// Open decrypts a ciphertext from Seal with the same ad.
func (s *Sealer) Open(ciphertext, ad []byte) ([]byte, error) {
	pt, _, err := s.open(ciphertext, ad)
	return pt, err
}

// open also reports which key opened the ciphertext: 0 for the sealing
// key, 1 for the previous one.
func (s *Sealer) open(ciphertext, ad []byte) ([]byte, int, error) {
	if pt, err := openWith(s.aead, ciphertext, ad); err == nil {
		return pt, 0, nil
	}
	for i, a := range s.older {
		if pt, err := openWith(a, ciphertext, ad); err == nil {
			return pt, i + 1, nil
		}
	}
	return nil, -1, ErrWrongKey
}

func openWith(aead cipher.AEAD, ciphertext, ad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(ciphertext) < 1+ns+aead.Overhead() || ciphertext[0] != sealVersion {
		return nil, ErrWrongKey
	}
	pt, err := aead.Open(nil, ciphertext[1:1+ns], ciphertext[1+ns:], ad)
	if err != nil {
		return nil, ErrWrongKey
	}
	return pt, nil
}

// MetaStore keeps the check value.
type MetaStore interface {
	// PutMetaIfAbsent stores value under name unless a value exists, and
	// returns the stored value.
	PutMetaIfAbsent(ctx context.Context, name, value string) (string, error)
}

const checkName = "master_key_check"

// ErrMismatch means the database was set up with another master key.
var ErrMismatch = errors.New("the master key does not match the one this database was set up with (check TOKEND_MASTER_KEY_FILE / TOKEND_MASTER_KEY; after 'tokend masterkey rotate' it is the new key)")

// Check records a check value on first use and verifies it afterwards, so
// that an instance started with the wrong key says so at once.
func (k *Key) Check(ctx context.Context, s MetaStore) error {
	return (&Keyring{Current: k}).Check(ctx, s)
}

// checkValue is the check value of the keyring's current key.
func (r *Keyring) checkValue() string {
	return base64.StdEncoding.EncodeToString(r.Current.Sealer(purposeCheck).Seal([]byte(checkPlain), []byte(checkName)))
}

const checkPlain = "tokend"

// openCheck reports which key opens a stored check value: 0 the current,
// 1 the previous, -1 neither.
func (r *Keyring) openCheck(stored []byte) int {
	ct, err := base64.StdEncoding.DecodeString(string(stored))
	if err != nil {
		return -1
	}
	pt, which, err := r.Sealer(purposeCheck).open(ct, []byte(checkName))
	if err != nil || string(pt) != checkPlain {
		return -1
	}
	return which
}
