package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/tokend/tokend/internal/sessions"
)

type sessionJSON struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	ClientID   string    `json:"client_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	UserAgent  string    `json:"user_agent"`
	Current    bool      `json:"current"`
}

// listSessions: GET /auth/sessions.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	c, err := s.bearer(r)
	if err != nil {
		return err
	}
	list, err := s.cfg.Sessions.List(r.Context(), c.Subject, c.SessionID)
	if err != nil {
		return err
	}
	out := make([]sessionJSON, len(list))
	for i, x := range list {
		out[i] = sessionJSON{ID: x.ID, Type: x.Type, ClientID: x.ClientID, CreatedAt: x.CreatedAt.UTC(), LastUsedAt: x.LastUsedAt.UTC(),
			UserAgent: x.UserAgent, Current: x.Current}
	}
	writeJSON(w, http.StatusOK, struct {
		Sessions []sessionJSON `json:"sessions"`
	}{out})
	return nil
}

// revokeSession: DELETE /auth/sessions/{id}.
func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request) error {
	c, err := s.bearer(r)
	if err != nil {
		return err
	}
	err = s.cfg.Sessions.RevokeSession(r.Context(), c.Subject, mux.Vars(r)["id"], meta(r, c.ClientID))
	if errors.Is(err, sessions.ErrNotFound) {
		return notFound("no such session")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revokeOtherSessions: DELETE /auth/sessions.
func (s *Server) revokeOtherSessions(w http.ResponseWriter, r *http.Request) error {
	c, err := s.bearer(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Sessions.RevokeOthers(r.Context(), c.Subject, c.SessionID, meta(r, c.ClientID)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
