package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNilMetricsAreSafe(t *testing.T) {
	var m *Metrics
	m.Inc(Applied, "issue.update")
	m.Add(Quarantined, 2, "bad_signature")
	m.Counter(Duplicates, 1)
	m.Set(OutboxDepth, 3)
	m.JiraCall("issue/{id}", 204)
	m.ObserveLatency(0)
	m.SetSyncState("RUNNING", []string{"RUNNING"})
}

func TestCountersRegisterAndCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Inc(Applied, "issue.update")
	m.Inc(Applied, "issue.update")
	m.JiraCall("issue/{id}", 401)
	m.Counter(Duplicates, 1)
	m.SetSyncState("PAUSED", []string{"RUNNING", "PAUSED"})
	if got := testutil.ToFloat64(m.ChangesApplied.WithLabelValues("issue.update")); got != 2 {
		t.Errorf("applied = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.JiraCalls.WithLabelValues("issue/{id}", "401")); got != 1 {
		t.Errorf("jira calls = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.SyncState.WithLabelValues("RUNNING")); got != 0 {
		t.Errorf("RUNNING = %v, want 0", got)
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n == 0 {
		t.Fatalf("gather: %d, %v", n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "jirabridge_") {
			t.Errorf("metric %s lacks the jirabridge_ prefix", mf.GetName())
		}
	}
	if itoa(-42) != "-42" || itoa(7) != "7" {
		t.Error("itoa")
	}
}
