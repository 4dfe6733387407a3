// Package metrics holds the bridge's Prometheus metrics. They are built
// once per process with New on an injected registry (no globals), passed to
// each part, and every method is safe on a nil *Metrics so that parts and
// tests that do not care about metrics need not build any.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is the set of the bridge's metrics. Labels are low-cardinality:
// kinds, reasons, classes, endpoints; never issue keys or user names.
type Metrics struct {
	EnvelopesSent     *prometheus.CounterVec // kind
	EnvelopesReceived *prometheus.CounterVec // kind
	ChangesSent       *prometheus.CounterVec // kind
	ChangesReceived   *prometheus.CounterVec // kind
	ChangesApplied    *prometheus.CounterVec // kind
	ChangesParked     *prometheus.CounterVec // reason
	ChangesRetried    *prometheus.CounterVec // reason
	ChangesSkipped    *prometheus.CounterVec // reason
	Quarantined       *prometheus.CounterVec // reason
	Duplicates        prometheus.Counter
	GapsOpened        prometheus.Counter
	ResendRequests    *prometheus.CounterVec // direction: asked, answered, pruned
	Faults            *prometheus.CounterVec // fault: drop, duplicate, ... (test transports)
	OutboxDepth       prometheus.Gauge
	OutboxOldestAge   prometheus.Gauge // seconds
	PendingChanges    prometheus.Gauge
	InboxDepth        prometheus.Gauge
	PeerLastHeard     prometheus.Gauge // unix seconds
	ReplayLatency     prometheus.Histogram
	JiraCalls         *prometheus.CounterVec // endpoint, status
	JiraRetryAfter    prometheus.Counter     // seconds waited
	TransportErrors   *prometheus.CounterVec // transport (smtp, imap, file), class
	SyncState         *prometheus.GaugeVec   // state: 1 for the current one
	Conflicts         prometheus.Counter
	AlertsFiring      *prometheus.GaugeVec // alert
}

// New builds the metrics and registers them on reg (nil: not registered,
// handy in tests that read the values directly).
func New(reg prometheus.Registerer) *Metrics {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "jirabridge", Name: name, Help: help}, labels)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "jirabridge", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "jirabridge", Name: name, Help: help})
	}
	m := &Metrics{
		EnvelopesSent:     cv("envelopes_sent_total", "Envelopes handed to the transport, by kind.", "kind"),
		EnvelopesReceived: cv("envelopes_received_total", "Envelopes opened and stored in the inbox, by kind.", "kind"),
		ChangesSent:       cv("changes_sent_total", "Changes detected and queued for the peer, by change kind.", "kind"),
		ChangesReceived:   cv("changes_received_total", "Changes released from the inbox to replay, by change kind.", "kind"),
		ChangesApplied:    cv("changes_applied_total", "Changes written to the local Jira, by change kind.", "kind"),
		ChangesParked:     cv("changes_parked_total", "Changes parked for an operator, by reason.", "reason"),
		ChangesRetried:    cv("changes_retried_total", "Change applications retried, by reason.", "reason"),
		ChangesSkipped:    cv("changes_skipped_total", "Changes skipped (by an operator or a filter), by reason.", "reason"),
		Quarantined:       cv("quarantined_total", "Inbound mails or files quarantined, by reason.", "reason"),
		Duplicates:        c("duplicates_dropped_total", "Inbound envelopes dropped as duplicates by sequence number."),
		GapsOpened:        c("gaps_opened_total", "Gaps in the inbound sequence noticed."),
		ResendRequests:    cv("resend_requests_total", "Resend requests, by direction (asked, answered, pruned).", "direction"),
		Faults:            cv("faults_injected_total", "Faults injected by a fault-injecting transport, by fault.", "fault"),
		OutboxDepth:       g("outbox_unacked", "Envelopes sent but not yet acked by the peer."),
		OutboxOldestAge:   g("outbox_oldest_unacked_age_seconds", "Age of the oldest unacked envelope."),
		PendingChanges:    g("pending_changes", "Detected changes not yet sealed into an envelope."),
		InboxDepth:        g("inbox_unreleased", "Envelopes stored but not yet released to replay."),
		PeerLastHeard:     g("peer_last_heard_timestamp_seconds", "When anything was last heard from the peer."),
		ReplayLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "jirabridge", Name: "change_latency_seconds",
			Help: "From the change in the origin Jira to its application here.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		JiraCalls:       cv("jira_calls_total", "Jira REST calls, by endpoint template and status (0: no answer).", "endpoint", "status"),
		JiraRetryAfter:  c("jira_retry_after_seconds_total", "Seconds waited because Jira asked (Retry-After)."),
		TransportErrors: cv("transport_errors_total", "Transport errors, by transport and class.", "transport", "class"),
		SyncState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "jirabridge", Name: "sync_state",
			Help: "1 for the sync's current state."}, []string{"state"}),
		Conflicts: c("conflicts_total", "Fields, watchers or links changed on both sides before either saw the other's change."),
		AlertsFiring: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "jirabridge", Name: "alerts_firing",
			Help: "1 while an alert condition holds."}, []string{"alert"}),
	}
	if reg != nil {
		reg.MustRegister(m.EnvelopesSent, m.EnvelopesReceived, m.ChangesSent, m.ChangesReceived, m.ChangesApplied,
			m.ChangesParked, m.ChangesRetried, m.ChangesSkipped, m.Quarantined, m.Duplicates, m.GapsOpened,
			m.ResendRequests, m.Faults, m.OutboxDepth, m.OutboxOldestAge, m.PendingChanges, m.InboxDepth,
			m.PeerLastHeard, m.ReplayLatency, m.JiraCalls, m.JiraRetryAfter, m.TransportErrors, m.SyncState,
			m.Conflicts, m.AlertsFiring)
	}
	return m
}

// Inc adds one to a labelled counter of m; nil-safe.
func (m *Metrics) Inc(vec func(*Metrics) *prometheus.CounterVec, labels ...string) {
	if m == nil {
		return
	}
	vec(m).WithLabelValues(labels...).Inc()
}

// Add adds n to a labelled counter of m; nil-safe.
func (m *Metrics) Add(vec func(*Metrics) *prometheus.CounterVec, n float64, labels ...string) {
	if m == nil {
		return
	}
	vec(m).WithLabelValues(labels...).Add(n)
}

// Counter adds n to a plain counter of m; nil-safe.
func (m *Metrics) Counter(c func(*Metrics) prometheus.Counter, n float64) {
	if m == nil {
		return
	}
	c(m).Add(n)
}

// Set sets a gauge of m; nil-safe.
func (m *Metrics) Set(gauge func(*Metrics) prometheus.Gauge, v float64) {
	if m == nil {
		return
	}
	gauge(m).Set(v)
}

// JiraCall counts one Jira call; nil-safe. It fits jira.Options.OnCall.
func (m *Metrics) JiraCall(endpoint string, status int) {
	if m == nil {
		return
	}
	m.JiraCalls.WithLabelValues(endpoint, itoa(status)).Inc()
}

// ObserveLatency records a change's end-to-end latency; nil-safe.
func (m *Metrics) ObserveLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.ReplayLatency.Observe(d.Seconds())
}

// SetSyncState marks state as the current one; nil-safe.
func (m *Metrics) SetSyncState(state string, all []string) {
	if m == nil {
		return
	}
	for _, s := range all {
		v := 0.0
		if s == state {
			v = 1
		}
		m.SyncState.WithLabelValues(s).Set(v)
	}
}

// Accessors for Inc/Add/Counter/Set, so call sites read as
// m.Inc(metrics.Applied, "issue.update").
var (
	EnvelopesSent     = func(m *Metrics) *prometheus.CounterVec { return m.EnvelopesSent }
	EnvelopesReceived = func(m *Metrics) *prometheus.CounterVec { return m.EnvelopesReceived }
	ChangesSent       = func(m *Metrics) *prometheus.CounterVec { return m.ChangesSent }
	ChangesReceived   = func(m *Metrics) *prometheus.CounterVec { return m.ChangesReceived }
	Applied           = func(m *Metrics) *prometheus.CounterVec { return m.ChangesApplied }
	Parked            = func(m *Metrics) *prometheus.CounterVec { return m.ChangesParked }
	Retried           = func(m *Metrics) *prometheus.CounterVec { return m.ChangesRetried }
	Skipped           = func(m *Metrics) *prometheus.CounterVec { return m.ChangesSkipped }
	Quarantined       = func(m *Metrics) *prometheus.CounterVec { return m.Quarantined }
	ResendRequests    = func(m *Metrics) *prometheus.CounterVec { return m.ResendRequests }
	Faults            = func(m *Metrics) *prometheus.CounterVec { return m.Faults }
	TransportErrors   = func(m *Metrics) *prometheus.CounterVec { return m.TransportErrors }
	Duplicates        = func(m *Metrics) prometheus.Counter { return m.Duplicates }
	GapsOpened        = func(m *Metrics) prometheus.Counter { return m.GapsOpened }
	Conflicts         = func(m *Metrics) prometheus.Counter { return m.Conflicts }
	JiraRetryAfter    = func(m *Metrics) prometheus.Counter { return m.JiraRetryAfter }
	OutboxDepth       = func(m *Metrics) prometheus.Gauge { return m.OutboxDepth }
	OutboxOldestAge   = func(m *Metrics) prometheus.Gauge { return m.OutboxOldestAge }
	PendingChanges    = func(m *Metrics) prometheus.Gauge { return m.PendingChanges }
	InboxDepth        = func(m *Metrics) prometheus.Gauge { return m.InboxDepth }
	PeerLastHeard     = func(m *Metrics) prometheus.Gauge { return m.PeerLastHeard }
)

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
