package engine_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
)

// withMetrics gives both bridges their own registry, served on /metrics
// by an httptest server, and restarts them with it.
func withMetrics(t *testing.T, w *world) (alphaURL, betaURL string) {
	t.Helper()
	var urls []string
	for _, b := range []*bridge{w.a, w.b} {
		reg := prometheus.NewRegistry()
		b.metrics = metrics.New(reg)
		srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL+"/metrics")
		b.restart()
	}
	return urls[0], urls[1]
}

// scrape reads a /metrics page and returns sample -> value, samples named
// as Prometheus prints them (name{label="v"}).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConflictsAreCounted: a conflict the applier records moves
// jirabridge_conflicts_total on the side that recorded it, by exactly the
// number of conflicts in its store.
func TestConflictsAreCounted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	alphaURL, betaURL := withMetrics(t, w)
	ctx := context.Background()
	alice, asmith := person(t, w.alpha, 0), person(t, w.beta, 0)
	ref := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "start"})
	w.settle()
	for _, u := range []string{alphaURL, betaURL} {
		if got := scrape(t, u)["jirabridge_conflicts_total"]; got != 0 {
			t.Fatalf("%s: conflicts before any = %v, want 0", u, got)
		}
	}
	betaKey := w.a.peerKey(t, ref.Key)
	if err := alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "alpha's"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := asmith.EditIssue(ctx, betaKey, map[string]any{"summary": "beta's"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	total := conflictsMatchStores(t, w, alphaURL, betaURL)
	if total == 0 {
		t.Error("conflicts_total did not move on either side")
	}
}

// TestFilteredChangesAreCounted: a restricted comment and an attachment
// over the size limit are left out by detection and counted in
// changes_skipped_total by reason, once, however often the overlap brings
// the issue back.
func TestFilteredChangesAreCounted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withContent(t, w)
	alphaURL, _ := withMetrics(t, w)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r := newIssue(t, alice, "ALPHA", "Bug", "filtered things", "")
	w.settle()
	// The sync user sees the restricted comment, and still must not send it.
	if err := w.alpha.Sim.AddRoleMember(w.alpha.Project, "Developers", enginetest.SyncUser); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddComment(ctx, r.Key, "for developers only", &jira.Visibility{Type: "role", Value: "Developers"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddAttachment(ctx, r.Key, "big.bin", make([]byte, 2<<20)); err != nil {
		t.Fatal(err)
	}
	w.settle()
	w.settle()
	got := scrape(t, alphaURL)
	for _, reason := range []string{engine.SkipRestrictedComment, engine.SkipFilteredAttachment} {
		sample := `jirabridge_changes_skipped_total{reason="` + reason + `"}`
		if got[sample] != 1 {
			t.Errorf("%s = %v, want 1", sample, got[sample])
		}
	}
}

// conflictsMatchStores checks that each bridge's conflicts_total equals
// the conflicts recorded in its store, and returns their sum.
func conflictsMatchStores(t *testing.T, w *world, alphaURL, betaURL string) float64 {
	t.Helper()
	total := 0.0
	for _, x := range []struct {
		b   *bridge
		url string
	}{{w.a, alphaURL}, {w.b, betaURL}} {
		var n int
		if err := x.b.st.View(context.Background(), func(tx *store.Tx) error {
			cs, err := tx.ConflictList(syncID, 100)
			n = len(cs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got := scrape(t, x.url)["jirabridge_conflicts_total"]
		if got != float64(n) {
			t.Errorf("%s: conflicts_total = %v, want %d (recorded in its store)", x.b.site.Name, got, n)
		}
		total += got
	}
	return total
}
