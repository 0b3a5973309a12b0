package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/tokend/tokend/internal/masterkey"
	"github.com/tokend/tokend/internal/store"
)

// Sender delivers one message.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// OutboxStore is the outbox storage.
type OutboxStore interface {
	ClaimMail(ctx context.Context, holder string, now, until time.Time, limit int) ([]store.MailJob, error)
	CompleteMail(ctx context.Context, id, holder string) error
	RetryMail(ctx context.Context, id, holder string, next time.Time, lastErr string) error
	DropExpiredMail(ctx context.Context, now time.Time) (int, error)
}

// Metrics counts deliveries.
type Metrics interface {
	MailSent()
	MailFailed(final bool)
}

type noMetrics struct{}

func (noMetrics) MailSent()       {}
func (noMetrics) MailFailed(bool) {}

// Outbox delivers queued mail.
type Outbox struct {
	store   OutboxStore
	sealer  *masterkey.Sealer
	sender  Sender
	from    string
	now     func() time.Time
	log     *slog.Logger
	metrics Metrics
	holder  string
	wake    chan struct{}
	// PollInterval is how often Run looks for due jobs (another instance
	// may have queued them); Wake makes it look at once.
	PollInterval time.Duration
}

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	Store   OutboxStore
	Sealer  *masterkey.Sealer // masterkey.PurposeMail
	Sender  Sender
	From    string
	Now     func() time.Time
	Log     *slog.Logger
	Metrics Metrics
	Holder  string
}

// NewOutbox returns an Outbox.
func NewOutbox(c OutboxConfig) *Outbox {
	o := &Outbox{store: c.Store, sealer: c.Sealer, sender: c.Sender, from: c.From, now: c.Now, log: c.Log,
		metrics: c.Metrics, holder: c.Holder, wake: make(chan struct{}, 1), PollInterval: 5 * time.Second}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.metrics == nil {
		o.metrics = noMetrics{}
	}
	if o.holder == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.holder = hex.EncodeToString(b[:])
	}
	return o
}

// lockFor is how long a claimed job stays ours: longer than one delivery.
const lockFor = SendBound + 30*time.Second

// backoff is the wait before attempt n+1: 10 s doubling, up to 10 min.
func backoff(attempts int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempts && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// Wake asks Run to look for jobs now.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// RunOnce delivers every due job it can claim and returns how many were
// sent. A failed delivery is retried later with backoff; a job whose link
// has expired is dropped.
func (o *Outbox) RunOnce(ctx context.Context) (int, error) {
	now := o.now()
	if n, err := o.store.DropExpiredMail(ctx, now); err != nil {
		return 0, err
	} else if n > 0 {
		o.log.WarnContext(ctx, "dropped mails whose links expired before delivery", "count", n)
		for range n {
			o.metrics.MailFailed(true)
		}
	}
	sent := 0
	for {
		jobs, err := o.store.ClaimMail(ctx, o.holder, now, now.Add(lockFor), 10)
		if err != nil {
			return sent, err
		}
		if len(jobs) == 0 {
			return sent, nil
		}
		for _, j := range jobs {
			if err := o.deliver(ctx, j); err != nil {
				next := o.now().Add(backoff(j.Attempts))
				o.log.WarnContext(ctx, "mail delivery failed; will retry", "job", j.ID, "attempt", j.Attempts, "next", next, "err", err)
				o.metrics.MailFailed(false)
				if err := o.store.RetryMail(ctx, j.ID, o.holder, next, err.Error()); err != nil {
					return sent, err
				}
				continue
			}
			if err := o.store.CompleteMail(ctx, j.ID, o.holder); err != nil {
				return sent, err
			}
			o.metrics.MailSent()
			o.log.InfoContext(ctx, "mail sent", "job", j.ID, "kind", j.Kind, "attempt", j.Attempts)
			sent++
		}
		now = o.now()
	}
}

func (o *Outbox) deliver(ctx context.Context, j store.MailJob) error {
	p, err := Open(o.sealer, j.ID, j.Payload)
	if err != nil {
		return err
	}
	m, err := Render(p, o.from, o.now())
	if err != nil {
		return err
	}
	return o.sender.Send(ctx, m)
}

// Run delivers mail until ctx ends, polling every PollInterval and at once
// after Wake.
func (o *Outbox) Run(ctx context.Context) {
	t := time.NewTicker(o.PollInterval)
	defer t.Stop()
	for {
		if _, err := o.RunOnce(ctx); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			o.log.ErrorContext(ctx, "mail outbox run failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.wake:
		}
	}
}
