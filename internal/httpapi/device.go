package httpapi

import (
	"net/http"
	"time"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/csrf"
)

// The device cookie names a browser to the brute-force limits: once an
// account has signed in from a browser, that browser is trusted for it
// (throttle.LoginRules), so an attacker guessing the account's password
// elsewhere, or failing behind the same address, does not lock the owner's
// browser out. It carries no authority of its own: a made-up value is
// trusted for no account.
const (
	deviceCookie = "__Host-tokend_device"
	deviceMaxAge = 400 * 24 * time.Hour // the longest browsers keep a cookie
)

// deviceOf is the request's device cookie, "" when it has none or one not
// of the form tokend issues.
func deviceOf(r *http.Request) string {
	c, err := r.Cookie(deviceCookie)
	if err != nil || !csrf.WellFormed(c.Value) {
		return ""
	}
	return c.Value
}

// withDevice is m with the browser's device cookie, given one first when
// it has none (before the password is checked, so that a success marks
// this value trusted for the account).
func (s *Server) withDevice(w http.ResponseWriter, r *http.Request, m audit.Meta) audit.Meta {
	if m.Device = deviceOf(r); m.Device != "" {
		return m
	}
	m.Device = csrf.NewCookie()
	http.SetCookie(w, hostCookie(deviceCookie, m.Device, int(deviceMaxAge/time.Second)))
	return m
}
