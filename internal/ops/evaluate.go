package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/link"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
)

// StateCursor is the store cursor where the evaluator keeps the alerts it
// has raised, so a restart neither repeats them nor forgets to resolve them.
const StateCursor = "ops/alerts"

// QueueCursor is the store cursor where the evaluator keeps the events no
// notifier has delivered yet (per notifier), written in the same
// transaction as StateCursor: an alert raised while the mail path was down
// is still sent after a restart. A crash right after a delivery may send
// that batch once more; an alert is never lost.
const QueueCursor = "ops/alert-queue"

// Defaults of Options.
const (
	DefaultRepeatInterval     = 4 * time.Hour
	DefaultOutboxAgeThreshold = time.Hour
	DefaultSilenceThreshold   = 30 * time.Minute
	DefaultGapAlertAfter      = 20 * time.Minute
	DefaultResendAnswerAfter  = 10 * time.Minute
	DefaultNotifyRetry        = time.Minute
	DefaultNotifyRetryMax     = 30 * time.Minute
	DefaultMaxQueued          = 1000
)

// LinkView is the part of the link ops asks about one sync: whether the
// peer has been silent past the link's threshold. *link.Link satisfies it.
type LinkView interface {
	Silence(ctx context.Context) (silent bool, silentFor time.Duration, err error)
}

// Notifier delivers events to one channel (alert mail, webhook).
//
// Notify gets every event not yet delivered to this channel, oldest first.
// nil means all were delivered. An error wrapping ErrDeferred means "not
// now" (rate limit): the events are kept and offered again at the next
// Evaluate, without an alert. Any other error keeps them too, and raises
// AlertNotifyFailing for this channel until a later Notify succeeds.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, events []Event) error
}

// ErrDeferred is what a notifier returns (wrapped) to postpone delivery.
var ErrDeferred = errors.New("notification deferred")

// Options configure an Evaluator. Store is required.
type Options struct {
	Store *store.Store
	// Now is the clock; default time.Now.
	Now func() time.Time
	// RepeatInterval is how often a lasting alert is sent again; default
	// 4h (JIRABRIDGE_OPS_ALERT_REPEAT_INTERVAL).
	RepeatInterval time.Duration
	// OutboxAgeThreshold: alert when the oldest unacked envelope is older;
	// default 1h.
	OutboxAgeThreshold time.Duration
	// SilenceThreshold is used for a sync without a LinkView: alert when
	// the peer was last heard longer ago than this; default 30m.
	SilenceThreshold time.Duration
	// ResendAnswerAfter: alert when numbers the link asked the peer to
	// send again (recorded with the time of the first request, see
	// link.ResendAsks) are still missing this long after that request;
	// default 10m, FromConfig uses JIRABRIDGE_GAP_RESEND_TIMEOUT (by then
	// the link asks a second time: the first answer is overdue).
	ResendAnswerAfter time.Duration
	// GapAlertAfter: alert when a gap in the peer's sequence is open this
	// long without any resend request recorded for it (the link is not
	// running, or cannot send); default 20m, twice the default resend
	// timeout.
	GapAlertAfter time.Duration
	// Notifiers receive the events; nil: the alerts are only shown on the
	// status page and in the metric.
	Notifiers []Notifier
	// NotifyRetry is the first wait after a failed delivery, doubling up to
	// NotifyRetryMax; defaults 1m and 30m. Tests set 0 to retry at once.
	NotifyRetry, NotifyRetryMax time.Duration
	// MaxQueued caps the undelivered events kept per notifier (the oldest
	// go first); default 1000.
	MaxQueued int
	// MaxFailures caps the open failures looked at per sync; default 500.
	MaxFailures int
	Metrics     *metrics.Metrics
	Logger      *slog.Logger
}

// Evaluator turns the bridge's state into alerts: each Evaluate reads the
// conditions, raises new alerts once, repeats lasting ones at the repeat
// interval, resolves the ones that cleared, and hands the events to the
// notifiers. It is safe for concurrent use; Evaluate calls are serialised.
type Evaluator struct {
	o   Options
	log *slog.Logger

	run sync.Mutex // serialises Evaluate

	mu       sync.Mutex
	loaded   bool
	active   map[string]*activeAlert
	external map[string]Alert
	links    map[string]LinkView
	queues   map[string]*queue
}

type activeAlert struct {
	Alert    Alert     `json:"alert"`
	StartsAt time.Time `json:"starts_at"`
	LastSent time.Time `json:"last_sent"`
}

type queue struct {
	events  []Event
	dropped int
	next    time.Time
	wait    time.Duration
	lastErr string
}

// NewEvaluator checks the options and builds an Evaluator.
func NewEvaluator(o Options) (*Evaluator, error) {
	if o.Store == nil {
		return nil, errors.New("ops evaluator: Store is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	setDefault(&o.RepeatInterval, DefaultRepeatInterval)
	setDefault(&o.OutboxAgeThreshold, DefaultOutboxAgeThreshold)
	setDefault(&o.SilenceThreshold, DefaultSilenceThreshold)
	setDefault(&o.GapAlertAfter, DefaultGapAlertAfter)
	setDefault(&o.ResendAnswerAfter, DefaultResendAnswerAfter)
	if o.NotifyRetry < 0 {
		o.NotifyRetry = 0
	}
	setDefault(&o.NotifyRetryMax, DefaultNotifyRetryMax)
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 500
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Evaluator{
		o: o, log: o.Logger.With("component", "ops"),
		active: map[string]*activeAlert{}, external: map[string]Alert{},
		links: map[string]LinkView{}, queues: map[string]*queue{},
	}
	for _, n := range o.Notifiers {
		e.queues[n.Name()] = &queue{wait: o.NotifyRetry}
	}
	return e, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// SetLink registers the link of a sync, so the peer-silent condition uses
// the link's own threshold and start time.
func (e *Evaluator) SetLink(syncID string, l LinkView) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l == nil {
		delete(e.links, syncID)
		return
	}
	e.links[syncID] = l
}

// Raise sets a condition only another part can see (the SMTP sender's
// permanent rejection, ...). It holds until Clear; the next Evaluate turns
// it into an event.
func (e *Evaluator) Raise(a Alert) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.external[a.Fingerprint()] = a
}

// Clear ends a condition set with Raise.
func (e *Evaluator) Clear(name, syncID, key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.external, Alert{Name: name, SyncID: syncID, Key: key}.Fingerprint())
}

// SMTPRejected raises the permanent-SMTP-rejection alert of a sync from a
// send error (see WatchSender). Retryable errors are not rejections and
// are ignored.
func (e *Evaluator) SMTPRejected(syncID string, err error) {
	if err == nil || errclass.IsRetryable(err) {
		return
	}
	e.Raise(Alert{
		Name: AlertSMTPRejected, SyncID: syncID, Severity: SeverityCritical,
		Reason:  errclass.ReasonOf(err),
		Summary: "the mail server refused an envelope for good; the link cannot send until the cause is fixed",
		Error:   err.Error(),
		Action: "Fix the SMTP settings or the mail server's policy named in the error (credentials, recipient, size, TLS), " +
			"then restart the bridge or wait for its next send attempt; nothing is lost, the envelope stays in the outbox.",
		Commands: []string{"jirabridge status", "jirabridge check"},
	})
}

// SMTPAccepted clears the rejection alert once a send succeeds.
func (e *Evaluator) SMTPAccepted(syncID string) {
	e.Clear(AlertSMTPRejected, syncID, "")
}

// Active returns the alerts that hold now (as of the last Evaluate),
// oldest first, with when each began.
func (e *Evaluator) Active() []ActiveAlert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ActiveAlert, 0, len(e.active))
	for _, a := range e.active {
		out = append(out, ActiveAlert{Alert: a.Alert, StartsAt: a.StartsAt})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartsAt.Equal(out[j].StartsAt) {
			return out[i].StartsAt.Before(out[j].StartsAt)
		}
		return out[i].Fingerprint() < out[j].Fingerprint()
	})
	return out
}

// ActiveAlert is an alert that holds and since when.
type ActiveAlert struct {
	Alert
	StartsAt time.Time
}

// Pending returns how many events wait for delivery per notifier.
func (e *Evaluator) Pending() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for n, q := range e.queues {
		out[n] = len(q.events)
	}
	return out
}

// Run evaluates every interval until ctx ends. Errors are logged; the next
// round tries again.
func (e *Evaluator) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("alert evaluation failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate is one deterministic step: read the conditions, update the set of
// active alerts, and deliver the resulting events (plus any kept from
// earlier failed deliveries). It returns the events this step produced.
func (e *Evaluator) Evaluate(ctx context.Context) ([]Event, error) {
	e.run.Lock()
	defer e.run.Unlock()
	if err := e.load(ctx); err != nil {
		return nil, err
	}
	now := e.o.Now()
	current, err := e.conditions(ctx, now)
	if err != nil {
		return nil, err
	}

	e.mu.Lock()
	for _, a := range e.external {
		current[a.Fingerprint()] = a
	}
	var events []Event
	changed := false
	for _, fp := range slices.Sorted(maps.Keys(current)) {
		a := current[fp]
		act, ok := e.active[fp]
		if !ok {
			start := a.Since
			if start.IsZero() || start.After(now) {
				start = now
			}
			act = &activeAlert{Alert: a, StartsAt: start, LastSent: now}
			e.active[fp] = act
			events = append(events, Event{Alert: a, Status: StatusFiring, StartsAt: start, At: now})
			changed = true
			continue
		}
		act.Alert = a
		if now.Sub(act.LastSent) >= e.o.RepeatInterval {
			act.LastSent = now
			events = append(events, Event{Alert: a, Status: StatusFiring, Repeat: true, StartsAt: act.StartsAt, At: now})
			changed = true
		}
	}
	for _, fp := range slices.Sorted(maps.Keys(e.active)) {
		if _, ok := current[fp]; ok {
			continue
		}
		act := e.active[fp]
		delete(e.active, fp)
		events = append(events, Event{Alert: act.Alert, Status: StatusResolved, StartsAt: act.StartsAt, EndsAt: now, At: now})
		changed = true
	}
	counts := map[string]int{}
	for _, a := range e.active {
		counts[a.Alert.Name]++
	}
	for _, q := range e.queues {
		q.events = append(q.events, events...)
		if over := len(q.events) - e.o.MaxQueued; over > 0 {
			q.events = slices.Clone(q.events[over:])
			q.dropped += over
		}
	}
	e.mu.Unlock()

	if m := e.o.Metrics; m != nil {
		for _, name := range allAlerts {
			m.AlertsFiring.WithLabelValues(name).Set(float64(counts[name]))
		}
	}
	if changed {
		if err := e.save(ctx); err != nil {
			return events, err
		}
	}
	if e.deliver(ctx, now) {
		if err := e.save(ctx); err != nil {
			return events, err
		}
	}
	return events, nil
}

var allAlerts = []string{AlertChangeParked, AlertMailQuarantined, AlertGapOpen, AlertPeerSilent,
	AlertSyncPaused, AlertSMTPRejected, AlertOutboxOld, AlertNotifyFailing}

// deliver offers every notifier its queue. A failure keeps the queue and
// raises AlertNotifyFailing for that notifier (seen by the others at the
// next Evaluate); a success clears it. The failing channel's own alert is
// queued for it like any other, so it learns of its outage once it works
// again: a report, not a loop. It reports whether a queue got shorter.
func (e *Evaluator) deliver(ctx context.Context, now time.Time) (delivered bool) {
	for _, n := range e.o.Notifiers {
		e.mu.Lock()
		q := e.queues[n.Name()]
		if len(q.events) == 0 || now.Before(q.next) {
			e.mu.Unlock()
			continue
		}
		batch := slices.Clone(q.events)
		e.mu.Unlock()

		err := n.Notify(ctx, batch)

		e.mu.Lock()
		switch {
		case err == nil:
			q.events = slices.Clone(q.events[len(batch):])
			delivered = true
			q.wait, q.next, q.lastErr = e.o.NotifyRetry, time.Time{}, ""
			delete(e.external, Alert{Name: AlertNotifyFailing, Key: n.Name()}.Fingerprint())
		case errors.Is(err, ErrDeferred):
		default:
			q.next = now.Add(q.wait)
			q.wait = min(max(2*q.wait, e.o.NotifyRetry), e.o.NotifyRetryMax)
			if q.lastErr != err.Error() {
				e.log.Warn("alert delivery failed; kept for the next attempt", "notifier", n.Name(), "queued", len(q.events), "error", err)
			}
			q.lastErr = err.Error()
			a := Alert{
				Name: AlertNotifyFailing, Key: n.Name(), Severity: SeverityCritical, Reason: n.Name(),
				Summary:  fmt.Sprintf("alerts cannot be delivered by %s; %d are kept and will be sent when it works again", n.Name(), len(q.events)),
				Error:    err.Error(),
				Action:   "Check the " + n.Name() + " settings (JIRABRIDGE_OPS_ALERT_TO and the SMTP settings, or JIRABRIDGE_OPS_WEBHOOK_URL) and that the server is reachable.",
				Commands: []string{"jirabridge status", "jirabridge check"},
			}
			if old, ok := e.external[a.Fingerprint()]; ok {
				a.Since = old.Since
			} else {
				a.Since = now
			}
			e.external[a.Fingerprint()] = a
		}
		e.mu.Unlock()
	}
	return delivered
}

// conditions reads every store-backed condition of every sync.
func (e *Evaluator) conditions(ctx context.Context, now time.Time) (map[string]Alert, error) {
	out := map[string]Alert{}
	add := func(a Alert) { out[a.Fingerprint()] = a }
	var syncs []store.Sync
	linkStatus := map[string]store.LinkStatus{}
	resendAsks := map[string][]link.ResendAsk{}
	err := e.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		if syncs, err = tx.SyncList(); err != nil {
			return fmt.Errorf("list syncs: %w", err)
		}
		for _, s := range syncs {
			fails, err := tx.FailureList(s.ID, e.o.MaxFailures, store.FailureOpen, store.FailureRetrying)
			if err != nil {
				return fmt.Errorf("list failures of sync %s: %w", s.ID, err)
			}
			for _, f := range fails {
				add(parkedAlert(s, f))
			}
			if s.State == store.StatePaused {
				add(pausedAlert(s))
			}
			if linkActive(s.State) {
				ls, err := tx.LinkStatus(s.ID)
				if err != nil {
					return fmt.Errorf("link status of sync %s: %w", s.ID, err)
				}
				linkStatus[s.ID] = ls
				asks, err := link.ResendAsks(tx, s.ID)
				if err != nil {
					// Unreadable records only cost the early alert: the
					// gap's own age still raises it.
					e.log.Warn("resend requests unreadable", "sync", s.ID, "error", err)
				}
				resendAsks[s.ID] = asks
			}
		}
		qs, err := tx.QuarantineList(10000)
		if err != nil {
			return fmt.Errorf("list quarantine: %w", err)
		}
		for _, a := range quarantineAlerts(qs, syncs) {
			add(a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate alert conditions: %w", err)
	}
	for _, s := range syncs {
		ls, ok := linkStatus[s.ID]
		if !ok {
			continue
		}
		if age := ls.Outbox.OldestUnackedAge(now); age >= e.o.OutboxAgeThreshold {
			add(Alert{
				Name: AlertOutboxOld, SyncID: s.ID, SyncName: s.Name, Severity: SeverityWarning,
				Count:   ls.Outbox.Depth,
				Summary: fmt.Sprintf("the peer has not acknowledged %d envelope(s); the oldest waits since %s", ls.Outbox.Depth, ls.Outbox.OldestUnacked.UTC().Format(time.RFC3339)),
				Action: "Check that mail leaves this side (SMTP errors in the log, the mail server's queue) and that the peer bridge runs; " +
					"unacked envelopes are re-sent when the peer asks for them.",
				Commands: []string{"jirabridge status"},
				Since:    ls.Outbox.OldestUnacked,
			})
		}
		for _, a := range e.gapAlerts(s, ls, resendAsks[s.ID], now) {
			add(a)
		}
		silent, silentFor, err := e.silence(ctx, s.ID, ls.LastHeardAt, now)
		if err != nil {
			return nil, err
		}
		if silent {
			since := now.Add(-silentFor)
			add(Alert{
				Name: AlertPeerSilent, SyncID: s.ID, SyncName: s.Name, Severity: SeverityCritical,
				Summary: fmt.Sprintf("nothing was heard from the peer for %s", silentFor.Round(time.Second)),
				Action: "Check that the peer bridge runs and that mail flows both ways (its heartbeats should arrive every " +
					"JIRABRIDGE_HEARTBEAT_INTERVAL); check the IMAP settings and the mailbox on this side.",
				Commands: []string{"jirabridge status"},
				Since:    since,
			})
		}
	}
	return out, nil
}

// gapAlerts raises the gap alert of a sync: for numbers the link asked the
// peer to send again and that are still missing ResendAnswerAfter after
// the first request (the answer is overdue), and, as a fallback, for a gap
// open GapAlertAfter without any request recorded (the link does not run,
// or cannot send).
func (e *Evaluator) gapAlerts(s store.Sync, ls store.LinkStatus, asks []link.ResendAsk, now time.Time) []Alert {
	const action = "Check the peer's outbox and mail path (`jirabridge status` on both sides). If the peer answered that " +
		"the envelopes were pruned, a failure record asks for `jirabridge resync` of the affected issues."
	var out []Alert
	asked := map[string][]link.ResendAsk{}
	for _, a := range asks {
		in := ls.Inbound[a.Sender]
		if !a.Missing(in.Cursor, in.Gaps) {
			continue
		}
		asked[a.Sender] = append(asked[a.Sender], a)
		if now.Sub(a.FirstAskedAt) < e.o.ResendAnswerAfter {
			continue
		}
		out = append(out, Alert{
			Name: AlertGapOpen, SyncID: s.ID, SyncName: s.Name, Severity: SeverityWarning,
			Key:    fmt.Sprintf("%s:%d", a.Sender, a.From),
			Reason: "resend_overdue",
			Count:  int(a.To - a.From + 1),
			Summary: fmt.Sprintf("envelopes %d to %d from the peer are still missing: the link asked the peer to send them again "+
				"(%d request(s), the first at %s) and no answer has arrived in %s",
				a.From, a.To, a.Asks, a.FirstAskedAt.UTC().Format(time.RFC3339), now.Sub(a.FirstAskedAt).Round(time.Second)),
			Action:   action,
			Commands: []string{"jirabridge status", "jirabridge messages list"},
			Since:    a.FirstAskedAt,
		})
	}
	for sender, in := range ls.Inbound {
		for _, g := range in.Gaps {
			if now.Sub(g.FirstSeen) < e.o.GapAlertAfter || slices.ContainsFunc(asked[sender], func(a link.ResendAsk) bool {
				return a.From <= g.To && g.From <= a.To
			}) {
				continue
			}
			out = append(out, Alert{
				Name: AlertGapOpen, SyncID: s.ID, SyncName: s.Name, Severity: SeverityWarning,
				Key:    fmt.Sprintf("%s:%d", sender, g.From),
				Reason: "gap",
				Count:  int(g.To - g.From + 1),
				Summary: fmt.Sprintf("envelopes %d to %d from the peer are still missing %s after the gap opened, and no resend was asked for them "+
					"(is the link running and able to send?)", g.From, g.To, now.Sub(g.FirstSeen).Round(time.Second)),
				Action:   action,
				Commands: []string{"jirabridge status", "jirabridge messages list"},
				Since:    g.FirstSeen,
			})
		}
	}
	return out
}

func (e *Evaluator) silence(ctx context.Context, syncID string, heard, now time.Time) (bool, time.Duration, error) {
	e.mu.Lock()
	l := e.links[syncID]
	e.mu.Unlock()
	if l != nil {
		silent, d, err := l.Silence(ctx)
		if err != nil {
			return false, 0, fmt.Errorf("peer silence of sync %s: %w", syncID, err)
		}
		return silent, d, nil
	}
	if heard.IsZero() {
		return false, 0, nil
	}
	d := now.Sub(heard)
	return d >= e.o.SilenceThreshold, d, nil
}

// linkActive: a stopped or not yet set-up sync sends no heartbeats, so
// silence and outbox age mean nothing there.
func linkActive(s store.SyncState) bool {
	switch s {
	case store.StateRunning, store.StatePaused, store.StateWaitingForSlave, store.StateUpdateRequired:
		return true
	}
	return false
}

func parkedAlert(s store.Sync, f store.Failure) Alert {
	id := fmt.Sprint(f.ID)
	a := Alert{
		Name: AlertChangeParked, SyncID: s.ID, SyncName: s.Name, Key: id, Severity: SeverityCritical,
		IssueKey: f.IssueKey, Kind: f.Kind, Reason: f.ErrorClass, FailureID: f.ID,
		Error: f.ErrorText, Since: f.FirstSeenAt,
		Commands: []string{"jirabridge messages show " + id, "jirabridge messages retry " + id, "jirabridge messages skip " + id},
	}
	issue := f.IssueKey
	if issue == "" {
		issue = "an issue"
	}
	a.Summary = fmt.Sprintf("the %s change of %s could not be applied and is parked; later changes of that issue wait behind it", kindOrChange(f.Kind), issue)
	a.Action = actionFor(f)
	if f.State == store.FailureRetrying {
		a.Summary += " (a retry was asked)"
	}
	return a
}

func kindOrChange(k string) string {
	if k == "" {
		return "change"
	}
	return k
}

// actionFor says what to do about a failure, from its kind and Jira's error.
// It reads the error text only to pick a hint; the ids come from the record.
func actionFor(f store.Failure) string {
	retry := fmt.Sprintf("then run `jirabridge messages retry %d` (or press Retry on the status page); `jirabridge messages skip %d` gives up on this change.", f.ID, f.ID)
	text := strings.ToLower(f.ErrorText)
	switch {
	case f.Kind == "resend-pruned" || strings.Contains(text, "pruned"):
		return "The peer no longer holds envelopes this side missed. Run `jirabridge resync` for the affected issues, " +
			fmt.Sprintf("then `jirabridge messages skip %d`.", f.ID)
	case strings.Contains(text, "screen") || strings.Contains(text, "cannot be set"):
		return "Jira refused a field: add it to the issue type's edit (or create) screen in this Jira, or remove its mapping; " + retry
	case strings.Contains(text, "permission") || f.ErrorClass == "forbidden":
		return "The sync user lacks a permission in this Jira: grant it (`jirabridge check` lists what is missing); " + retry
	case strings.Contains(text, "transition") || strings.Contains(text, "workflow"):
		return "The workflow does not allow this transition for the sync user: adjust the workflow or the status mapping; " + retry
	case strings.Contains(text, "does not exist") || strings.Contains(text, "not found"):
		return "Something the change refers to is missing in this Jira (issue, option, user, version): create or map it; " + retry
	}
	return "Fix the cause Jira names in the error above, " + retry
}

func pausedAlert(s store.Sync) Alert {
	reason := s.StateReason
	if reason == "" {
		reason = "unknown"
	}
	a := Alert{
		Name: AlertSyncPaused, SyncID: s.ID, SyncName: s.Name, Severity: SeverityCritical, Reason: reason,
		Summary:  fmt.Sprintf("the sync is PAUSED (%s): no change is read from or written to this Jira", reason),
		Commands: []string{"jirabridge status", "jirabridge check", "jirabridge start"},
	}
	switch {
	case strings.Contains(reason, "auth"):
		a.Action = "Jira refused the sync user's credentials. Fix the password or token in Jira and in the bridge's secret " +
			"(JIRABRIDGE_JIRA_PASSWORD or _FILE), confirm with `jirabridge check` (it stops at the first 401), then `jirabridge start`."
	case strings.Contains(reason, "permission"):
		a.Action = "The sync user lacks a permission in this Jira: grant it (`jirabridge check` lists what is missing), then `jirabridge start`."
	default:
		a.Action = "Fix the cause named in the reason, confirm with `jirabridge check`, then `jirabridge start`."
	}
	return a
}

// quarantineAlerts makes one alert per quarantine reason (and sync, when
// the messages name a known sync).
func quarantineAlerts(qs []store.Quarantined, syncs []store.Sync) []Alert {
	names := map[string]string{}
	for _, s := range syncs {
		names[s.ID] = s.Name
	}
	type group struct {
		a     Alert
		since time.Time
	}
	groups := map[string]*group{}
	for _, q := range qs {
		syncID := q.SyncID
		if _, ok := names[syncID]; !ok {
			syncID = ""
		}
		reason := q.Reason
		if reason == "" {
			reason = "unknown"
		}
		k := syncID + "\x00" + reason
		g, ok := groups[k]
		if !ok {
			g = &group{a: Alert{
				Name: AlertMailQuarantined, SyncID: syncID, SyncName: names[syncID], Key: reason, Reason: reason,
				Severity: SeverityWarning, Error: "",
				Action: "Quarantined mail is never applied. Look at it on the status page (Quarantined mail) and ask who sent it; " +
					"forged or foreign mail may mean someone tries to inject changes. A corrupt envelope from the real peer is asked for again by the link.",
				Commands: []string{"jirabridge status"},
			}, since: q.At}
			groups[k] = g
		}
		g.a.Count++
		if q.At.Before(g.since) {
			g.since = q.At
		}
	}
	out := make([]Alert, 0, len(groups))
	for _, g := range groups {
		g.a.Since = g.since
		g.a.Summary = fmt.Sprintf("%d inbound mail(s) quarantined as %s", g.a.Count, g.a.Reason)
		out = append(out, g.a)
	}
	return out
}

func (e *Evaluator) load(ctx context.Context) error {
	e.mu.Lock()
	loaded := e.loaded
	e.mu.Unlock()
	if loaded {
		return nil
	}
	var raw, rawQueue string
	if err := e.o.Store.View(ctx, func(tx *store.Tx) error {
		v, _, err := tx.CursorGet(StateCursor)
		if err != nil {
			return err
		}
		raw = v
		rawQueue, _, err = tx.CursorGet(QueueCursor)
		return err
	}); err != nil {
		return fmt.Errorf("load alert state: %w", err)
	}
	saved := map[string]savedQueue{}
	if rawQueue != "" {
		if err := json.Unmarshal([]byte(rawQueue), &saved); err != nil {
			e.log.Warn("undelivered alerts unreadable; they are lost", "error", err)
			saved = nil
		}
	}
	active := map[string]*activeAlert{}
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &active); err != nil {
			// A damaged state only costs repeated alerts; say so and go on.
			e.log.Warn("alert state unreadable; alerts that still hold are raised again", "error", err)
			active = map[string]*activeAlert{}
		}
	}
	e.mu.Lock()
	e.active, e.loaded = active, true
	for name, sq := range saved {
		q, ok := e.queues[name]
		if !ok {
			if len(sq.Events) > 0 {
				e.log.Warn("undelivered alerts for a channel no longer set up are dropped", "notifier", name, "events", len(sq.Events))
			}
			continue
		}
		// Saved events go first: they are older than anything queued in
		// this process before the first load.
		q.events = append(slices.Clone(sq.Events), q.events...)
		q.dropped += sq.Dropped
	}
	e.mu.Unlock()
	return nil
}

// savedQueue is one notifier's undelivered events as QueueCursor keeps
// them.
type savedQueue struct {
	Events  []Event `json:"events"`
	Dropped int     `json:"dropped,omitempty"`
}

// save writes the active alerts and the undelivered events in one
// transaction.
func (e *Evaluator) save(ctx context.Context) error {
	e.mu.Lock()
	raw, err := json.Marshal(e.active)
	queues := map[string]savedQueue{}
	for name, q := range e.queues {
		queues[name] = savedQueue{Events: q.events, Dropped: q.dropped}
	}
	rawQueue, qerr := json.Marshal(queues)
	e.mu.Unlock()
	if err = errors.Join(err, qerr); err != nil {
		return fmt.Errorf("encode alert state: %w", err)
	}
	if err := e.o.Store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.CursorSet(StateCursor, string(raw)); err != nil {
			return err
		}
		return tx.CursorSet(QueueCursor, string(rawQueue))
	}); err != nil {
		return fmt.Errorf("save alert state: %w", err)
	}
	return nil
}
