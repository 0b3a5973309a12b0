package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/clients"
	"github.com/tokend/tokend/internal/clock"
	"github.com/tokend/tokend/internal/config"
	"github.com/tokend/tokend/internal/dbtest"
	"github.com/tokend/tokend/internal/keys"
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

// TestMasterKeyRotationUnderLoad: instances on one Postgres database keep
// refreshing through every step of the procedure, with the rotation
// running while requests are in flight: no request fails. What a step-1
// instance seals after the rotation (a signing key, a mail) is opened by
// the new instances and re-sealed by the second run; the last instance has
// only the new key.
func TestMasterKeyRotationUnderLoad(t *testing.T) {
	u := dbtest.PostgresURL(t)
	ctx := context.Background()
	c := clock.NewFake(tokendtest.T0)
	old, next := masterkey.Generate(), masterkey.Generate()
	const issuer = "https://auth.example.test"
	same := func(cfg *config.Config) {
		cfg.Issuer, cfg.Audience = issuer, issuer
		cfg.SigningAlg = keys.EdDSA
		cfg.RefreshRateLimit = 0 // the fake clock stands still
	}
	start := func(current, previous *masterkey.Key) *tokendtest.Server {
		return tokendtest.Start(t, tokendtest.Options{Store: dbtest.OpenPostgresURL(t, u), Clock: c, MasterKey: current,
			PreviousMasterKey: previous, Configure: same})
	}
	admin := dbtest.OpenPostgresURL(t, u)
	rotate := func(want int) {
		counts, err := (&masterkey.Keyring{Current: next, Previous: old}).Rotate(ctx, admin, c.Now())
		if err != nil {
			t.Error(err)
			return
		}
		if counts[store.SealedMail] != want {
			t.Errorf("re-sealed %v, want %d mails", counts, want)
		}
	}

	// Step 0 sets the database up with the old key; step 1 adds the new
	// one as a decrypt-only key.
	start(old, nil).Close()
	a, b := start(old, next), start(old, next)
	const workers, steps = 6, 15
	tokens := make([]string, workers)
	for w := range workers {
		email := fmt.Sprintf("mk%d@example.com", w)
		createUser(t, a, email)
		tokens[w] = nativeLogin(t, a, email, "").RefreshToken
	}
	var requests, failures atomic.Int64
	// phase refreshes every worker's token steps times, hopping between
	// insts, and runs during (when not nil) once every worker is under way.
	phase := func(insts []*tokendtest.Server, during func()) {
		var wg, begun sync.WaitGroup
		begun.Add(workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range steps {
					s := insts[(w+i)%len(insts)]
					resp, err := http.Post(s.URL+"/oauth/token", "application/x-www-form-urlencoded", strings.NewReader(url.Values{
						"grant_type": {"refresh_token"}, "refresh_token": {tokens[w]}, "client_id": {"mobile"}}.Encode()))
					requests.Add(1)
					if err != nil {
						failures.Add(1)
						t.Errorf("worker %d: %v", w, err)
						return
					}
					var tr tokenResp
					err = json.NewDecoder(resp.Body).Decode(&tr)
					resp.Body.Close()
					if resp.StatusCode != 200 || err != nil {
						failures.Add(1)
						t.Errorf("worker %d step %d: %d %v", w, i, resp.StatusCode, err)
						return
					}
					tokens[w] = tr.RefreshToken
					if i == 1 {
						begun.Done()
					}
				}
			}()
		}
		if during != nil {
			begun.Wait()
			during()
		}
		wg.Wait()
	}

	// Step 2 runs while the step-1 instances serve.
	phase([]*tokendtest.Server{a, b}, func() { rotate(0) })
	// A step-1 instance still seals with the old key: a mail, a signing key.
	forgot(t, a, "mk0@example.com")
	if _, err := a.Keys.Rotate(ctx, keys.EdDSA, keys.RotateOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	// Step 3: the new configuration joins while the old instances serve;
	// step 4's second run happens under load.
	c1 := start(next, old)
	for _, s := range []*tokendtest.Server{a, b, c1} {
		if err := s.Keys.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	phase([]*tokendtest.Server{a, b, c1}, func() { rotate(1) })
	a.Close()
	b.Close()
	st, err := (&masterkey.Keyring{Current: next, Previous: old}).Status(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if masterkey.Total(st.Previous)+masterkey.Total(st.Unreadable) != 0 {
		t.Fatalf("drop-previous would refuse: %+v", st)
	}
	// Step 4 done: the new key alone.
	d := start(next, nil)
	phase([]*tokendtest.Server{c1, d}, nil)
	if n := runOutbox(t, d); n != 1 {
		t.Fatalf("the mail queued by a step-1 instance after the rotation: %d delivered", n)
	}
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failures.Load(), requests.Load())
	}
	t.Logf("%d refreshes, none failed", requests.Load())
}
