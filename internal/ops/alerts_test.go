package ops

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
)

// rig is an evaluator with the alert mail going to a real SMTP server's ops
// mailbox and the webhook to an httptest server.
type rig struct {
	c    *clock
	st   *store.Store
	ev   *Evaluator
	mail *mailEnv
	hook *hook
}

func newRig(t *testing.T, silence time.Duration) *rig {
	t.Helper()
	c := newClock()
	st := openStore(t, c)
	me := newMailEnv(t)
	hk := newHook(t)
	mn, err := NewMailNotifier(MailOptions{Mailer: me.mailer, To: []string{me.to}, MinInterval: -1, Now: c.Now,
		StatusURL: "http://127.0.0.1:8080/", Host: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	wn, err := NewWebhookNotifier(WebhookOptions{URL: hk.srv.URL, ExternalURL: "http://127.0.0.1:8080/"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewEvaluator(Options{Store: st, Now: c.Now, Notifiers: []Notifier{mn, wn}, RepeatInterval: time.Hour, SilenceThreshold: silence})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{c: c, st: st, ev: ev, mail: me, hook: hk}
}

func (r *rig) eval(t *testing.T) []Event {
	t.Helper()
	evs, err := r.ev.Evaluate(context.Background())
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return evs
}

func (r *rig) update(t *testing.T, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := r.st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// expectOne asserts that the last evaluation sent exactly one mail and one
// webhook alert for name with status, and returns the mail's text.
func (r *rig) expectOne(t *testing.T, mailsBefore int, name, status string) string {
	t.Helper()
	if got := r.mail.count(); got != mailsBefore+1 {
		t.Fatalf("ops mailbox has %d mails, want %d", got, mailsBefore+1)
	}
	alerts := r.hook.take()
	if len(alerts) != 1 || alerts[0].Labels["alertname"] != name || alerts[0].Status != status {
		t.Fatalf("webhook got %+v, want one %s %s", alerts, name, status)
	}
	mails := r.mail.mails()
	return string(mails[len(mails)-1])
}

func (r *rig) expectNothing(t *testing.T, mailsBefore int) {
	t.Helper()
	if got := r.mail.count(); got != mailsBefore {
		t.Fatalf("ops mailbox has %d mails, want %d (no new alert)", got, mailsBefore)
	}
	if alerts := r.hook.take(); len(alerts) != 0 {
		t.Fatalf("webhook got %+v, want nothing", alerts)
	}
}

// TestAlertConditions makes each condition happen through the store the
// way the engine and link write it, and checks that the alert mail reaches
// the ops mailbox and the webhook gets the payload once, then resolved.
func TestAlertConditions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		alert  string
		cause  func(t *testing.T, r *rig)
		fix    func(t *testing.T, r *rig)
		inMail []string
	}{{
		name: "parked change", alert: AlertChangeParked,
		cause: func(t *testing.T, r *rig) { parkChange(t, r.st, r.c, &fakeJira{}) },
		fix: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error {
				f, err := tx.FailureByChange(testSync, "node-b/42")
				if err != nil {
					return err
				}
				return tx.FailureSkip(f.ID)
			})
		},
		inMail: []string{"OPS-7", "issue.update", "not on the appropriate screen", "jirabridge messages show 1",
			"jirabridge messages retry 1", "edit (or create) screen", "ops-demo"},
	}, {
		name: "paused on a wrong password", alert: AlertSyncPaused,
		cause: func(t *testing.T, r *rig) {
			jira := &fakeJira{err: errclass.New(errclass.Pause, "authentication", errors.New("jira 401: Unauthorized"))}
			rp := newReplayer(t, r.st, r.c, jira)
			enqueue(t, r.st, wire.Change{ID: "node-b/43", IssueID: "10008", IssueKey: "OPS-8", Kind: wire.ChangeKind("issue.update")})
			if res, err := rp.Round(ctx); err != nil || !res.Paused {
				t.Fatalf("round = %+v, %v; want paused", res, err)
			}
		},
		fix: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error { return tx.SyncSetState(testSync, store.StateRunning, "") })
		},
		inMail: []string{"PAUSED (authentication)", "jirabridge check", "JIRABRIDGE_JIRA_PASSWORD"},
	}, {
		name: "forged mail quarantined", alert: AlertMailQuarantined,
		cause: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error {
				_, err := tx.QuarantineAdd(store.Quarantined{SyncID: testSync, TransportRef: "INBOX/17", Reason: "forged", Raw: []byte("From: mallory\r\n\r\nx")})
				return err
			})
		},
		fix: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error {
				qs, err := tx.QuarantineList(10)
				if err != nil {
					return err
				}
				return tx.QuarantineDelete(qs[0].ID)
			})
		},
		inMail: []string{"quarantined as forged"},
	}, {
		name: "outbox not acked", alert: AlertOutboxOld,
		cause: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error {
				_, err := tx.OutboxAppend(testSync, "changes", []byte("sealed"))
				return err
			})
			r.c.Add(DefaultOutboxAgeThreshold + time.Minute)
		},
		fix: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error { _, err := tx.OutboxAck(testSync, 1); return err })
		},
		inMail: []string{"has not acknowledged 1 envelope"},
	}, {
		name: "dropped envelope leaves a gap", alert: AlertGapOpen,
		cause: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error {
				for _, seq := range []uint64{1, 3} { // 2 was dropped
					if _, err := tx.InboxInsert(store.InboxEntry{SyncID: testSync, Sender: "node-b", Seq: seq, Kind: "changes", Sealed: []byte("x")}); err != nil {
						return err
					}
				}
				return tx.LinkHeard(testSync)
			})
			r.c.Add(DefaultGapAlertAfter + time.Minute)
			r.update(t, func(tx *store.Tx) error { return tx.LinkHeard(testSync) })
		},
		fix: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error {
				_, err := tx.InboxInsert(store.InboxEntry{SyncID: testSync, Sender: "node-b", Seq: 2, Kind: "changes", Sealed: []byte("x")})
				return err
			})
		},
		inMail: []string{"envelopes 2 to 2 from the peer are still missing"},
	}, {
		name: "peer silent", alert: AlertPeerSilent,
		cause: func(t *testing.T, r *rig) {
			r.update(t, func(tx *store.Tx) error { return tx.LinkHeard(testSync) })
			r.c.Add(DefaultSilenceThreshold + time.Minute)
		},
		fix:    func(t *testing.T, r *rig) { r.update(t, func(tx *store.Tx) error { return tx.LinkHeard(testSync) }) },
		inMail: []string{"nothing was heard from the peer for 31m0s"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			silence := 24 * time.Hour
			if tt.alert == AlertPeerSilent {
				silence = DefaultSilenceThreshold
			}
			r := newRig(t, silence)
			if evs := r.eval(t); len(evs) != 0 {
				t.Fatalf("healthy bridge raised %+v", evs)
			}
			tt.cause(t, r)
			r.eval(t)
			text := r.expectOne(t, 0, tt.alert, StatusFiring)
			for _, want := range tt.inMail {
				if !strings.Contains(unfold(text), want) {
					t.Errorf("alert mail lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "SECRET-SALARY") {
				t.Errorf("alert mail shows a field value:\n%s", text)
			}
			// Once: the next evaluations say nothing while it lasts...
			r.c.Add(10 * time.Minute)
			r.eval(t)
			r.expectNothing(t, 1)
			// ...until the repeat interval.
			r.c.Add(time.Hour)
			r.eval(t)
			if !strings.Contains(r.expectOne(t, 1, tt.alert, StatusFiring), "STILL FIRING") {
				t.Errorf("repeated alert mail does not say STILL FIRING")
			}
			tt.fix(t, r)
			r.eval(t)
			if !strings.Contains(r.expectOne(t, 2, tt.alert, StatusResolved), "RESOLVED") {
				t.Errorf("resolution mail does not say RESOLVED")
			}
			r.eval(t)
			r.expectNothing(t, 3)
		})
	}
}

// unfold undoes quoted-printable soft line breaks enough for Contains.
func unfold(s string) string {
	s = strings.ReplaceAll(s, "=\r\n", "")
	return strings.ReplaceAll(s, "=3D", "=")
}

func TestSMTPRejectionAlert(t *testing.T) {
	t.Parallel()
	r := newRig(t, 0)
	ctx := context.Background()
	host, port := splitHostPort(t, r.mail.srv.SMTPAddr())
	peer := r.mail.srv.Address("peer", "")
	if err := r.mail.srv.AddUser("peer", "pw"); err != nil {
		t.Fatal(err)
	}
	raw, err := smtpsend.New(smtpsend.Options{Host: host, Port: port, TLSMode: smtpsend.TLSPlain,
		From: "a@" + r.mail.srv.Domain(), To: []string{peer}})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	s := WatchSender(raw, r.ev, testSync)
	out := transport.Outgoing{Meta: transport.Meta{Sync: testSync, Sender: "node-a", Seq: 1, Kind: transport.KindChanges}, Sealed: []byte("sealed")}
	r.mail.srv.FailNth(1, 554, "5.7.1 relay denied by policy")
	if err := s.Send(ctx, out); err == nil || errclass.IsRetryable(err) {
		t.Fatalf("send = %v, want a permanent rejection", err)
	}
	r.eval(t)
	text := r.expectOne(t, 0, AlertSMTPRejected, StatusFiring)
	if !strings.Contains(unfold(text), "relay denied by policy") {
		t.Errorf("mail lacks the SMTP reply:\n%s", text)
	}
	if err := s.Send(ctx, out); err != nil {
		t.Fatal(err)
	}
	r.eval(t)
	r.expectOne(t, 1, AlertSMTPRejected, StatusResolved)
}

// failingMailer fails until told otherwise, then delegates.
type failingMailer struct {
	mu   sync.Mutex
	fail bool
	next Mailer
	sent []Mail
}

func (f *failingMailer) SendMail(ctx context.Context, m Mail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errclass.New(errclass.Temporary, "smtp_dial", errors.New("dial tcp 127.0.0.1:25: connection refused"))
	}
	f.sent = append(f.sent, m)
	if f.next != nil {
		return f.next.SendMail(ctx, m)
	}
	return nil
}

// TestMailPathFailing: alert mail that cannot be sent is kept, the failure
// is shown through the webhook and the status page at once, and everything
// arrives by mail once the path works, without a loop.
func TestMailPathFailing(t *testing.T) {
	t.Parallel()
	c := newClock()
	st := openStore(t, c)
	hk := newHook(t)
	fm := &failingMailer{fail: true}
	mn, _ := NewMailNotifier(MailOptions{Mailer: fm, To: []string{"ops@example.test"}, MinInterval: -1, Now: c.Now})
	wn, _ := NewWebhookNotifier(WebhookOptions{URL: hk.srv.URL})
	ev, err := NewEvaluator(Options{Store: st, Now: c.Now, Notifiers: []Notifier{mn, wn}, NotifyRetry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	parkChange(t, st, c, &fakeJira{})
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hk.take(); len(got) != 1 || got[0].Labels["alertname"] != AlertChangeParked {
		t.Fatalf("webhook got %+v, want the parked change", got)
	}
	// The next round tells the webhook that mail is failing; mail is not
	// retried before its back-off (no loop).
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	got := hk.take()
	if len(got) != 1 || got[0].Labels["alertname"] != AlertNotifyFailing || got[0].Labels["reason"] != "mail" {
		t.Fatalf("webhook got %+v, want the mail delivery alert", got)
	}
	if a := ev.Active(); len(a) != 2 {
		t.Fatalf("active alerts = %+v, want parked + delivery failing (shown on the status page)", a)
	}
	if p := ev.Pending()["mail"]; p != 2 {
		t.Fatalf("mail queue holds %d events, want 2", p)
	}
	fm.mu.Lock()
	fm.fail = false
	fm.mu.Unlock()
	c.Add(2 * time.Minute)
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	fm.mu.Lock()
	sent := append([]Mail(nil), fm.sent...)
	fm.mu.Unlock()
	if len(sent) != 1 || !strings.Contains(sent[0].Text, "change parked") || !strings.Contains(sent[0].Text, "alert delivery failing") {
		t.Fatalf("after recovery mails = %+v, want one mail with both alerts", sent)
	}
	// The delivery alert resolves, by mail and webhook.
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	fm.mu.Lock()
	n := len(fm.sent)
	last := fm.sent[n-1]
	fm.mu.Unlock()
	if n != 2 || !strings.Contains(last.Subject, "RESOLVED: alert delivery failing") {
		t.Fatalf("mails = %d, last subject %q; want the delivery alert resolved", n, last.Subject)
	}
	if got := hk.take(); len(got) != 1 || got[0].Status != StatusResolved {
		t.Fatalf("webhook got %+v, want the delivery alert resolved", got)
	}
}

func TestMailRateLimit(t *testing.T) {
	t.Parallel()
	c := newClock()
	st := openStore(t, c)
	fm := &failingMailer{}
	mn, _ := NewMailNotifier(MailOptions{Mailer: fm, To: []string{"ops@example.test"}, MinInterval: 5 * time.Minute, Now: c.Now})
	ev, _ := NewEvaluator(Options{Store: st, Now: c.Now, Notifiers: []Notifier{mn}})
	ctx := context.Background()
	sent := func() int { fm.mu.Lock(); defer fm.mu.Unlock(); return len(fm.sent) }
	parkChange(t, st, c, &fakeJira{})
	ev.Evaluate(ctx)
	if sent() != 1 {
		t.Fatalf("sent %d mails, want 1", sent())
	}
	st.Update(ctx, func(tx *store.Tx) error { return tx.SyncSetState(testSync, store.StatePaused, "authentication") })
	c.Add(time.Minute)
	ev.Evaluate(ctx)
	st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.QuarantineAdd(store.Quarantined{SyncID: testSync, Reason: "unsigned", At: c.Now()})
		return err
	})
	c.Add(time.Minute)
	ev.Evaluate(ctx)
	if sent() != 1 {
		t.Fatalf("sent %d mails within the interval, want 1", sent())
	}
	c.Add(4 * time.Minute)
	ev.Evaluate(ctx)
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if len(fm.sent) != 2 || !strings.Contains(fm.sent[1].Text, "sync paused") || !strings.Contains(fm.sent[1].Text, "mail quarantined") {
		t.Fatalf("mails = %d; want a second one with both waiting alerts", len(fm.sent))
	}
}

// TestAlertStateSurvivesRestart: a new evaluator on the same store neither
// repeats an alert already sent nor forgets to resolve it.
func TestAlertStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	c := newClock()
	st := openStore(t, c)
	ctx := context.Background()
	st.Update(ctx, func(tx *store.Tx) error { return tx.SyncSetState(testSync, store.StatePaused, "authentication") })
	ev1, _ := NewEvaluator(Options{Store: st, Now: c.Now})
	if evs, _ := ev1.Evaluate(ctx); len(evs) != 1 {
		t.Fatalf("first evaluator: %+v", evs)
	}
	ev2, _ := NewEvaluator(Options{Store: st, Now: c.Now})
	if evs, _ := ev2.Evaluate(ctx); len(evs) != 0 {
		t.Fatalf("restarted evaluator raised again: %+v", evs)
	}
	st.Update(ctx, func(tx *store.Tx) error { return tx.SyncSetState(testSync, store.StateRunning, "") })
	ev3, _ := NewEvaluator(Options{Store: st, Now: c.Now})
	evs, _ := ev3.Evaluate(ctx)
	if len(evs) != 1 || evs[0].Status != StatusResolved || evs[0].Name != AlertSyncPaused {
		t.Fatalf("restarted evaluator: %+v, want the pause resolved", evs)
	}
}

func TestPayloadShape(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []Event{
		{Alert: Alert{Name: AlertChangeParked, SyncID: "s", Key: "1", Severity: SeverityCritical, IssueKey: "A-1", FailureID: 1, Summary: "x"}, Status: StatusFiring, StartsAt: start},
		{Alert: Alert{Name: AlertChangeParked, SyncID: "s", Key: "2", Severity: SeverityCritical, IssueKey: "A-2", FailureID: 2, Summary: "y"}, Status: StatusResolved, StartsAt: start, EndsAt: start.Add(time.Hour)},
		{Alert: Alert{Name: AlertSyncPaused, SyncID: "s", Severity: SeverityCritical, Summary: "z"}, Status: StatusResolved, StartsAt: start, EndsAt: start.Add(time.Hour)},
	}
	ps := Payloads(evs, "jirabridge", "http://x/")
	if len(ps) != 2 {
		t.Fatalf("%d payloads, want 2 (one per alert name)", len(ps))
	}
	p := ps[0]
	if p.Version != "4" || p.Status != StatusFiring || p.GroupKey != `{}:{alertname="JirabridgeChangeParked"}` || len(p.Alerts) != 2 {
		t.Errorf("payload = %+v", p)
	}
	if p.CommonLabels["sync"] != "s" || p.CommonLabels["issue"] != "" {
		t.Errorf("common labels = %v", p.CommonLabels)
	}
	if !p.Alerts[0].EndsAt.IsZero() || p.Alerts[1].EndsAt.IsZero() || p.Alerts[0].Fingerprint == "" {
		t.Errorf("alerts = %+v", p.Alerts)
	}
	if ps[1].Status != StatusResolved {
		t.Errorf("second payload status = %s", ps[1].Status)
	}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	c := newClock()
	st := openStore(t, c)
	me := newMailEnv(t)
	hk := newHook(t)
	host, port := splitHostPort(t, me.srv.SMTPAddr())
	cfg := config.Defaults()
	cfg.SMTP.Host, cfg.SMTP.Port, cfg.SMTP.TLSMode = host, port, config.TLSMode(smtpsend.TLSPlain)
	cfg.SMTP.From = "bridge-a@" + me.srv.Domain()
	cfg.Ops.AlertTo = []string{me.to}
	cfg.Ops.WebhookURL = config.NewSecret(hk.srv.URL)
	ev, closer, err := FromConfig(cfg, st, nil, nil, "http://127.0.0.1:8080/")
	if err != nil {
		t.Fatal(err)
	}
	defer closer()
	ctx := context.Background()
	st.Update(ctx, func(tx *store.Tx) error { return tx.SyncSetState(testSync, store.StatePaused, "authentication") })
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if me.count() != 1 || len(hk.take()) != 1 {
		t.Fatalf("mails %d, want 1 and one webhook alert", me.count())
	}

	cfg.SMTP.Host = ""
	if _, _, err := FromConfig(cfg, st, nil, nil, ""); err == nil || !strings.Contains(err.Error(), "JIRABRIDGE_SMTP_HOST") {
		t.Errorf("alert addresses without SMTP: %v", err)
	}
}
