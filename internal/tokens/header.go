package tokens

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/tokend/tokend/internal/keys"
)

// JOSE header types (RFC 9068 §2.1, OIDC Core §2 via RFC 7519 §5.1).
const (
	typAccessToken = "at+jwt"
	typIDToken     = "JWT"
)

// headers caches the encoded JOSE headers ({"alg","kid","typ"}): they are
// constant per key and type, so signing a token encodes only its payload.
type headers struct{ m sync.Map } // kid + "/" + typ → encoded header

func (h *headers) of(s *keys.Signer, typ string) string {
	k := s.KID + "/" + typ
	if v, ok := h.m.Load(k); ok {
		return v.(string)
	}
	b, err := json.Marshal(struct {
		Alg string `json:"alg"`
		KID string `json:"kid"`
		Typ string `json:"typ"`
	}{s.Alg, s.KID, typ})
	if err != nil {
		panic("tokens: header: " + err.Error()) // three strings always marshal
	}
	v := b64.EncodeToString(b)
	h.m.Store(k, v)
	return v
}

// sign returns the compact JWS of payload under s with a header of typ.
func (i *Issuer) sign(s *keys.Signer, typ string, payload []byte) (string, error) {
	hdr := i.headers.of(s, typ)
	tok := make([]byte, 0, len(hdr)+1+b64.EncodedLen(len(payload))+1+b64.EncodedLen(512))
	tok = append(tok, hdr...)
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, payload)
	sig, err := s.Method.Sign(string(tok), s.Key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, sig)
	return string(tok), nil
}
