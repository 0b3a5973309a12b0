// Package mail delivers tokend's mail: messages rendered from templates
// embedded in the binary (plain text and HTML), an SMTP sender built on
// emersion/go-smtp (STARTTLS when the server offers it, implicit TLS for
// smtps://, AUTH when the URL has credentials, a timeout on every step), a
// dev mailer that prints links to the log in dev mode, and the outbox worker
// that delivers queued jobs with retries and backoff, each job once even
// with several instances on one database.
package mail
