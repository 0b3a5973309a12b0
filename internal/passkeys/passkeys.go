// Package passkeys runs tokend's WebAuthn ceremonies (W3C Web
// Authentication, Level 3) with go-webauthn: registering a passkey as a
// second factor of an account, checking one as the second step after the
// password, and signing in with one alone (a discoverable credential with
// user verification).
//
// tokend is the relying party: its RP ID is TOKEND_ISSUER's host and the
// only origin it accepts is the issuer's origin. A ceremony's state (the
// challenge, the user, the credentials allowed) is a Ceremony that the caller
// carries across the page sealed (formseal, bound to the browser), so that
// any instance finishes what another began; each challenge is answered once,
// across every instance (store.FactorStore.UseChallenge). Credentials are
// stored as factors (store.FactorWebAuthn) with their public key, flags and
// signature counter; a counter that does not move forward is a cloned
// authenticator, refused and audited.
package passkeys

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
)

// ErrUnavailable: WebAuthn needs a relying party ID that is a domain name
// (an IP address is not one) and a secure context (https, or http on
// localhost).
var ErrUnavailable = errors.New("passkeys need an issuer whose host is a domain name, not an IP address, " +
	"served over https (or http on localhost)")

// ErrRejected is a ceremony whose answer is not accepted: malformed, for
// another origin or RP ID, without user verification, a challenge answered
// already or expired, an unknown credential, a bad signature, or a cloned
// authenticator. Its wrapped text says which, for the logs; users see one
// message.
var ErrRejected = errors.New("the passkey was not accepted")

// ErrKnownCredential: the credential is registered already (to this
// account or another).
var ErrKnownCredential = errors.New("this passkey is registered already")

// ErrNoPasskey: the account has no passkey to ask for.
var ErrNoPasskey = errors.New("the account has no passkey")

// CeremonyTTL is how long a ceremony may take, from its options to its
// answer (the sealed state's lifetime, and the browser's timeout).
const CeremonyTTL = 10 * time.Minute

// Kinds of ceremonies.
const (
	KindRegister = "register" // a new passkey for a signed-in account
	KindSecond   = "second"   // the second step after the password
	KindPasskey  = "passkey"  // a sign-in with a passkey alone
)

// Ceremony is a ceremony's state between its options and the
// authenticator's answer. Nothing in it is secret (the challenge is sent to
// the browser), but it must not be altered: callers seal it (formseal).
type Ceremony struct {
	Kind    string               `json:"k"`
	Session webauthn.SessionData `json:"s"`
}

// Store is what the ceremonies read and write (store.Store).
type Store interface {
	Factors(ctx context.Context, userID string) ([]store.Factor, error)
	FactorByCredential(ctx context.Context, credentialID string) (store.Factor, error)
	UseWebAuthn(ctx context.Context, credentialID string, signCount int64, credential string, at time.Time) (bool, error)
	UseChallenge(ctx context.Context, hash string, expires time.Time) error
	AppendAudit(ctx context.Context, ev store.AuditEvent) error
}

// Enroller adds a passkey to an account, with recovery codes when the
// account has none (factors.Service).
type Enroller interface {
	AddPasskey(ctx context.Context, f store.Factor, m audit.Meta) ([]secret.String, error)
}

// Config configures a Service.
type Config struct {
	// Issuer is TOKEND_ISSUER: the RP ID is its host, the origin its
	// scheme, host and port.
	Issuer string
	// Name is the relying party's name authenticators show (the brand).
	Name   string
	Store  Store
	Enroll Enroller
	Now    func() time.Time
}

// Service runs the ceremonies.
type Service struct {
	cfg    Config
	wa     *webauthn.WebAuthn
	rpID   string
	origin string
}

// New returns a Service for the issuer, or ErrUnavailable when its host
// cannot be a relying party.
func New(c Config) (*Service, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Name == "" {
		c.Name = "tokend"
	}
	rpID, origin, err := RelyingParty(c.Issuer)
	if err != nil {
		return nil, err
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          rpID,
		RPDisplayName: c.Name,
		RPOrigins:     []string{origin},
		// Passkeys: a discoverable credential, and the authenticator's own
		// check of the user (PIN or biometric), which makes a passkey alone
		// two factors.
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		// No attestation: tokend does not restrict authenticator models, and
		// asking for attestation only adds a prompt.
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return &Service{cfg: c, wa: wa, rpID: rpID, origin: origin}, nil
}

// RelyingParty derives the RP ID (the host) and the origin from the issuer,
// or ErrUnavailable: browsers refuse an IP address as an RP ID, and WebAuthn
// only in a secure context (https; http on localhost).
func RelyingParty(issuer string) (rpID, origin string, err error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("issuer %q: %w", issuer, ErrUnavailable)
	}
	host := strings.ToLower(u.Hostname())
	local := host == "localhost" || strings.HasSuffix(host, ".localhost")
	if net.ParseIP(host) != nil || (u.Scheme != "https" && !(u.Scheme == "http" && local)) {
		return "", "", ErrUnavailable
	}
	return host, strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// RPID is the relying party ID.
func (s *Service) RPID() string { return s.rpID }

// Origin is the one origin the ceremonies accept.
func (s *Service) Origin() string { return s.origin }

// user is an account as go-webauthn sees it: its user handle is the user's
// id (never the email, which would reach every authenticator and change).
type user struct {
	id, name string
	creds    []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return []byte(u.id) }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// passkeysOf returns the account's WebAuthn factors and their credentials.
func (s *Service) passkeysOf(ctx context.Context, userID string) ([]store.Factor, []webauthn.Credential, error) {
	fs, err := s.cfg.Store.Factors(ctx, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("list factors: %w", err)
	}
	var keys []store.Factor
	var creds []webauthn.Credential
	for _, f := range fs {
		if f.Kind != store.FactorWebAuthn {
			continue
		}
		c, err := credentialOf(f)
		if err != nil {
			return nil, nil, err
		}
		keys, creds = append(keys, f), append(creds, c)
	}
	return keys, creds, nil
}

// BeginRegistration returns the options of navigator.credentials.create
// (JSON, {"publicKey": …}) for a new passkey of u, and the ceremony to carry
// to FinishRegistration. The account's passkeys are excluded, so an
// authenticator does not register twice.
func (s *Service) BeginRegistration(ctx context.Context, u store.User) ([]byte, Ceremony, error) {
	_, creds, err := s.passkeysOf(ctx, u.ID)
	if err != nil {
		return nil, Ceremony{}, err
	}
	exclude := make([]protocol.CredentialDescriptor, len(creds))
	for i, c := range creds {
		exclude[i] = c.Descriptor()
	}
	opts, sd, err := s.wa.BeginRegistration(&user{id: u.ID, name: u.Email}, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, Ceremony{}, fmt.Errorf("begin registration: %w", err)
	}
	return s.begun(KindRegister, opts, sd)
}

// BeginSecondStep returns the options of navigator.credentials.get for the
// passkeys of the user userID (allowCredentials), with user verification,
// and the ceremony; ErrNoPasskey when the account has none.
func (s *Service) BeginSecondStep(ctx context.Context, userID string) ([]byte, Ceremony, error) {
	_, creds, err := s.passkeysOf(ctx, userID)
	if err != nil {
		return nil, Ceremony{}, err
	}
	if len(creds) == 0 {
		return nil, Ceremony{}, ErrNoPasskey
	}
	opts, sd, err := s.wa.BeginLogin(&user{id: userID, creds: creds})
	if err != nil {
		return nil, Ceremony{}, fmt.Errorf("begin login: %w", err)
	}
	return s.begun(KindSecond, opts, sd)
}

// BeginPasskey returns the options of navigator.credentials.get for a
// sign-in with a passkey alone: no allowCredentials (the authenticator
// offers the passkeys it has for tokend), user verification required.
func (s *Service) BeginPasskey() ([]byte, Ceremony, error) {
	opts, sd, err := s.wa.BeginDiscoverableLogin()
	if err != nil {
		return nil, Ceremony{}, fmt.Errorf("begin discoverable login: %w", err)
	}
	return s.begun(KindPasskey, opts, sd)
}

func (s *Service) begun(kind string, opts any, sd *webauthn.SessionData) ([]byte, Ceremony, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, Ceremony{}, fmt.Errorf("encode webauthn options: %w", err)
	}
	return b, Ceremony{Kind: kind, Session: *sd}, nil
}

// answered records c's challenge as answered: a second answer, on any
// instance, is refused.
func (s *Service) answered(ctx context.Context, c Ceremony) error {
	if len(c.Session.Challenge) < 16 {
		return fmt.Errorf("%w: the ceremony has no challenge", ErrRejected)
	}
	sum := sha256.Sum256([]byte("webauthn challenge\x00" + c.Session.Challenge))
	err := s.cfg.Store.UseChallenge(ctx, base64.RawURLEncoding.EncodeToString(sum[:]), s.cfg.Now().Add(CeremonyTTL+time.Minute))
	if errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("%w: the challenge was answered already", ErrRejected)
	}
	return err
}

// Input is what a second step or a passkey sign-in checks: the ceremony
// (opened from the page's sealed form by the caller, so trusted) and the
// browser's answer (untrusted).
type Input struct {
	Ceremony Ceremony        `json:"c"`
	Response json.RawMessage `json:"r"`
}

// EncodeInput is the input of login.Step.Check and login.Service.Passkey
// for the ceremony c and the browser's answer response (the JSON the page
// script posts).
func EncodeInput(c Ceremony, response string) string {
	if !json.Valid([]byte(response)) {
		response = "null"
	}
	b, _ := json.Marshal(Input{Ceremony: c, Response: json.RawMessage(response)})
	return string(b)
}

func decodeInput(input string) (Input, error) {
	var in Input
	if err := json.Unmarshal([]byte(input), &in); err != nil || len(in.Response) == 0 || string(in.Response) == "null" {
		return Input{}, fmt.Errorf("%w: no answer from the browser", ErrRejected)
	}
	return in, nil
}
