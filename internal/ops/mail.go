package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/jirabridge/jirabridge/templates"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
)

// Mail is one alert mail, transport-agnostic.
type Mail struct {
	To      []string
	Subject string
	Text    string
	HTML    string // optional alternative part
}

// Mailer sends alert mail. An error means the mail was not accepted; the
// notifier keeps its events and tries again later.
type Mailer interface {
	SendMail(ctx context.Context, m Mail) error
}

// SMTPMailer sends alert mail through the bridge's SMTP settings: go-mail
// builds the MIME message, smtpsend carries it (same TLS, authentication and
// error classification as the envelopes).
type SMTPMailer struct {
	s    *smtpsend.Sender
	from string
}

// NewSMTPMailer builds a mailer from the SMTP options the link uses; To in
// opts is ignored (each Mail names its recipients) but must be valid for
// smtpsend, so pass the alert addresses.
func NewSMTPMailer(opts smtpsend.Options) (*SMTPMailer, error) {
	s, err := smtpsend.New(opts)
	if err != nil {
		return nil, fmt.Errorf("alert mailer: %w", err)
	}
	return &SMTPMailer{s: s, from: opts.From}, nil
}

// SendMail builds and sends m.
func (sm *SMTPMailer) SendMail(ctx context.Context, m Mail) error {
	raw, err := BuildMIME(sm.from, m, time.Now())
	if err != nil {
		return err
	}
	return sm.s.SendRaw(ctx, transport.MailHeader{From: sm.from, To: m.To}, raw)
}

// Close ends the SMTP session.
func (sm *SMTPMailer) Close() error { return sm.s.Close() }

// BuildMIME renders m as a MIME message (text/plain with an optional
// text/html alternative) with go-mail.
func BuildMIME(from string, m Mail, date time.Time) ([]byte, error) {
	msg := gomail.NewMsg()
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("alert mail from %q: %w", from, err)
	}
	if err := msg.To(m.To...); err != nil {
		return nil, fmt.Errorf("alert mail to %v: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(date)
	msg.SetMessageID()
	// Auto-Submitted keeps vacation responders and ticket systems from
	// answering, which could otherwise start a mail loop.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.Header("X-Jirabridge-Alert"), "1")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	var b bytes.Buffer
	if _, err := msg.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("write alert mail: %w", err)
	}
	return b.Bytes(), nil
}

// MailOptions configure a MailNotifier. Mailer and To are required.
type MailOptions struct {
	Mailer Mailer
	To     []string // JIRABRIDGE_OPS_ALERT_TO
	// MinInterval is the shortest time between two alert mails; events in
	// between wait and go together in the next mail. Default 1m.
	MinInterval time.Duration
	// StatusURL is the status page's address, linked from the mail.
	StatusURL string
	// Host names this bridge in the mail (the sync's node, the host name).
	Host string
	// NoHTML leaves out the HTML part.
	NoHTML bool
	Now    func() time.Time
}

// MailNotifier turns events into alert mails, at most one per MinInterval.
type MailNotifier struct {
	o    MailOptions
	text *texttemplate.Template
	html *htmltemplate.Template

	mu   sync.Mutex
	last time.Time
}

// NewMailNotifier parses the embedded templates and builds the notifier.
func NewMailNotifier(o MailOptions) (*MailNotifier, error) {
	if o.Mailer == nil {
		return nil, errors.New("alert mail: Mailer is required")
	}
	if len(o.To) == 0 {
		return nil, errors.New("alert mail: no recipient (set JIRABRIDGE_OPS_ALERT_TO)")
	}
	if o.MinInterval == 0 {
		o.MinInterval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t, err := texttemplate.New("").Option("missingkey=error").ParseFS(templates.FS(), "alert_mail.txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse alert mail template: %w", err)
	}
	h, err := htmltemplate.New("").Option("missingkey=error").ParseFS(templates.FS(), "alert_mail.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse alert mail html template: %w", err)
	}
	return &MailNotifier{o: o, text: t, html: h}, nil
}

// Name is "mail".
func (n *MailNotifier) Name() string { return "mail" }

// Notify sends one mail with every event, unless the last mail went out
// less than MinInterval ago (then ErrDeferred).
func (n *MailNotifier) Notify(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	now := n.o.Now()
	n.mu.Lock()
	last := n.last
	n.mu.Unlock()
	if !last.IsZero() && now.Sub(last) < n.o.MinInterval {
		return fmt.Errorf("alert mail: next mail allowed at %s: %w", last.Add(n.o.MinInterval).UTC().Format(time.RFC3339), ErrDeferred)
	}
	m, err := n.Render(events)
	if err != nil {
		return err
	}
	if err := n.o.Mailer.SendMail(ctx, m); err != nil {
		return fmt.Errorf("send alert mail to %s: %w", strings.Join(n.o.To, ","), err)
	}
	n.mu.Lock()
	n.last = now
	n.mu.Unlock()
	return nil
}

// mailData is what the alert mail templates see.
type mailData struct {
	Subject   string
	Host      string
	StatusURL string
	Dropped   int
	Events    []mailEvent
}

type mailEvent struct {
	Event
	Title     string
	StartsUTC string
	EndsUTC   string
}

// Render builds the mail for events without sending it.
func (n *MailNotifier) Render(events []Event) (Mail, error) {
	d := mailData{Host: n.o.Host, StatusURL: n.o.StatusURL}
	firing, resolved := 0, 0
	for _, e := range events {
		if e.Status == StatusResolved {
			resolved++
		} else {
			firing++
		}
		me := mailEvent{Event: e, Title: Title(e.Name), StartsUTC: utc(e.StartsAt), EndsUTC: utc(e.EndsAt)}
		d.Events = append(d.Events, me)
	}
	d.Subject = subject(events, firing, resolved)
	var tb bytes.Buffer
	if err := n.text.ExecuteTemplate(&tb, "alert_mail.txt.tmpl", d); err != nil {
		return Mail{}, fmt.Errorf("render alert mail: %w", err)
	}
	m := Mail{To: n.o.To, Subject: d.Subject, Text: tb.String()}
	if !n.o.NoHTML {
		var hb bytes.Buffer
		if err := n.html.ExecuteTemplate(&hb, "alert_mail.html.tmpl", d); err != nil {
			return Mail{}, fmt.Errorf("render alert mail html: %w", err)
		}
		m.HTML = hb.String()
	}
	return m, nil
}

func subject(events []Event, firing, resolved int) string {
	first := events[0]
	what := Title(first.Name)
	if first.SyncName != "" {
		what += " on " + first.SyncName
	} else if first.SyncID != "" {
		what += " on " + first.SyncID
	}
	if first.IssueKey != "" {
		what += " (" + first.IssueKey + ")"
	}
	if len(events) == 1 {
		state := "FIRING"
		if first.Status == StatusResolved {
			state = "RESOLVED"
		}
		return "[jirabridge] " + state + ": " + what
	}
	return fmt.Sprintf("[jirabridge] %d firing, %d resolved: %s and more", firing, resolved, what)
}

func utc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// Title is the human name of an alert.
func Title(name string) string {
	switch name {
	case AlertChangeParked:
		return "change parked"
	case AlertMailQuarantined:
		return "mail quarantined"
	case AlertGapOpen:
		return "gap still open after resend"
	case AlertPeerSilent:
		return "peer silent"
	case AlertSyncPaused:
		return "sync paused"
	case AlertSMTPRejected:
		return "SMTP rejected an envelope"
	case AlertOutboxOld:
		return "outbox not acknowledged"
	case AlertNotifyFailing:
		return "alert delivery failing"
	}
	return name
}
