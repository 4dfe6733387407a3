// Package ops tells operators what the bridge needs from them: it evaluates
// alert conditions from the store (parked changes, quarantined mail, paused
// syncs, old outboxes, open gaps, a silent peer, SMTP rejections), sends them
// as mail and as Alertmanager-style webhooks, and serves the HTTP endpoints
// the daemon mounts: /healthz, /readyz, /metrics and the status page with its
// Retry and Skip actions.
//
// Personal data stays out: alerts carry issue keys, change kinds, Jira's
// error text and the commands to run, never the field values of an issue.
package ops

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Alert names: the alertname label of the webhook and the alert label of
// the jirabridge_alerts_firing metric.
const (
	AlertChangeParked    = "JirabridgeChangeParked"
	AlertMailQuarantined = "JirabridgeMailQuarantined"
	AlertGapOpen         = "JirabridgeGapStillOpen"
	AlertPeerSilent      = "JirabridgePeerSilent"
	AlertSyncPaused      = "JirabridgeSyncPaused"
	AlertSMTPRejected    = "JirabridgeSMTPRejected"
	AlertOutboxOld       = "JirabridgeOutboxOld"
	// AlertNotifyFailing is raised by ops itself when an alert channel
	// (the alert mail, the webhook) fails; it reaches the operator through
	// the other channels, the status page and the metric, and through the
	// failing channel once it works again.
	AlertNotifyFailing = "JirabridgeAlertDeliveryFailing"
)

// Severities, as the severity label.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

// Alert is one condition that holds now. Its identity is Name, SyncID and
// Key; the other fields describe it and may change while it lasts (a count,
// an error text) without raising it again.
type Alert struct {
	Name     string // one of the Alert* names
	SyncID   string
	SyncName string
	// Key tells alerts of one name and sync apart: the failure id of a
	// parked change, the reason of quarantined mail, the sender and range
	// of a gap. Empty when there is one per sync.
	Key       string
	Severity  string
	IssueKey  string // the local issue key, when the alert is about one issue
	Kind      string // change kind ("issue.update", ...) or event
	Reason    string // error class or reason label ("authentication", "forged", ...)
	FailureID int64  // the `jirabridge messages` id, when there is one
	Count     int    // how many records the alert stands for (quarantined mails)
	// Summary is one line saying what happened.
	Summary string
	// Error is the error as the other side gave it (Jira's error message,
	// the SMTP reply). It never holds field values of an issue.
	Error string
	// Action says what the operator does about it.
	Action string
	// Commands are the exact commands to inspect and fix it.
	Commands []string
	// Since is when the condition began, as the store knows it (the
	// failure's first sighting, the quarantine time); zero: when ops first
	// saw it.
	Since time.Time
}

// Fingerprint identifies the alert across evaluations and restarts: a hash
// of its name, sync and key (the Alertmanager fingerprint field).
func (a Alert) Fingerprint() string {
	h := sha256.Sum256([]byte(a.Name + "\x00" + a.SyncID + "\x00" + a.Key))
	return hex.EncodeToString(h[:8])
}

// Status of an event.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Event is what a notifier is told: an alert that began (or is repeated
// while it lasts) or one that ended.
type Event struct {
	Alert
	Status   string    // StatusFiring or StatusResolved
	Repeat   bool      // a reminder of an alert already sent
	StartsAt time.Time // when the condition began
	EndsAt   time.Time // when it ended; zero while firing
	At       time.Time // when ops produced the event
}

// Labels are the event's Alertmanager labels: low-cardinality identity,
// no personal data.
func (e Event) Labels() map[string]string {
	l := map[string]string{"alertname": e.Name, "severity": e.Severity, "service": "jirabridge"}
	if e.SyncID != "" {
		l["sync"] = e.SyncID
	}
	if e.IssueKey != "" {
		l["issue"] = e.IssueKey
	}
	if e.Reason != "" {
		l["reason"] = e.Reason
	}
	if e.Kind != "" {
		l["kind"] = e.Kind
	}
	if e.FailureID != 0 {
		l["message_id"] = fmt.Sprint(e.FailureID)
	}
	return l
}

// Annotations are the event's Alertmanager annotations: the texts a person
// reads.
func (e Event) Annotations() map[string]string {
	a := map[string]string{"summary": e.Summary}
	if e.Error != "" {
		a["error"] = e.Error
	}
	if e.Action != "" {
		a["action"] = e.Action
	}
	if len(e.Commands) > 0 {
		cmds := ""
		for i, c := range e.Commands {
			if i > 0 {
				cmds += "\n"
			}
			cmds += c
		}
		a["commands"] = cmds
	}
	return a
}
