package mail

import (
	"context"
	"log/slog"
	"net/mail"
)

// Dev is the mailer used without TOKEND_SMTP_URL. In dev mode it prints the
// mail's link to the log so that `make run` shows reset links; outside dev
// mode it logs that the mail was not delivered, without the link.
type Dev struct {
	Log     *slog.Logger
	DevMode bool
}

// Send implements the outbox's sender.
func (d *Dev) Send(ctx context.Context, m Message) error {
	if d.DevMode {
		d.Log.InfoContext(ctx, "dev mailer: a mail would be sent", "to", m.To, "subject", m.Subject, "link", m.Link)
		return nil
	}
	d.Log.WarnContext(ctx, "mail not delivered: TOKEND_SMTP_URL is not set", "subject", m.Subject)
	return nil
}

func parseAddress(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", err
	}
	return a.Address, nil
}
