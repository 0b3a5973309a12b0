package passkeys

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/login"
	"github.com/tokend/tokend/internal/oauth"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/store"
)

// rejected wraps a library error as ErrRejected; its text goes to the logs
// only.
func rejected(what string, err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: %s: %s %s", ErrRejected, what, pe.Details, pe.DevInfo)
	}
	return fmt.Errorf("%w: %s: %v", ErrRejected, what, err)
}

// Register finishes a registration ceremony c of the signed-in user u with
// the browser's answer (the JSON of a PublicKeyCredential from
// navigator.credentials.create) and adds the passkey, named name (see Name),
// with the account's recovery codes when it had none: they are returned, to
// show once. The challenge is spent whatever the outcome.
func (s *Service) Register(ctx context.Context, u store.User, c Ceremony, name, response string, m audit.Meta) ([]secret.String, error) {
	if c.Kind != KindRegister || !bytes.Equal(c.Session.UserID, []byte(u.ID)) {
		return nil, fmt.Errorf("%w: a ceremony of another kind or account", ErrRejected)
	}
	if err := s.answered(ctx, c); err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(response))
	if err != nil {
		return nil, rejected("parse the new credential", err)
	}
	_, creds, err := s.passkeysOf(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	cred, err := s.wa.CreateCredential(&user{id: u.ID, name: u.Email, creds: creds}, c.Session, parsed)
	if err != nil {
		return nil, rejected("verify the new credential", err)
	}
	if !cred.Flags.UserVerified {
		return nil, fmt.Errorf("%w: the authenticator did not verify the user", ErrRejected)
	}
	stored, err := encodeCredential(cred)
	if err != nil {
		return nil, err
	}
	f := store.Factor{ID: uuid.NewString(), UserID: u.ID, Kind: store.FactorWebAuthn, Name: Name(name, cred.Authenticator.AAGUID),
		CredentialID: base64.RawURLEncoding.EncodeToString(cred.ID), Credential: stored,
		SignCount: int64(cred.Authenticator.SignCount), CreatedAt: s.cfg.Now()}
	codes, err := s.cfg.Enroll.AddPasskey(ctx, f, m)
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, ErrKnownCredential
	}
	if err != nil {
		return nil, fmt.Errorf("add passkey: %w", err)
	}
	return codes, nil
}

// Step is the second sign-in step of a passkey (factors.StepWebAuthn): its
// input is EncodeInput of the ceremony BeginSecondStep began for the user
// and the browser's answer.
type Step struct{ Passkeys *Service }

var _ login.Step = Step{}

// Check implements login.Step.
func (st Step) Check(ctx context.Context, userID, input string, m audit.Meta) ([]string, error) {
	in, err := decodeInput(input)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", login.ErrWrongFactor, err)
	}
	if in.Ceremony.Kind != KindSecond || !bytes.Equal(in.Ceremony.Session.UserID, []byte(userID)) {
		return nil, fmt.Errorf("%w: %w: a ceremony of another kind or account", login.ErrWrongFactor, ErrRejected)
	}
	_, amr, err := st.Passkeys.assert(ctx, in, m)
	if errors.Is(err, ErrRejected) {
		return nil, fmt.Errorf("%w: %w", login.ErrWrongFactor, err)
	}
	return amr, err
}

// VerifyPasskey implements login.PasskeyVerifier: input is EncodeInput of
// a ceremony BeginPasskey began and the browser's answer. It returns the
// passkey's user (its user handle, which must be the user the credential
// was registered to) and the methods a user-verified passkey proves alone:
// AMR and "mfa", since the passkey is something the user has and the
// authenticator's verification of the user (a PIN, a biometric) something
// they know or are. A passkey that is not accepted is
// login.ErrWrongFactor (and ErrRejected).
func (s *Service) VerifyPasskey(ctx context.Context, input string, m audit.Meta) (string, []string, error) {
	in, err := decodeInput(input)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", login.ErrWrongFactor, err)
	}
	if in.Ceremony.Kind != KindPasskey {
		return "", nil, fmt.Errorf("%w: %w: a ceremony of another kind", login.ErrWrongFactor, ErrRejected)
	}
	f, amr, err := s.assert(ctx, in, m)
	if errors.Is(err, ErrRejected) {
		return "", nil, fmt.Errorf("%w: %w", login.ErrWrongFactor, err)
	}
	if err != nil {
		return "", nil, err
	}
	return f.UserID, append(amr, oauth.AMRMFA), nil
}

// assert checks an assertion (navigator.credentials.get's answer) for the
// ceremony, spends its challenge, and records the credential's use: its new
// counter and flags. A counter that does not move forward (while either is
// not zero) is a cloned authenticator: refused and audited.
func (s *Service) assert(ctx context.Context, in Input, m audit.Meta) (store.Factor, []string, error) {
	if err := s.answered(ctx, in.Ceremony); err != nil {
		return store.Factor{}, nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(in.Response)
	if err != nil {
		return store.Factor{}, nil, rejected("parse the assertion", err)
	}
	f, err := s.cfg.Store.FactorByCredential(ctx, base64.RawURLEncoding.EncodeToString(parsed.RawID))
	if errors.Is(err, store.ErrNotFound) {
		return store.Factor{}, nil, fmt.Errorf("%w: an unknown credential", ErrRejected)
	}
	if err != nil {
		return store.Factor{}, nil, fmt.Errorf("find the credential: %w", err)
	}
	// The account's passkeys: go-webauthn checks that the ceremony's
	// allowed credentials are all the account's.
	_, creds, err := s.passkeysOf(ctx, f.UserID)
	if err != nil {
		return store.Factor{}, nil, err
	}
	owner := &user{id: f.UserID, creds: creds}
	var got *webauthn.Credential
	if in.Ceremony.Kind == KindPasskey {
		// The user handle names the account; it must be the one the
		// credential was registered to (go-webauthn compares them).
		_, got, err = s.wa.ValidatePasskeyLogin(func(_, handle []byte) (webauthn.User, error) {
			if !bytes.Equal(handle, []byte(f.UserID)) {
				return nil, errors.New("the user handle is not the credential's account")
			}
			return owner, nil
		}, in.Ceremony.Session, parsed)
	} else {
		got, err = s.wa.ValidateLogin(owner, in.Ceremony.Session, parsed)
	}
	if err != nil {
		return store.Factor{}, nil, rejected("verify the assertion", err)
	}
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return store.Factor{}, nil, fmt.Errorf("%w: the authenticator did not verify the user", ErrRejected)
	}
	count := parsed.Response.AuthenticatorData.Counter
	if got.Authenticator.CloneWarning {
		return store.Factor{}, nil, s.cloned(ctx, f, count, m)
	}
	stored, err := encodeCredential(got)
	if err != nil {
		return store.Factor{}, nil, err
	}
	ok, err := s.cfg.Store.UseWebAuthn(ctx, f.CredentialID, int64(count), stored, s.cfg.Now())
	if err != nil {
		return store.Factor{}, nil, fmt.Errorf("record the passkey's use: %w", err)
	}
	if !ok {
		// Another instance took this counter value first: the same
		// assertion twice, or a clone.
		return store.Factor{}, nil, s.cloned(ctx, f, count, m)
	}
	return f, AMR(got.Flags.BackupEligible), nil
}

// cloned audits an assertion whose counter did not move forward and
// refuses it.
func (s *Service) cloned(ctx context.Context, f store.Factor, count uint32, m audit.Meta) error {
	ev := audit.New(audit.FactorCloned, m, f.UserID, s.cfg.Now(), map[string]string{"factor": f.ID, "kind": f.Kind,
		"stored_count": strconv.FormatInt(f.SignCount, 10), "presented_count": strconv.FormatUint(uint64(count), 10)})
	if err := s.cfg.Store.AppendAudit(ctx, *ev); err != nil {
		return fmt.Errorf("audit a cloned passkey: %w", err)
	}
	return fmt.Errorf("%w: the signature counter did not move forward (%d, stored %d): a cloned authenticator",
		ErrRejected, count, f.SignCount)
}

// AMR is what a user-verified passkey proves (RFC 8176): "hwk", proof of
// possession of a key bound to its device, or "swk" for a synced passkey
// (backup eligible: the key leaves the device, held in software by a
// provider), and "user", the authenticator's test that the user is present
// and verified (RFC 8176 cites WebAuthn for it). The RFC's "pin", "fpt" or
// "face" would say how the user was verified, which the UV flag does not
// tell.
func AMR(backupEligible bool) []string {
	if backupEligible {
		return []string{oauth.AMRSoftwareKey, oauth.AMRUser}
	}
	return []string{oauth.AMRHardwareKey, oauth.AMRUser}
}
