package app

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestBenchCommand runs `jirabridge bench` small over the file drop and
// checks the JSON it prints: converged, identical, figures filled in.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two bridges")
	}
	var out, errOut strings.Builder
	code := Main([]string{"bench", "--transport", "loopback", "--changes", "60", "--issues", "6", "--timeout", "90s", "--seed", "7"},
		Env{Stdout: &out, Stderr: &errOut, Context: context.Background(), Getenv: func(string) string { return "" }})
	if code != ExitOK {
		t.Fatalf("bench exited %d:\n%s\n%s", code, out.String(), errOut.String())
	}
	var r benchResult
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("bench printed no JSON object: %v\n%s", err, out.String())
	}
	if !r.Identical || r.Changes != 60 || r.Issues != 6 || r.Seed != 7 {
		t.Errorf("result %+v: want identical, 60 changes, 6 issues, seed 7", r)
	}
	if r.ChangesPerSecond <= 0 || r.Latency.Samples == 0 || r.Latency.Max < r.Latency.P50 || r.ChangesEnvelopes == 0 ||
		r.WireBytes == 0 || r.PeakRSSBytes == 0 || r.JiraCalls["alpha"] <= 0 || r.JiraCalls["beta"] <= 0 {
		t.Errorf("figures missing: %+v", r)
	}
	for _, side := range []string{"alpha", "beta"} {
		if r.JiraCallsByEndpoint[side]["search"] <= 0 || r.JiraCallsPerSyncedByEndpoint[side]["search"] <= 0 {
			t.Errorf("%s: calls by endpoint %v, per synced change %v: want searches counted", side, r.JiraCallsByEndpoint[side], r.JiraCallsPerSyncedByEndpoint[side])
		}
	}
	if got := r.SyncedChanges["alpha_detected"] + r.SyncedChanges["beta_detected"]; got < 30 {
		t.Errorf("bridges detected %d changes of 60", got)
	}
}

func TestBenchUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"bench", "--transport", "pigeon"},
		{"bench", "--issues", "1"},
		{"bench", "--transport", "smtp"},
	} {
		var out, errOut strings.Builder
		code := Main(args, Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errOut.String())
		}
	}
}

// BenchmarkBench is `jirabridge bench` at small sizes, reporting its
// figures as benchmark metrics: go test -run '^$' -bench Bench ./internal/app
// over the embedded mail server.
func BenchmarkBench(b *testing.B) {
	transport := "mailtest"
	for b.Loop() {
		r, err := runBench(context.Background(), benchOptions{Transport: transport, Changes: 300, Issues: 30, Timeout: 2 * time.Minute, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if !r.Identical {
			b.Fatalf("Jiras differ: %v", r.Differences)
		}
		b.ReportMetric(r.ChangesPerSecond, "changes/s")
		b.ReportMetric(r.Latency.P50, "p50-ms")
		b.ReportMetric(r.Latency.P99, "p99-ms")
		b.ReportMetric(r.EnvelopesPerChange, "mails/change")
		b.ReportMetric(r.BytesPerChange, "bytes/change")
		b.ReportMetric(r.JiraCallsPerSynced["alpha"], "alpha-calls/change")
		b.ReportMetric(r.JiraCallsPerSynced["beta"], "beta-calls/change")
		b.ReportMetric(float64(r.PeakRSSBytes)/(1<<20), "peak-MiB")
	}
}
