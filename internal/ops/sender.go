package ops

import (
	"context"

	"github.com/jirabridge/jirabridge/transport"
)

// WatchSender wraps the link's transport.Sender of a sync so that a
// permanent rejection raises AlertSMTPRejected and the next accepted
// envelope clears it. Errors pass through unchanged.
func WatchSender(s transport.Sender, e *Evaluator, syncID string) transport.Sender {
	return &watchedSender{Sender: s, e: e, sync: syncID}
}

type watchedSender struct {
	transport.Sender
	e    *Evaluator
	sync string
}

func (w *watchedSender) Send(ctx context.Context, m transport.Outgoing) error {
	err := w.Sender.Send(ctx, m)
	if w.e == nil {
		return err
	}
	if err == nil {
		w.e.SMTPAccepted(w.sync)
	} else {
		w.e.SMTPRejected(w.sync, err)
	}
	return err
}
