package prune

import (
	"fmt"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// Pruner is one kind of prunable data: the rows of Target whose column is
// before Cutoff(now).
type Pruner struct {
	// Kind names the data in logs, metrics and `tokend prune`'s output.
	Kind   string
	Target store.PruneTarget
	// Cutoff returns the time before which rows go.
	Cutoff func(now time.Time) time.Time
}

// Grace is how long expired data is kept past its expiry before pruning:
// long enough that no instance, whatever its clock skew or cache, can still
// be acting on it, and that a replayed authorization code is still
// recognised as used (RFC 6749 §4.1.2) for a day after it expired.
const Grace = 24 * time.Hour

// Options choose the retention of the default pruners.
type Options struct {
	// AuditRetention is how long audit events are kept (0: forever).
	AuditRetention time.Duration
}

// Defaults returns the pruners of tokend's schema, in the order a pass runs
// them: refresh tokens before their families (deleting a family cascades to
// its tokens, so few are left to cascade by then).
func Defaults(o Options) []Pruner {
	expired := func(now time.Time) time.Time { return now.Add(-Grace) }
	ps := []Pruner{
		{Kind: "refresh_tokens", Target: store.PruneTarget{Table: "refresh_tokens", Key: "token_hash", Column: "expires_at"}, Cutoff: expired},
		{Kind: "refresh_families_expired", Target: store.PruneTarget{Table: "refresh_families", Key: "id", Column: "expires_at"}, Cutoff: expired},
		{Kind: "refresh_families_revoked", Target: store.PruneTarget{Table: "refresh_families", Key: "id", Column: "revoked_at"}, Cutoff: expired},
		{Kind: "signin_sessions_expired", Target: store.PruneTarget{Table: "signin_sessions", Key: "id", Column: "expires_at"}, Cutoff: expired},
		{Kind: "signin_sessions_revoked", Target: store.PruneTarget{Table: "signin_sessions", Key: "id", Column: "revoked_at"}, Cutoff: expired},
		{Kind: "authorization_codes", Target: store.PruneTarget{Table: "authorization_codes", Key: "code_hash", Column: "expires_at"}, Cutoff: expired},
		{Kind: "onetime_tokens", Target: store.PruneTarget{Table: "onetime_tokens", Key: "token_hash", Column: "expires_at"}, Cutoff: expired},
		// Sent mail is deleted when it is sent; what is left past its expiry
		// is dead (the worker gave up on it or never got to it).
		{Kind: "mail_outbox", Target: store.PruneTarget{Table: "mail_outbox", Key: "id", Column: "expires_at"}, Cutoff: expired},
		// A counter idle for a day has no window open any more.
		{Kind: "throttles", Target: store.PruneTarget{Table: "throttles", Key: "key", Column: "last_hit"}, Cutoff: expired},
		{Kind: "webauthn_challenges", Target: store.PruneTarget{Table: "webauthn_challenges", Key: "challenge_hash", Column: "expires_at"}, Cutoff: expired},
		{Kind: "client_assertions", Target: store.PruneTarget{Table: "client_assertions", Key: "jti_hash", Column: "expires_at"}, Cutoff: expired},
		{Kind: "used_forms", Target: store.PruneTarget{Table: "used_forms", Key: "id_hash", Column: "expires_at"}, Cutoff: expired},
	}
	if r := o.AuditRetention; r > 0 {
		ps = append(ps, Pruner{Kind: "audit_events", Target: store.PruneTarget{Table: "audit_events", Key: "id", Column: "created_at"},
			Cutoff: func(now time.Time) time.Time { return now.Add(-r) }})
	}
	return ps
}

func (p Pruner) check() error {
	if p.Kind == "" || p.Cutoff == nil || p.Target.Table == "" || p.Target.Key == "" || p.Target.Column == "" {
		return fmt.Errorf("prune: incomplete pruner %q", p.Kind)
	}
	return nil
}
