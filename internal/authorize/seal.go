package authorize

import (
	"errors"
	"time"

	"github.com/tokend/tokend/internal/formseal"
)

// RequestTTL is how long the login form keeps an authorization request: a
// user who takes longer starts again from the application.
const RequestTTL = 30 * time.Minute

// ErrRequestExpired is a sealed request that is too old, tampered with, or
// bound to another browser.
var ErrRequestExpired = errors.New("the sign-in request expired or is not valid")

// Sealer carries an authorization request across the login form
// (formseal: encrypted, authenticated, bound to the browser), so that the
// form needs no row in the database and cannot be edited or replayed in
// another browser.
type Sealer struct{ Forms formseal.Sealer }

const sealPurpose = "tokend authorization request v1"

// Seal returns r sealed for the browser whose binding value is browser.
func (s Sealer) Seal(r Request, browser string) string {
	v, err := s.Forms.Seal(sealPurpose, r, browser, RequestTTL)
	if err != nil {
		panic("authorize: seal: " + err.Error()) // strings and numbers always marshal, within bounds
	}
	return v
}

// Open returns the request sealed for browser.
func (s Sealer) Open(v, browser string) (Request, error) {
	var r Request
	if err := s.Forms.Open(sealPurpose, v, browser, &r); err != nil {
		return Request{}, ErrRequestExpired
	}
	return r, nil
}
