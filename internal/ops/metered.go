package ops

import (
	"context"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// MeterApplier wraps the replay's Applier so every outcome is counted:
// applied changes by kind, parked ones (permanent errors) by reason, and
// ones put back for a later try (temporary errors, back-off, pause) by
// reason. The daemon wraps the engine's applier with it; m nil counts
// nothing.
//
// The wrapper keeps the optional replay.ParentChecker of the applier it
// wraps, because replay wakes waiting sub-tasks only through it.
func MeterApplier(a replay.Applier, m *metrics.Metrics) replay.Applier {
	x := meteredApplier{a: a, m: m}
	if pc, ok := a.(replay.ParentChecker); ok {
		return meteredParentApplier{meteredApplier: x, pc: pc}
	}
	return x
}

type meteredParentApplier struct {
	meteredApplier
	pc replay.ParentChecker
}

func (x meteredParentApplier) ParentReady(ctx context.Context, c wire.Change) (bool, error) {
	return x.pc.ParentReady(ctx, c)
}

type meteredApplier struct {
	a replay.Applier
	m *metrics.Metrics
}

func (x meteredApplier) Apply(ctx context.Context, c wire.Change) error {
	err := x.a.Apply(ctx, c)
	switch {
	case err == nil:
		x.m.Inc(metrics.Applied, string(c.Kind))
		// From the change in the origin Jira to its application here; the
		// two Jiras' clocks may differ a little, a negative skew counts 0.
		if !c.At.IsZero() {
			x.m.ObserveLatency(max(time.Since(c.At), 0))
		}
	case ctx.Err() != nil:
	case errclass.IsRetryable(err) || errclass.Of(err) == errclass.Pause:
		x.m.Inc(metrics.Retried, reasonLabel(err))
		if d := errclass.RetryAfter(err); d > 0 {
			x.m.Counter(metrics.JiraRetryAfter, d.Seconds())
		}
	default:
		x.m.Inc(metrics.Parked, reasonLabel(err))
	}
	return err
}

func reasonLabel(err error) string {
	if r := errclass.ReasonOf(err); r != "" {
		return r
	}
	return errclass.Of(err).String()
}

// MeteredActions are Actions that also count the operator's decisions:
// changes_retried_total{reason="operator"} and changes_skipped_total by the
// failure's error class.
type MeteredActions struct {
	Actions Actions
	Metrics *metrics.Metrics
}

// Retry retries and counts.
func (a MeteredActions) Retry(ctx context.Context, id int64) (store.Failure, error) {
	f, err := a.Actions.Retry(ctx, id)
	if err == nil {
		a.Metrics.Inc(metrics.Retried, "operator")
	}
	return f, err
}

// Skip skips and counts.
func (a MeteredActions) Skip(ctx context.Context, id int64) (store.Failure, error) {
	f, err := a.Actions.Skip(ctx, id)
	if err == nil {
		reason := f.ErrorClass
		if reason == "" {
			reason = "unknown"
		}
		a.Metrics.Inc(metrics.Skipped, reason)
	}
	return f, err
}
