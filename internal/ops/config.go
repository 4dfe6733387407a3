package ops

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
)

// FromConfig builds the evaluator and its notifiers from the process
// configuration: alert mail to JIRABRIDGE_OPS_ALERT_TO through the
// JIRABRIDGE_SMTP_* settings when addresses are set, the webhook when
// JIRABRIDGE_OPS_WEBHOOK_URL is set, and the thresholds of the Ops and
// Tuning groups. statusURL is linked from alerts (empty: none). The caller
// closes the returned closer (the alert mailer's SMTP session) at exit.
func FromConfig(cfg *config.Config, st *store.Store, m *metrics.Metrics, log *slog.Logger, statusURL string) (*Evaluator, func() error, error) {
	var notifiers []Notifier
	closer := func() error { return nil }
	if len(cfg.Ops.AlertTo) > 0 {
		if cfg.SMTP.Host == "" {
			return nil, nil, errors.New("alert mail: JIRABRIDGE_OPS_ALERT_TO is set but JIRABRIDGE_SMTP_HOST is not; alert mail goes through the SMTP settings")
		}
		from := cfg.SMTP.From
		mailer, err := NewSMTPMailer(smtpsend.Options{
			Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, TLSMode: string(cfg.SMTP.TLSMode),
			Username: cfg.SMTP.User, Password: cfg.SMTP.Password.Reveal(), CAFile: cfg.SMTP.CAFile,
			From: from, To: cfg.Ops.AlertTo, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		mn, err := NewMailNotifier(MailOptions{Mailer: mailer, To: cfg.Ops.AlertTo, StatusURL: statusURL, Host: from})
		if err != nil {
			mailer.Close()
			return nil, nil, err
		}
		notifiers = append(notifiers, mn)
		closer = mailer.Close
	}
	if cfg.Ops.WebhookURL.IsSet() {
		wn, err := NewWebhookNotifier(WebhookOptions{URL: cfg.Ops.WebhookURL.Reveal(), ExternalURL: statusURL})
		if err != nil {
			closer()
			return nil, nil, err
		}
		notifiers = append(notifiers, wn)
	}
	gapAfter := DefaultGapAlertAfter
	if cfg.GapResendTimeout > 0 {
		gapAfter = 2 * cfg.GapResendTimeout
	}
	ev, err := NewEvaluator(Options{
		Store: st, Metrics: m, Logger: log, Notifiers: notifiers,
		RepeatInterval: cfg.Ops.AlertRepeatInterval, OutboxAgeThreshold: cfg.Ops.OutboxAgeThreshold,
		SilenceThreshold: cfg.PeerSilenceThreshold, GapAlertAfter: gapAfter,
		// The link asks again after this timeout: by then the first
		// answer is overdue.
		ResendAnswerAfter: cfg.GapResendTimeout,
	})
	if err != nil {
		closer()
		return nil, nil, fmt.Errorf("alerts: %w", err)
	}
	return ev, closer, nil
}
