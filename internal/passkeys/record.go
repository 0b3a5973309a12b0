package passkeys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/store"
)

// record is the public credential as stored (store.Factor.Credential): what
// verifying its assertions needs. Its own shape, not go-webauthn's, so that
// a library upgrade cannot change what is stored. The signature counter
// lives in the factor's own column (store.Factor.SignCount).
type record struct {
	PublicKey         []byte   `json:"public_key"` // COSE_Key
	AttestationType   string   `json:"attestation_type,omitempty"`
	AttestationFormat string   `json:"attestation_format,omitempty"`
	Transports        []string `json:"transports,omitempty"`
	// Flags are the authenticator data flags of the last ceremony (UP, UV,
	// BE, BS, as the byte); the booleans repeat them for people reading
	// the row.
	Flags          byte   `json:"flags"`
	UserVerified   bool   `json:"user_verified"`
	BackupEligible bool   `json:"backup_eligible"`
	BackupState    bool   `json:"backup_state"`
	AAGUID         string `json:"aaguid,omitempty"`
	Attachment     string `json:"attachment,omitempty"`
}

// encodeCredential is the stored form of c.
func encodeCredential(c *webauthn.Credential) (string, error) {
	r := record{PublicKey: c.PublicKey, AttestationType: c.AttestationType, AttestationFormat: c.AttestationFormat,
		Flags: byte(c.Flags.ProtocolValue()), UserVerified: c.Flags.UserVerified, BackupEligible: c.Flags.BackupEligible,
		BackupState: c.Flags.BackupState, Attachment: string(c.Authenticator.Attachment)}
	for _, t := range c.Transport {
		r.Transports = append(r.Transports, string(t))
	}
	if id, err := uuid.FromBytes(c.Authenticator.AAGUID); err == nil {
		r.AAGUID = id.String()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode credential: %w", err)
	}
	return string(b), nil
}

// credentialOf is the credential of a WebAuthn factor, with its counter.
func credentialOf(f store.Factor) (webauthn.Credential, error) {
	var r record
	if err := json.Unmarshal([]byte(f.Credential), &r); err != nil || len(r.PublicKey) == 0 {
		return webauthn.Credential{}, fmt.Errorf("webauthn factor %s: malformed credential", f.ID)
	}
	id, err := base64.RawURLEncoding.DecodeString(f.CredentialID)
	if err != nil || len(id) == 0 {
		return webauthn.Credential{}, fmt.Errorf("webauthn factor %s: malformed credential id", f.ID)
	}
	c := webauthn.Credential{ID: id, PublicKey: r.PublicKey, AttestationType: r.AttestationType,
		AttestationFormat: r.AttestationFormat, Flags: webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(r.Flags)),
		Authenticator: webauthn.Authenticator{SignCount: uint32(f.SignCount),
			Attachment: protocol.AuthenticatorAttachment(r.Attachment)}}
	for _, t := range r.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	if u, err := uuid.Parse(r.AAGUID); err == nil {
		c.Authenticator.AAGUID = u[:]
	}
	return c, nil
}

// MaxNameLen bounds a passkey's name (in characters).
const MaxNameLen = 64

// Name is the name a passkey is listed under: the one the user gave
// (one line, at most MaxNameLen characters, control characters dropped),
// else the name of the passkey provider its AAGUID is known for, else
// "Passkey". Pages escape it like any text.
func Name(given string, aaguid []byte) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(given) {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.In(r, unicode.Cf) {
			continue
		}
		if n == MaxNameLen {
			break
		}
		b.WriteRune(r)
		n++
	}
	if name := strings.TrimSpace(b.String()); name != "" {
		return name
	}
	if id, err := uuid.FromBytes(aaguid); err == nil {
		if name, ok := providers[id.String()]; ok {
			return name
		}
	}
	return "Passkey"
}

// providers names well-known passkey providers by AAGUID (from the
// community list passkeydeveloper/passkey-authenticator-aaguids), only to
// label passkeys on the account page: an AAGUID is the authenticator's
// claim, not proof (tokend asks for no attestation).
var providers = map[string]string{
	"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
	"adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
	"b5397666-4885-aa6b-cebf-e52262a439a2": "Chromium Browser",
	"771b48fd-d3d4-4f74-9232-fc157ab0507a": "Edge on Mac",
	"08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
	"9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
	"6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
	"dd4ec289-e01d-41c9-bb89-70fa845d4bf2": "iCloud Keychain (Managed)",
	"bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
	"d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
	"531126d6-e717-415c-9320-3d9aa6981239": "Dashlane",
	"50726f74-6f6e-5061-7373-50726f746f6e": "Proton Pass",
	"fdb141b2-5d84-443e-8a35-4698c205a502": "KeePassXC",
	"53414d53-554e-4700-0000-000000000000": "Samsung Pass",
}
