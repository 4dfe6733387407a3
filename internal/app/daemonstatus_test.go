package app

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
)

// TestStatusLongPoll: GET /status answers at once with its generation; with
// after= and wait= it answers when the daemon has done something (here:
// quarantined a file), after wait when it has not, at once for another
// process's generation, 400 for a bad wait, 429 when too many wait, and a
// wait in progress ends when the daemon stops.
func TestStatusLongPoll(t *testing.T) {
	t.Parallel()
	master, _, root := fileSites(t)
	master.env["JIRABRIDGE_POLL_INTERVAL"] = "1s"
	master.must("init", "--out", filepath.Join(root, "hs.json"))
	waiting := make(chan struct{}, 1)
	md := startDaemonWith(t, master, daemonOptions{onStatusWait: func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, resp, err := md.getStatus(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation == "" || resp.Header.Get("X-Jirabridge-Generation") != st.Generation || st.State != "CREATED" {
		t.Fatalf("GET /status: generation %q, header %q, state %s", st.Generation, resp.Header.Get("X-Jirabridge-Generation"), st.State)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}

	// Another process's generation (the daemon was restarted since):
	// the answer comes at once, whatever the wait.
	if got, _, err := md.getStatus(ctx, "0000.0", time.Hour); err != nil || got.Generation == "0000.0" {
		t.Errorf("after another process's generation: %q, %v", got.Generation, err)
	}

	// Bad waits are refused.
	for _, q := range []string{"after=x&wait=soon", "after=x&wait=-2s"} {
		resp, err := http.Get("http://" + md.http + "/status?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "wait=") {
			t.Errorf("GET /status?%s: %d %s, want 400 naming wait=", q, resp.StatusCode, b)
		}
	}

	// Nothing happens: the answer comes after wait, same generation. (The
	// daemon's first look at its sync row may move it once: then wait
	// again from there.)
	cur := st.Generation
	for range 3 {
		start := time.Now()
		got, _, err := md.getStatus(ctx, cur, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if got.Generation == cur {
			if el := time.Since(start); el < 300*time.Millisecond {
				t.Errorf("an unchanged status came after %s, want after the 300ms wait", el)
			}
			break
		}
		cur = got.Generation
	}

	// Something happens (a file the file drop quarantines): a waiter with
	// an hour's wait is answered; every answer before the hour is a change
	// (the daemon's first look at its sync row may come first).
	in := master.env["JIRABRIDGE_FILEDROP_INCOMING_DIR"]
	if err := os.WriteFile(filepath.Join(in, "junk.eml"), []byte("not a mail at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		st  daemonStatus
		err error
	}
	woke := make(chan answer, 1)
	for scrapeSum(t, "http://"+md.http+"/metrics", "jirabridge_quarantined_total") < 1 {
		go func() {
			st, _, err := md.getStatus(ctx, cur, time.Hour)
			woke <- answer{st, err}
		}()
		select {
		case a := <-woke:
			if a.err != nil || a.st.Generation == cur {
				t.Fatalf("waiter answered with %q (was %q), %v", a.st.Generation, cur, a.err)
			}
			cur = a.st.Generation
		case <-ctx.Done():
			t.Fatalf("a quarantined file did not wake the waiter; log:\n%s", md.logs)
		}
	}

	// Too many waiters: 429 with Retry-After, and the slots come back.
	for range cap(md.d.waiters) {
		md.d.waiters <- struct{}{}
	}
	resp, err = http.Get("http://" + md.http + "/status?wait=1s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("with every slot taken: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for range cap(md.d.waiters) {
		<-md.d.waiters
	}

	// A wait in progress ends when the daemon stops (SIGTERM), with the
	// status as it is, so that clients do not hold up the stop (the
	// server would give up on them after 5s, unanswered).
	for len(waiting) > 0 {
		<-waiting // the earlier waits'
	}
	go func() {
		st, _, err := md.getStatus(ctx, cur, time.Hour)
		woke <- answer{st, err}
	}()
	select {
	case <-waiting:
	case a := <-woke:
		t.Fatalf("the waiter returned before the stop: %+v, %v", a.st.Generation, a.err)
	}
	md.stop(t)
	select {
	case a := <-woke:
		if a.err != nil || a.st.State != "CREATED" {
			t.Errorf("a waiter when the daemon stopped: %s, %v; want the status", a.st.State, a.err)
		}
	case <-ctx.Done():
		t.Fatal("a waiter was not answered when the daemon stopped")
	}
}

// TestDaemonMetricsConflictAndFilter runs two daemons and makes, for real,
// a field conflict (both sides edit the description while beta's bridge is
// down, so neither has heard of the other's edit) and a filtered item (a
// comment restricted to a role, which stays on alpha), and scrapes each
// running daemon's /metrics: conflicts_total moves on both sides and
// changes_skipped_total{reason="restricted_comment"} on alpha.
func TestDaemonMetricsConflictAndFilter(t *testing.T) {
	t.Parallel()
	alpha, beta := testSites(t)
	master, slave := demoBridges(t, alpha, beta, fileDropEnv(t.TempDir()))
	for _, s := range []*site{master, slave} {
		s.env["JIRABRIDGE_BATCH_LINGER"], s.env["JIRABRIDGE_ACK_DELAY"] = "100ms", "300ms"
	}
	md, sd := startDaemon(t, master), startDaemon(t, slave)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// An issue both sides have, edited on each side once already.
	crossBothWays(t, alpha, beta, 10000, func() { sd.next(ctx, t) }, func() { md.next(ctx, t) })
	key := func(s *demoSite) string {
		c, _ := jira.New(jira.Options{BaseURL: s.URL, Username: "admin", Password: "admin"})
		var k string
		if err := c.SearchAll(ctx, "project = "+s.Project, []string{"summary"}, nil, func(is jira.Issue) error { k = is.Key; return nil }); err != nil {
			t.Fatal(err)
		}
		return k
	}
	alphaKey, betaKey := key(alpha), key(beta)

	// Beta's bridge goes down; both sides edit the description.
	sd.stop(t)
	before, _, err := md.getStatus(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := alpha.Client("alice")
	if err := alice.EditIssue(ctx, alphaKey, map[string]any{"description": "alpha's words"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	// And a comment restricted to a group (one the sync user is in, so
	// the bridge sees it): it never leaves alpha.
	if _, err := alice.AddComment(ctx, alphaKey, "for software users only", &jira.Visibility{Type: "group", Value: "jira-software-users"}, nil); err != nil {
		t.Fatal(err)
	}
	metricsOf := func(d *daemonSite) string { return "http://" + d.http + "/metrics" }
	md.waitStatus(t, "alpha sent its edit and skipped the comment", time.Minute, func(st daemonStatus) bool {
		return st.Link.HighestSent > before.Link.HighestSent && st.Link.Unsent == 0 && st.Pending == 0 &&
			scrapeSeries(t, metricsOf(md), "jirabridge_changes_skipped_total", "reason", "restricted_comment") >= 1
	})
	bj, _ := beta.Client("bjones")
	if err := bj.EditIssue(ctx, betaKey, map[string]any{"description": "beta's words"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	sd = startDaemon(t, slave)

	// Each side applies the other's edit over one of its own that the
	// other had not seen: a conflict on both.
	for _, d := range []*daemonSite{sd, md} {
		d.waitStatus(t, "a conflict counted", time.Minute, func(st daemonStatus) bool {
			return st.Conflicts >= 1 && scrapeSum(t, metricsOf(d), "jirabridge_conflicts_total") >= 1
		}, md, sd)
	}
	// Both end with the same description, the newer edit's, and the
	// restricted comment only on alpha.
	for {
		sa, err := alpha.snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := beta.snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, b := sa["Printer on fire"], sb["Printer on fire"]
		if a.Description == b.Description {
			if a.Description != "beta's words" || a.Comments != 1 || b.Comments != 0 {
				t.Errorf("after the conflict: alpha %+v, beta %+v; want beta's words, the comment on alpha only", a, b)
			}
			break
		}
		md.next(ctx, t)
	}
	for _, d := range []*daemonSite{md, sd} {
		if got := scrapeSeries(t, metricsOf(d), "jirabridge_changes_skipped_total", "reason", "restricted_comment"); d == sd && got != 0 {
			t.Errorf("beta skipped %v restricted comments, want 0 (it has none)", got)
		}
	}
}

// scrapeSeries adds up the samples of the metric name whose label has
// the value.
func scrapeSeries(t *testing.T, url, name, label, value string) float64 {
	t.Helper()
	p, err := scrapeMetrics(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return p.Where(name, label, value)
}
