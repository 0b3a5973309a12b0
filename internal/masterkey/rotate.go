package masterkey

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/store"
)

// sealedKind says how one kind of stored value was sealed. The additional
// data repeat what the owning packages bind (keys.privAD, mail.payloadAD,
// onetime.dataAD, the factor's id); the end-to-end tests of a rotation
// fail if they drift apart.
type sealedKind struct {
	purpose string
	ad      func(id string) []byte
	// text is the base64 encoding of a value stored as text (nil: bytes).
	text *base64.Encoding
}

var sealedKinds = map[store.SealedKind]sealedKind{
	store.SealedSigningKey: {purpose: PurposeSigningKeys, ad: func(id string) []byte { return []byte("tokend signing key " + id) }},
	store.SealedMail:       {purpose: PurposeMail, ad: func(id string) []byte { return []byte("tokend mail job " + id) }},
	store.SealedTOTP:       {purpose: PurposeTOTP, ad: func(id string) []byte { return []byte(id) }, text: base64.RawURLEncoding},
	store.SealedOneTime:    {purpose: PurposeOneTimeData, ad: func(id string) []byte { return []byte("tokend one-time token " + id) }},
	store.SealedDataKey:    {purpose: PurposeDataKeys, ad: dataKeyAD},
	store.SealedCheck:      {purpose: purposeCheck, ad: func(id string) []byte { return []byte(id) }, text: base64.StdEncoding},
}

// Which key a sealed value opens with.
const (
	underCurrent  = 0
	underPrevious = 1
	underNeither  = -1
)

// open opens v with the keyring and reports which key opened it.
func (r *Keyring) openValue(v store.SealedValue) ([]byte, int, error) {
	k, ok := sealedKinds[v.Kind]
	if !ok {
		return nil, underNeither, fmt.Errorf("unknown kind of sealed value %q", v.Kind)
	}
	ct := v.Sealed
	if k.text != nil {
		var err error
		if ct, err = k.text.DecodeString(string(v.Sealed)); err != nil {
			return nil, underNeither, nil
		}
	}
	pt, which, err := r.Sealer(k.purpose).open(ct, k.ad(v.ID))
	if err != nil {
		return nil, underNeither, nil
	}
	return pt, which, nil
}

// sealValue seals pt for v under the current key, in v's stored form.
func (r *Keyring) sealValue(v store.SealedValue, pt []byte) []byte {
	k := sealedKinds[v.Kind]
	ct := r.Current.Sealer(k.purpose).Seal(pt, k.ad(v.ID))
	if k.text != nil {
		return []byte(k.text.EncodeToString(ct))
	}
	return ct
}

// RotateStore is what Rotate and Status need (store.Store).
type RotateStore interface {
	MetaStore
	DataKeyStore
	SealedValues(ctx context.Context, fn func(store.SealedValue) error) error
	Reseal(ctx context.Context, fn func(store.SealedValue) ([]byte, error), ev func(map[store.SealedKind]int) *store.AuditEvent) (map[store.SealedKind]int, error)
}

// ErrNoPrevious means a rotation was asked for without the old key.
var ErrNoPrevious = errors.New("TOKEND_MASTER_KEY_PREVIOUS is not set: run the rotation with the new key in TOKEND_MASTER_KEY and the old one in TOKEND_MASTER_KEY_PREVIOUS")

// ErrUnreadable means a stored value opens with neither key.
var ErrUnreadable = errors.New("opens with neither TOKEND_MASTER_KEY nor TOKEND_MASTER_KEY_PREVIOUS")

// Rotate re-seals, in one transaction, every value the previous key sealed
// (signing keys, queued mails, TOTP secrets, one-time token data, data keys
// and the check value) under the current key, and records an audit event.
// Values already under the current key are left alone, so running it again
// after a crash, or after an instance still sealing with the old key wrote
// more, finishes the job. A value that opens with neither key stops it and
// nothing changes. It returns how many values of each kind it re-sealed.
func (r *Keyring) Rotate(ctx context.Context, s RotateStore, now time.Time) (map[store.SealedKind]int, error) {
	if r.Previous == nil {
		return nil, ErrNoPrevious
	}
	stored, err := s.PutMetaIfAbsent(ctx, checkName, r.checkValue())
	if err != nil {
		return nil, fmt.Errorf("master key check: %w", err)
	}
	// The data keys exist before they are re-sealed: derived from the key
	// the database was set up with, as an instance of this version would
	// have created them at start.
	var dbKey *Key
	switch r.openCheck([]byte(stored)) {
	case underCurrent:
		dbKey = r.Current
	case underPrevious:
		dbKey = r.Previous
	default:
		return nil, ErrMismatch
	}
	if err := ensureDataKeys(ctx, s, dbKey, r.Sealer(PurposeDataKeys), now); err != nil {
		return nil, err
	}
	counts, err := s.Reseal(ctx, func(v store.SealedValue) ([]byte, error) {
		pt, which, err := r.openValue(v)
		switch {
		case err != nil:
			return nil, err
		case which == underNeither:
			return nil, fmt.Errorf("%s %s %w; nothing was changed", v.Kind, v.ID, ErrUnreadable)
		case which == underCurrent:
			return nil, nil
		}
		return r.sealValue(v, pt), nil
	}, func(counts map[store.SealedKind]int) *store.AuditEvent {
		details := map[string]string{}
		for kind, n := range counts {
			details[string(kind)] = strconv.Itoa(n)
		}
		return &store.AuditEvent{Type: audit.MasterKeyRotated, Details: details, CreatedAt: now}
	})
	if err != nil {
		return nil, fmt.Errorf("rotate the master key: %w", err)
	}
	return counts, nil
}

// Status counts the stored sealed values by kind and by the key that
// opens them.
type Status struct {
	Current, Previous, Unreadable map[store.SealedKind]int
}

// Total sums one of Status's maps.
func Total(m map[store.SealedKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Status reports which key each stored sealed value opens with.
func (r *Keyring) Status(ctx context.Context, s RotateStore) (Status, error) {
	st := Status{Current: map[store.SealedKind]int{}, Previous: map[store.SealedKind]int{}, Unreadable: map[store.SealedKind]int{}}
	err := s.SealedValues(ctx, func(v store.SealedValue) error {
		_, which, err := r.openValue(v)
		if err != nil {
			return err
		}
		switch which {
		case underCurrent:
			st.Current[v.Kind]++
		case underPrevious:
			st.Previous[v.Kind]++
		default:
			st.Unreadable[v.Kind]++
		}
		return nil
	})
	if err != nil {
		return Status{}, fmt.Errorf("master key status: %w", err)
	}
	return st, nil
}

// SealedKinds lists the kinds of sealed values in their stored order.
var SealedKinds = []store.SealedKind{store.SealedSigningKey, store.SealedMail, store.SealedTOTP, store.SealedOneTime, store.SealedDataKey, store.SealedCheck}
