package masterkey

import (
	"context"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
)

// Keyring is the master key that seals (TOKEND_MASTER_KEY) and, during a
// rotation, the previous one (TOKEND_MASTER_KEY_PREVIOUS), which only
// opens what it sealed before. Previous is nil outside a rotation.
type Keyring struct {
	Current  *Key
	Previous *Key
}

// LoadPrevious returns the key of TOKEND_MASTER_KEY_PREVIOUS (value) or
// TOKEND_MASTER_KEY_PREVIOUS_FILE (file), nil when neither is set. It
// refuses a previous key equal to current: that is a configuration mistake
// (the new key was not put in TOKEND_MASTER_KEY).
func LoadPrevious(value, file string, current *Key) (*Key, error) {
	if value == "" && file == "" {
		return nil, nil
	}
	k, err := loadFrom("TOKEND_MASTER_KEY_PREVIOUS", value, file)
	if err != nil {
		return nil, err
	}
	if current != nil && subtle.ConstantTimeCompare(k.b[:], current.b[:]) == 1 {
		return nil, errors.New("TOKEND_MASTER_KEY_PREVIOUS is the same key as TOKEND_MASTER_KEY: put the new key in TOKEND_MASTER_KEY and the old one in TOKEND_MASTER_KEY_PREVIOUS")
	}
	return k, nil
}

// Sealer returns the sealer for purpose: it seals with the current key and
// opens with the current key, then the previous one.
func (r *Keyring) Sealer(purpose string) *Sealer {
	s := r.Current.Sealer(purpose)
	if r.Previous != nil {
		s.older = []cipher.AEAD{r.Previous.aead(purpose)}
	}
	return s
}

// ErrNotRotated means the database's check value opens with the previous
// key only.
var ErrNotRotated = errors.New("this database is sealed under TOKEND_MASTER_KEY_PREVIOUS, not TOKEND_MASTER_KEY: " +
	"if you are rotating to the key in TOKEND_MASTER_KEY, run 'tokend masterkey rotate' first; " +
	"if the rotation has already run, this instance's configuration is behind: set TOKEND_MASTER_KEY to the new key and TOKEND_MASTER_KEY_PREVIOUS to the old one")

// Check records the current key's check value on first use and verifies
// it afterwards. It fails with ErrMismatch when the check value opens with
// neither key, and with ErrNotRotated when it opens with the previous key
// only: tokend does not start then, because whatever the database holds
// under the current key (a rotation that has run) would be unreadable to
// this instance's peers, or what it seals would be (a rotation not run).
func (r *Keyring) Check(ctx context.Context, s MetaStore) error {
	stored, err := s.PutMetaIfAbsent(ctx, checkName, r.checkValue())
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	switch r.openCheck([]byte(stored)) {
	case 0:
		return nil
	case 1:
		return ErrNotRotated
	}
	return ErrMismatch
}

// DataKeyPurposes are the purposes whose keys are data keys: keyed hashes
// that cannot be computed again (client secrets, recovery codes) and keys
// whose change would end sessions (refresh tokens) or break forms in flight
// on other instances (CSRF).
var DataKeyPurposes = []string{PurposeClientSecrets, PurposeRecoveryCodes, PurposeRefresh, PurposeRefreshMAC, PurposeCSRF}

// DataKeyStore keeps the data keys (store.MasterKeyStore).
type DataKeyStore interface {
	DataKeys(ctx context.Context) ([]store.DataKey, error)
	AddDataKey(ctx context.Context, k store.DataKey) error
}

func dataKeyID(purpose string, version uint32) string {
	return purpose + "/" + strconv.FormatUint(uint64(version), 10)
}

func dataKeyAD(id string) []byte { return []byte("tokend data key " + id) }

// DataKeys are the opened data keys, by purpose and version. They print
// as a redaction.
type DataKeys struct {
	keys    map[string]map[uint32][]byte
	current map[string]uint32
}

// LoadDataKeys opens the data keys, first creating version 1 of each
// purpose in DataKeyPurposes that has none: the key derived from the
// current master key, which is what tokend used before data keys existed,
// so that nothing stored changes meaning. Call it after Check.
func (r *Keyring) LoadDataKeys(ctx context.Context, s DataKeyStore, now time.Time) (*DataKeys, error) {
	if err := ensureDataKeys(ctx, s, r.Current, r.Sealer(PurposeDataKeys), now); err != nil {
		return nil, err
	}
	list, err := s.DataKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load data keys: %w", err)
	}
	d := &DataKeys{keys: map[string]map[uint32][]byte{}, current: map[string]uint32{}}
	seal := r.Sealer(PurposeDataKeys)
	for _, k := range list {
		id := dataKeyID(k.Purpose, k.Version)
		b, err := seal.Open(k.Sealed, dataKeyAD(id))
		if err != nil {
			return nil, fmt.Errorf("data key %s: %w", id, err)
		}
		if d.keys[k.Purpose] == nil {
			d.keys[k.Purpose] = map[uint32][]byte{}
		}
		d.keys[k.Purpose][k.Version] = b
		if k.Version > d.current[k.Purpose] {
			d.current[k.Purpose] = k.Version
		}
	}
	return d, nil
}

// ensureDataKeys adds version 1 of every purpose that has no data key,
// derived from derive and sealed with seal. Instances that start together
// compute the same keys; the first insert wins.
func ensureDataKeys(ctx context.Context, s DataKeyStore, derive *Key, seal *Sealer, now time.Time) error {
	list, err := s.DataKeys(ctx)
	if err != nil {
		return fmt.Errorf("load data keys: %w", err)
	}
	have := map[string]bool{}
	for _, k := range list {
		have[k.Purpose] = true
	}
	for _, p := range DataKeyPurposes {
		if have[p] {
			continue
		}
		k := store.DataKey{Purpose: p, Version: 1, Sealed: seal.Seal(derive.Derive(p), dataKeyAD(dataKeyID(p, 1))), CreatedAt: now}
		if err := s.AddDataKey(ctx, k); err != nil {
			return fmt.Errorf("create data key %s: %w", p, err)
		}
	}
	return nil
}

// Current returns the newest version of purpose's key (0 and nil for an
// unknown purpose).
func (d *DataKeys) Current(purpose string) (uint32, []byte) {
	v := d.current[purpose]
	if v == 0 {
		return 0, nil
	}
	return v, d.keys[purpose][v]
}

// Key returns version v of purpose's key.
func (d *DataKeys) Key(purpose string, v uint32) ([]byte, bool) {
	b, ok := d.keys[purpose][v]
	return b, ok
}

// MustCurrent returns the newest key of purpose, which LoadDataKeys
// guarantees for every purpose in DataKeyPurposes; it panics for another
// purpose (a programming error).
func (d *DataKeys) MustCurrent(purpose string) []byte {
	_, b := d.Current(purpose)
	if b == nil {
		panic("masterkey: no data key for " + purpose)
	}
	return b
}

// MAC returns purpose's keys in the shape of a versioned MAC key source
// (sessions.MACKeys): the newest version signs, every version verifies.
func (d *DataKeys) MAC(purpose string) MACKeys { return MACKeys{d: d, purpose: purpose} }

// LogValue keeps the keys out of logs.
func (*DataKeys) LogValue() slog.Value { return slog.StringValue(secret.Redacted) }

// String implements fmt.Stringer.
func (*DataKeys) String() string { return secret.Redacted }

// Format implements fmt.Formatter: every verb prints the redaction.
func (*DataKeys) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, secret.Redacted) }

// MACKeys is one purpose's versioned data keys.
type MACKeys struct {
	d       *DataKeys
	purpose string
}

// Current returns the version and key that new MACs use.
func (m MACKeys) Current() (uint32, []byte) { return m.d.Current(m.purpose) }

// Key returns version v's key, for verifying.
func (m MACKeys) Key(v uint32) ([]byte, bool) { return m.d.Key(m.purpose, v) }

// LogValue keeps the keys out of logs.
func (MACKeys) LogValue() slog.Value { return slog.StringValue(secret.Redacted) }

// Format implements fmt.Formatter: every verb prints the redaction.
func (MACKeys) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, secret.Redacted) }
