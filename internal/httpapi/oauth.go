package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tokend/tokend/internal/audit"
	"github.com/tokend/tokend/internal/secret"
	"github.com/tokend/tokend/internal/sessions"
	"github.com/tokend/tokend/internal/store"
	"github.com/tokend/tokend/internal/tokens"
)

// token: POST /oauth/token (RFC 6749 §4.3 and §6) for native clients.
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	form, err := decodeForm(r)
	if err != nil {
		return err
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		return &Error{Status: http.StatusUnauthorized, Code: codeInvalidClient, Description: "client_id is required"}
	}
	var res *sessions.Result
	switch gt := form.Get("grant_type"); gt {
	case "password":
		if form.Get("username") == "" || form.Get("password") == "" {
			return badRequest("username and password are required")
		}
		res, err = s.cfg.Sessions.Login(r.Context(), sessions.LoginRequest{Email: form.Get("username"), Password: secret.String(form.Get("password")),
			ClientID: clientID, Kind: store.ClientNative, Scope: form.Get("scope"), Meta: meta(r, clientID)})
		if err != nil {
			return sessionErr(err, descBadLogin)
		}
	case "refresh_token":
		if form.Get("refresh_token") == "" {
			return badRequest("refresh_token is required")
		}
		res, err = s.cfg.Sessions.Refresh(r.Context(), sessions.RefreshRequest{Token: form.Get("refresh_token"), Kind: store.ClientNative,
			ClientID: clientID, Scope: form.Get("scope"), Meta: meta(r, clientID)})
		if err != nil {
			return sessionErr(err, descBadRefresh)
		}
	case "":
		return badRequest("grant_type is required")
	default:
		return &Error{Status: http.StatusBadRequest, Code: codeUnsupportedGrant,
			Description: "grant_type must be password or refresh_token"}
	}
	writeToken(w, s.tokenBody(res, true))
	return nil
}

// revoke: POST /oauth/revoke (RFC 7009). It answers 200 for any token,
// valid or not; a refresh token of this client has its session revoked.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	form, err := decodeForm(r)
	if err != nil {
		return err
	}
	clientID := form.Get("client_id")
	if _, err := s.cfg.Sessions.Client(r.Context(), clientID, store.ClientNative); err != nil {
		return sessionErr(err, "")
	}
	tok := form.Get("token")
	if tok == "" {
		return badRequest("token is required")
	}
	switch form.Get("token_type_hint") {
	case "", "refresh_token", "access_token":
	default:
		// RFC 7009 §2.1: an unknown hint is ignored.
	}
	if err := s.cfg.Sessions.Revoke(r.Context(), tok, store.ClientNative, clientID, audit.TokenRevoked, meta(r, clientID)); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// bearer verifies the request's access token and that its session is live.
func (s *Server) bearer(r *http.Request) (*tokens.Claims, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		h := http.Header{}
		h.Set("WWW-Authenticate", `Bearer`)
		return nil, &Error{Status: http.StatusUnauthorized, Code: codeInvalidToken, Description: "missing bearer token", Header: h}
	}
	scheme, raw, ok := strings.Cut(vals[0], " ")
	if len(vals) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, invalidToken("malformed Authorization header")
	}
	// Only tokens meant for tokend itself (RFC 9068 §4): a token minted
	// for another API must not read the account or end its sessions.
	claims, err := s.cfg.Verifier.Verify(strings.TrimSpace(raw), s.cfg.Issuer)
	if err != nil {
		return nil, invalidToken("the access token is invalid or expired, or not meant for this server")
	}
	if claims.SessionID == "" {
		return nil, invalidToken("the access token names no session")
	}
	active, err := s.cfg.Sessions.Active(r.Context(), claims.SessionID)
	if err != nil {
		return nil, err
	}
	if !active {
		return nil, invalidToken("the session of this access token has ended")
	}
	return claims, nil
}

// userinfo: GET /userinfo.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) error {
	claims, err := s.bearer(r)
	if err != nil {
		return err
	}
	u, err := s.cfg.Users.ByID(r.Context(), claims.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled()) {
		return invalidToken("the account of this access token is not active")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Sub   string `json:"sub"`
		Email string `json:"email"`
	}{u.ID, u.Email})
	return nil
}
