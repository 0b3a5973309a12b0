package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/mailtest"
	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokendtest"
	"github.com/tokend/tokend/internal/totp"
)

// TestMasterKeyRotation follows the README's procedure on one database, on
// both stores: an instance on the old key issues a refresh token, a client
// secret, a TOTP factor with recovery codes and a queued reset mail; an
// instance gets the new key as a decrypt-only extra; the rotation runs;
// then an instance started with only the new key signs and verifies, sends
// the queued mail through SMTP (and its link resets the password), accepts
// the TOTP code, the recovery code, the client secret and the refresh
// token issued before the rotation.
func TestMasterKeyRotation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, b dbtest.Backend) {
		ctx := context.Background()
		db := b.Open(t)
		c := clock.NewFake(tokendtest.T0)
		ms := mailtest.Start(t, mailtest.Options{})
		const issuer = "https://auth.example.test"
		same := func(cfg *config.Config) { cfg.Issuer, cfg.Audience = issuer, issuer }
		start := func(current, previous *masterkey.Key) *tokendtest.Server {
			return tokendtest.Start(t, tokendtest.Options{Store: db, Clock: c, MasterKey: current, PreviousMasterKey: previous,
				SMTPURL: ms.URL(), MailTLS: ms.ClientTLS(), Configure: same})
		}
		old, next := masterkey.Generate(), masterkey.Generate()

		s1 := start(old, nil)
		const email = "rotate@example.com"
		u := createUser(t, s1, email)
		refresh := nativeLogin(t, s1, email, "").RefreshToken
		_, clientSecret, err := s1.Clients.Create(ctx, clients.Spec{ID: "svc", Kind: store.ClientServer, Grants: []string{"client_credentials"}}, c.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s1.AddSecret("client secret", clientSecret.Reveal())
		totpSecret := totp.NewSecret()
		codes, err := s1.Factors.ConfirmTOTP(ctx, u.ID, totpSecret, totp.Code(totpSecret, totp.Step(c.Now())), audit.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		forgot(t, s1, email) // queued, not sent: nothing runs the outbox yet
		if pending(t, s1) != 1 {
			t.Fatal("the reset mail is not queued")
		}
		s1.Close()

		// Step 1: an instance that still seals with the old key and can
		// open what the new key seals.
		s2 := start(old, next)
		refresh = refreshed(t, nativeRefresh(t, s2, refresh)).RefreshToken

		// Step 2: the rotation.
		ring := &masterkey.Keyring{Current: next, Previous: old}
		counts, err := ring.Rotate(ctx, db, c.Now())
		if err != nil {
			t.Fatal(err)
		}
		if counts[store.SealedMail] != 1 || counts[store.SealedTOTP] != 1 || counts[store.SealedSigningKey] < 2 ||
			counts[store.SealedDataKey] != len(masterkey.DataKeyPurposes) || counts[store.SealedCheck] != 1 {
			t.Fatalf("re-sealed %v", counts)
		}
		// The step-1 instance keeps serving through the rotation.
		refresh = refreshed(t, nativeRefresh(t, s2, refresh)).RefreshToken
		s2.Close()

		// Step 3 and beyond: only the new key.
		if err := (&masterkey.Keyring{Current: old}).Check(ctx, db); err == nil {
			t.Fatal("an instance with only the old key would start")
		}
		s3 := start(next, nil)
		tr := refreshed(t, nativeRefresh(t, s3, refresh))
		if _, err := s3.Verifier.Verify(tr.AccessToken, issuer); err != nil {
			t.Fatalf("an access token signed after the rotation: %v", err)
		}
		if n := runOutbox(t, s3); n != 1 {
			t.Fatalf("delivered %d mails", n)
		}
		token := mailtest.Token(t, mailtest.Parse(t, ms.Wait(1, 10*time.Second)[0].Data).Link(t))
		if r := resetPassword(t, s3, token, "a new long password 42"); r.Status/100 != 2 {
			t.Fatalf("reset with the mailed link: %d %s", r.Status, r.Body)
		}
		c.Advance(time.Minute)
		if err := s3.Factors.CheckTOTP(ctx, u.ID, totp.Code(totpSecret, totp.Step(c.Now()))); err != nil {
			t.Fatalf("TOTP after the rotation: %v", err)
		}
		if err := s3.Factors.CheckRecoveryCode(ctx, u.ID, codes[0].Reveal(), audit.Meta{}); err != nil {
			t.Fatalf("recovery code after the rotation: %v", err)
		}
		req := s3.NewRequest(t, http.MethodPost, "/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", url.QueryEscape(clientSecret.Reveal()))
		if r := s3.Do(t, req); r.Status != 200 {
			t.Fatalf("client secret after the rotation: %d %s", r.Status, r.Body)
		}
		st, err := (&masterkey.Keyring{Current: next}).Status(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if masterkey.Total(st.Previous)+masterkey.Total(st.Unreadable) != 0 {
			t.Fatalf("values left under the old key: %+v", st)
		}
	})
}
