package sessions

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/opaque"
)

// Secret is a refresh token in its wire form; it never reaches a log line.
type Secret = opaque.Secret

// MACKeys are the keys refresh tokens are MACed with, by version: Current
// MACs new tokens, Key checks presented ones. A version that Key no longer
// knows makes its tokens invalid.
type MACKeys interface {
	Current() (version uint32, key []byte)
	Key(version uint32) ([]byte, bool)
}

// The refresh token format: a format byte, the family id (a UUID), the
// generation, the MAC key version and HMAC-SHA256 over all of them, 61
// bytes, sent as 82 characters of unpadded base64url. A token of the old
// format (43 characters, 256 random bits) cannot be mistaken for one.
const (
	tokenFormat  byte = 0x02
	tokenMACLen       = sha256.Size
	tokenBodyLen      = 1 + 16 + 8 + 4
	tokenLen          = tokenBodyLen + tokenMACLen
)

// macDomain separates refresh-token MACs from any other use of the key.
const macDomain = "tokend refresh token v2\x00"

// refreshToken is what a token of the current format says.
type refreshToken struct {
	family     string
	generation int64
	keyVersion uint32
}

func (t refreshToken) body() ([]byte, error) {
	id, err := uuid.Parse(t.family)
	if err != nil {
		return nil, fmt.Errorf("family id %q is not a UUID", t.family)
	}
	b := make([]byte, 0, tokenLen)
	b = append(b, tokenFormat)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.generation))
	return binary.BigEndian.AppendUint32(b, t.keyVersion), nil
}

func tokenMAC(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macDomain))
	m.Write(body)
	return m.Sum(nil)
}

// mint returns the token of a family's generation under the current key.
func mint(keys MACKeys, family string, generation int64) (Secret, error) {
	v, key := keys.Current()
	body, err := refreshToken{family: family, generation: generation, keyVersion: v}.body()
	if err != nil {
		return "", err
	}
	return opaque.Encode(append(body, tokenMAC(key, body)...)), nil
}

// parseToken reads a token of the current format and checks its MAC in
// constant time. ok is false for anything else (another format, a wrong
// length or encoding, an unknown key version, a bad MAC) with the reason
// for the logs.
func parseToken(keys MACKeys, s string) (t refreshToken, ok bool, reason string) {
	b, ok := opaque.Decode(s, tokenLen)
	if !ok || b[0] != tokenFormat {
		return t, false, "malformed refresh token"
	}
	body, sum := b[:tokenBodyLen], b[tokenBodyLen:]
	gen := binary.BigEndian.Uint64(body[17:25])
	t = refreshToken{family: uuid.UUID(body[1:17]).String(), keyVersion: binary.BigEndian.Uint32(body[25:29])}
	key, known := keys.Key(t.keyVersion)
	if !known {
		return refreshToken{}, false, "refresh token under an unknown key version"
	}
	if !hmac.Equal(sum, tokenMAC(key, body)) {
		return refreshToken{}, false, "refresh token with a bad MAC"
	}
	if gen == 0 || gen > math.MaxInt64 {
		return refreshToken{}, false, "refresh token of an impossible generation"
	}
	t.generation = int64(gen)
	return t, true, ""
}

// deriver computes the child of a token of the old format (the chain that
// families created before one row per session stored in refresh_tokens).
type deriver struct{ key []byte }

func (d deriver) child(parent []byte) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte("tokend refresh child v1\x00"))
	m.Write(parent)
	return m.Sum(nil)
}
