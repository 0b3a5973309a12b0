// Package passkeystest is a software WebAuthn authenticator and client for
// tests: it answers the options tokend's pages carry (the JSON of
// navigator.credentials.create and .get) as a browser with a platform
// authenticator would (resident ES256 keys, user verification, "none"
// attestation), written from the WebAuthn and CTAP2 specifications
// independently of go-webauthn, which tokend verifies with. Its knobs make
// it misbehave: another origin or RP ID, no user verification, a counter set
// back (a clone).
package passkeystest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// Authenticator is a platform authenticator behind a browser at Origin.
type Authenticator struct {
	// Origin is what the browser reports in clientDataJSON.
	Origin string
	// RPID, when set, is hashed into the authenticator data instead of the
	// options' RP ID (a phishing site's authenticator would).
	RPID string
	// BackupEligible makes synced passkeys (BE and BS set).
	BackupEligible bool
	// NoUserVerification answers without the UV flag.
	NoUserVerification bool
	// NoCounter keeps every signature counter at 0 (as synced passkeys do).
	NoCounter bool
	// AAGUID is the authenticator model's id.
	AAGUID [16]byte

	creds []*Credential
}

// Credential is a resident credential.
type Credential struct {
	ID             []byte
	Key            *ecdsa.PrivateKey
	RPID           string
	UserHandle     []byte
	SignCount      uint32
	BackupEligible bool
}

// Credentials are the authenticator's credentials (to inspect, or to clone
// with Add).
func (a *Authenticator) Credentials() []*Credential { return a.creds }

// Add stores a copy of c (a clone of another authenticator's credential).
func (a *Authenticator) Add(c Credential) { a.creds = append(a.creds, &c) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

type descriptor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		User struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
		Params []struct {
			Type string `json:"type"`
			Alg  int    `json:"alg"`
		} `json:"pubKeyCredParams"`
		Exclude   []descriptor `json:"excludeCredentials"`
		Selection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge        string       `json:"challenge"`
		RPID             string       `json:"rpId"`
		Allow            []descriptor `json:"allowCredentials"`
		UserVerification string       `json:"userVerification"`
	} `json:"publicKey"`
}

// clientData is CollectedClientData (WebAuthn §5.8.1).
func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, challenge, a.Origin, false})
	return b
}

func (a *Authenticator) flags(be bool) byte {
	f := byte(flagUP)
	if !a.NoUserVerification {
		f |= flagUV
	}
	if be {
		f |= flagBE | flagBS
	}
	return f
}

func (a *Authenticator) rpHash(rpID string) []byte {
	if a.RPID != "" {
		rpID = a.RPID
	}
	sum := sha256.Sum256([]byte(rpID))
	return sum[:]
}

// ErrInvalidState is an excluded credential (the authenticator has one for
// this account already); ErrNotAllowed, no credential to answer with.
var (
	ErrInvalidState = errors.New("InvalidStateError")
	ErrNotAllowed   = errors.New("NotAllowedError")
)

// Create answers navigator.credentials.create(options) with the JSON a
// page script posts (RegistrationResponseJSON).
func (a *Authenticator) Create(options string) (string, error) {
	var o creationOptions
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		return "", fmt.Errorf("creation options: %w", err)
	}
	pk := o.PublicKey
	if !slices.ContainsFunc(pk.Params, func(p struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	}) bool {
		return p.Type == "public-key" && p.Alg == -7
	}) {
		return "", errors.New("NotSupportedError: ES256 not offered")
	}
	for _, ex := range pk.Exclude {
		id, _ := unb64(ex.ID)
		for _, c := range a.creds {
			if c.RPID == pk.RP.ID && string(c.ID) == string(id) {
				return "", ErrInvalidState
			}
		}
	}
	handle, err := unb64(pk.User.ID)
	if err != nil {
		return "", fmt.Errorf("user.id: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	// A resident key replaces the account's earlier one on this
	// authenticator (CTAP2 §6.1.2).
	a.creds = slices.DeleteFunc(a.creds, func(c *Credential) bool {
		return c.RPID == pk.RP.ID && string(c.UserHandle) == string(handle)
	})
	cred := &Credential{ID: id, Key: key, RPID: pk.RP.ID, UserHandle: handle, BackupEligible: a.BackupEligible}
	a.creds = append(a.creds, cred)

	cose, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		return "", err
	}
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return "", err
	}
	coseKey, err := cose.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	if err != nil {
		return "", err
	}
	auth := append(a.rpHash(pk.RP.ID), a.flags(cred.BackupEligible)|flagAT)
	auth = binary.BigEndian.AppendUint32(auth, cred.SignCount)
	auth = append(auth, a.AAGUID[:]...)
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(id)))
	auth = append(auth, id...)
	auth = append(auth, coseKey...)
	att, err := cose.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth})
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(map[string]any{"id": b64(id), "rawId": b64(id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64(a.clientData("webauthn.create", pk.Challenge)),
			"attestationObject": b64(att), "transports": []string{"internal"}}})
	return string(out), err
}

// Get answers navigator.credentials.get(options) with the JSON a page
// script posts (AuthenticationResponseJSON), signing with the first of its
// credentials for the RP that the options allow.
func (a *Authenticator) Get(options string) (string, error) {
	var o requestOptions
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		return "", fmt.Errorf("request options: %w", err)
	}
	pk := o.PublicKey
	var cred *Credential
	for _, c := range a.creds {
		if c.RPID != pk.RPID {
			continue
		}
		if len(pk.Allow) > 0 && !slices.ContainsFunc(pk.Allow, func(d descriptor) bool { return d.ID == b64(c.ID) }) {
			continue
		}
		cred = c
		break
	}
	if cred == nil {
		return "", ErrNotAllowed
	}
	return a.Sign(cred, pk.Challenge, pk.RPID)
}

// Sign answers a challenge with cred, as Get does, for the RP rpID.
func (a *Authenticator) Sign(cred *Credential, challenge, rpID string) (string, error) {
	if !a.NoCounter {
		cred.SignCount++
	}
	auth := append(a.rpHash(rpID), a.flags(cred.BackupEligible))
	auth = binary.BigEndian.AppendUint32(auth, cred.SignCount)
	cd := a.clientData("webauthn.get", challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(slices.Clone(auth), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, cred.Key, digest[:])
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(map[string]any{"id": b64(cred.ID), "rawId": b64(cred.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64(cd), "authenticatorData": b64(auth), "signature": b64(sig),
			"userHandle": b64(cred.UserHandle)}})
	return string(out), err
}
