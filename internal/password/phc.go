package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformedHash means a stored hash is in no format tokend understands.
var ErrMalformedHash = errors.New("malformed password hash")

const (
	saltLen = 16
	keyLen  = 32
)

var b64 = base64.RawStdEncoding

// phc is a parsed argon2id PHC string.
type phc struct {
	params Params
	salt   []byte
	key    []byte
}

func (h phc) String() string {
	return fmt.Sprintf("$argon2id$v=19$%s$%s$%s", h.params, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

// parsePHC parses $argon2id$v=19$m=…,t=…,p=…$salt$hash strictly.
func parsePHC(s string) (phc, error) {
	var h phc
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", params, salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, ErrMalformedHash
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok {
		return h, ErrMalformedHash
	}
	if n, err := strconv.Atoi(v); err != nil || n != 19 {
		return h, fmt.Errorf("%w: unsupported argon2 version", ErrMalformedHash)
	}
	p, err := ParseParams(parts[3])
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrMalformedHash, err)
	}
	h.params = p
	if h.salt, err = b64.Strict().DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return h, fmt.Errorf("%w: bad salt", ErrMalformedHash)
	}
	if h.key, err = b64.Strict().DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 128 {
		return h, fmt.Errorf("%w: bad hash", ErrMalformedHash)
	}
	return h, nil
}

// isBcrypt reports whether s looks like a bcrypt hash tokend accepts.
func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}
