package engine_test

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/app"
	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

func sum(m map[wire.ChangeKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func mustNoDiff(t *testing.T, w *world, alphaKey string) string {
	t.Helper()
	betaKey := w.a.peerKey(t, alphaKey)
	if d := diffIssues(t, w, alphaKey, betaKey); len(d) > 0 {
		t.Fatalf("issues differ:\n%s", strings.Join(d, "\n"))
	}
	return betaKey
}

// fullFields sets every synced field of the alpha side (or beta with the
// beta names) to a value chosen by variant.
func fullFields(s *enginetest.Site, variant int) map[string]any {
	if s.Name == "alpha" {
		sev := []string{"S1", "S2", "S3"}[variant%3]
		return map[string]any{
			"summary":               "Summary " + s.Name + string(rune('A'+variant)),
			"description":           "Description\nline two " + s.Name,
			"priority":              map[string]string{"name": []string{"High", "Low", "Medium"}[variant%3]},
			"labels":                []string{"l" + string(rune('a'+variant)), "common"},
			"duedate":               []string{"2026-05-01", "2026-06-15", "2026-07-30"}[variant%3],
			"assignee":              map[string]string{"name": s.People[variant%3]},
			s.Field["Customer Ref"]: "REF-" + string(rune('0'+variant)),
			s.Field["Effort"]:       float64(variant) + 0.5,
			s.Field["Severity"]:     map[string]string{"value": sev},
			s.Field["Platforms"]:    []map[string]string{{"value": "Linux"}, {"value": []string{"Windows", "macOS", "Windows"}[variant%3]}},
			s.Field["Target Date"]:  []string{"2026-08-01", "2026-09-01", "2026-10-01"}[variant%3],
			s.Field["Go Live"]:      []string{"2026-08-01T10:00:00.000+0000", "2026-09-01T12:30:00.000+0200", "2026-10-01T00:00:00.000+0000"}[variant%3],
			s.Field["Reviewer"]:     map[string]string{"name": s.People[(variant+1)%3]},
		}
	}
	imp := []string{"Critical", "Major", "Minor"}[variant%3]
	return map[string]any{
		"summary":                    "Summary " + s.Name + string(rune('A'+variant)),
		"description":                "Beta text " + string(rune('a'+variant)),
		"priority":                   map[string]string{"name": []string{"Highest", "Lowest", "Medium"}[variant%3]},
		"labels":                     []string{"b" + string(rune('a'+variant))},
		"duedate":                    []string{"2027-01-01", "2027-02-02", "2027-03-03"}[variant%3],
		"assignee":                   map[string]string{"name": s.People[(variant+2)%3]},
		s.Field["Partner Reference"]: "BREF-" + string(rune('0'+variant)),
		s.Field["Estimate"]:          float64(variant) * 2,
		s.Field["Impact"]:            map[string]string{"value": imp},
		s.Field["Operating Systems"]: []map[string]string{{"value": "Mac"}},
		s.Field["Due By"]:            []string{"2027-04-01", "2027-05-01", "2027-06-01"}[variant%3],
		s.Field["Launch"]:            []string{"2027-04-01T08:00:00.000+0000", "2027-05-01T09:15:00.000-0500", "2027-06-01T23:59:00.000+0000"}[variant%3],
		s.Field["Checker"]:           map[string]string{"name": s.People[variant%3]},
	}
}

func createIssue(t *testing.T, c *jira.Client, s *enginetest.Site, typ string, fields map[string]any) jira.Ref {
	t.Helper()
	f := maps.Clone(fields)
	f["project"] = map[string]string{"key": s.Project}
	f["issuetype"] = map[string]string{"name": typ}
	ref, err := c.CreateIssue(context.Background(), f, nil)
	if err != nil {
		t.Fatalf("create issue on %s: %v", s.Name, err)
	}
	return ref
}

func transition(t *testing.T, c *jira.Client, key, to string) {
	t.Helper()
	ctx := context.Background()
	trs, err := c.Transitions(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trs {
		if tr.To.Name == to {
			if err := c.DoTransition(ctx, key, tr.ID, nil, nil); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s: no transition to %s", key, to)
}

// TestEveryChangeArrivesWithoutEcho: a person creates an issue on alpha
// with every kind of field; edits every field and the status on both
// sides, changes the issue type and clears fields; after each step both
// sides are identical after mapping, and neither side sends back what it
// applied.
func TestEveryChangeArrivesWithoutEcho(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	ref := createIssue(t, alice, w.alpha, "Task", fullFields(w.alpha, 0))
	w.settle()
	if n := issueCount(t, w.beta); n != 1 {
		t.Fatalf("beta has %d issues, want 1", n)
	}
	betaKey := mustNoDiff(t, w, ref.Key)
	if w.sentAB[wire.IssueCreate] != 1 || sum(w.sentAB) != 1 {
		t.Errorf("alpha sent %v, want one create", w.sentAB)
	}
	if w.sentBA[wire.IssuePair] != 1 || sum(w.sentBA) != 1 {
		t.Errorf("beta sent %v, want only the pair announcement", w.sentBA)
	}

	// Every field edited on alpha, and the status.
	if err := alice.EditIssue(ctx, ref.Key, fullFields(w.alpha, 1), nil, nil); err != nil {
		t.Fatal(err)
	}
	transition(t, alice, ref.Key, "In Progress")
	w.settle()
	mustNoDiff(t, w, ref.Key)
	if sum(w.sentBA) != 1 {
		t.Errorf("beta echoed: sent %v", w.sentBA)
	}
	sentA := sum(w.sentAB)

	// Every field edited on beta, the status through the longer workflow.
	asmith := person(t, w.beta, 0)
	if err := asmith.EditIssue(ctx, betaKey, fullFields(w.beta, 2), nil, nil); err != nil {
		t.Fatal(err)
	}
	transition(t, asmith, betaKey, "In Review")
	transition(t, asmith, betaKey, "Closed")
	w.settle()
	mustNoDiff(t, w, ref.Key)
	if sum(w.sentAB) != sentA {
		t.Errorf("alpha echoed: sent %v", w.sentAB)
	}
	if _, st, _ := state(t, w.alpha, ref.Key); st != "done" {
		t.Errorf("alpha status alias %q, want done", st)
	}

	// Issue type change on beta, fields cleared on alpha.
	if err := asmith.EditIssue(ctx, betaKey, map[string]any{"issuetype": map[string]string{"name": "Bug"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	clear := map[string]any{"labels": []string{}, "duedate": nil, "assignee": nil, w.alpha.Field["Effort"]: nil,
		w.alpha.Field["Severity"]: nil, w.alpha.Field["Platforms"]: nil, w.alpha.Field["Reviewer"]: nil, w.alpha.Field["Go Live"]: nil}
	if err := alice.EditIssue(ctx, ref.Key, clear, nil, nil); err != nil {
		t.Fatal(err)
	}
	transition(t, alice, ref.Key, "To Do")
	w.settle()
	mustNoDiff(t, w, ref.Key)
	if typ, _, _ := state(t, w.alpha, ref.Key); typ != "bug" {
		t.Errorf("alpha issue type alias %q, want bug", typ)
	}

	// A second issue, created on beta, arrives on alpha.
	ref2 := createIssue(t, asmith, w.beta, "Story", fullFields(w.beta, 0))
	w.settle()
	if n := issueCount(t, w.alpha); n != 2 {
		t.Fatalf("alpha has %d issues, want 2", n)
	}
	if d := diffIssues(t, w, w.b.peerKey(t, ref2.Key), ref2.Key); len(d) > 0 {
		t.Fatalf("issues differ:\n%s", strings.Join(d, "\n"))
	}
	t.Logf("alpha sent %v, beta sent %v", w.sentAB, w.sentBA)
}

// TestResyncRepairsDrift: a peer issue drifted (changed by the sync user,
// which is never sent); a resync requested for the origin issue sends its
// current state and the peer writes only the field that differs.
func TestResyncRepairsDrift(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	ref := createIssue(t, alice, w.alpha, "Task", fullFields(w.alpha, 0))
	w.settle()
	betaKey := w.a.peerKey(t, ref.Key)
	if err := w.beta.Sync.EditIssue(ctx, betaKey, map[string]any{"summary": "drifted"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if d := diffIssues(t, w, ref.Key, betaKey); len(d) != 1 {
		t.Fatalf("want exactly the summary to differ, got %v", d)
	}
	// The operator runs `jirabridge resync --jql ...` next to alpha's bridge.
	var out, errb bytes.Buffer
	cli := app.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "JIRABRIDGE_DATA_DIR" {
			return filepath.Dir(w.a.dbPath)
		}
		return ""
	}}
	if code := app.Main([]string{"resync", "--jql", "key = " + ref.Key}, cli); code != app.ExitOK {
		t.Fatalf("resync: exit %d: %s", code, errb.String())
	}
	before, err := w.beta.Sync.GetIssue(ctx, betaKey, nil, []string{"changelog"})
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	mustNoDiff(t, w, ref.Key)
	after, err := w.beta.Sync.GetIssue(ctx, betaKey, nil, []string{"changelog"})
	if err != nil {
		t.Fatal(err)
	}
	added := after.Changelog.Histories[len(before.Changelog.Histories):]
	if len(added) != 1 || len(added[0].Items) != 1 || added[0].Items[0].Field != "summary" {
		t.Errorf("resync wrote %+v, want one summary change", added)
	}
	// The request is done and cleared.
	var v string
	_ = w.a.st.View(ctx, func(tx *store.Tx) error {
		v, _, err = tx.CursorGet(engine.ResyncCursor(syncID))
		return err
	})
	if v != "" {
		t.Errorf("resync request still pending: %s", v)
	}
}

// TestRunStepsOnEveryTick drives Run with hand-made ticks: each tick is
// one step, and cancelling the context ends Run.
func TestRunStepsOnEveryTick(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ticks := make(chan time.Time)
	steps := make(chan engine.StepResult)
	node, err := engine.NewNode(engine.Config{Store: w.a.st, Jira: w.alpha.Sync, Mapping: w.alpha.Mapping, SyncID: syncID,
		Node: "alpha", SyncUser: enginetest.SyncUser, Location: time.UTC, Now: w.clk.Now, Ticks: ticks,
		OnStep: func(r engine.StepResult, err error) {
			if err != nil {
				t.Errorf("step: %v", err)
			}
			steps <- r
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- node.Run(ctx) }()
	<-steps // the first step runs at once
	createIssue(t, person(t, w.alpha, 1), w.alpha, "Bug", map[string]any{"summary": "found by Run"})
	ticks <- time.Now()
	if r := <-steps; r.Detected != 1 {
		t.Errorf("step after the tick detected %d changes, want 1", r.Detected)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// TestBadResyncIsDroppedAndShown: a resync whose JQL Jira refuses does not
// block the sync: the request is dropped with a failure the operator sees,
// and changes keep flowing.
func TestBadResyncIsDroppedAndShown(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	ref := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	w.settle()
	if _, err := engine.RequestResync(ctx, w.a.st, syncID, "summary ~~ broken ((("); err != nil {
		t.Fatal(err)
	}
	if err := alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "two"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	mustNoDiff(t, w, ref.Key)
	var fs []store.Failure
	var pending string
	_ = w.a.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if fs, err = tx.FailureList(syncID, 10); err != nil {
			return err
		}
		pending, _, err = tx.CursorGet(engine.ResyncCursor(syncID))
		return err
	})
	if len(fs) != 1 || fs[0].Kind != "resync" || !strings.Contains(fs[0].ErrorText, "broken") {
		t.Errorf("failures = %+v, want the refused resync", fs)
	}
	if pending != "" {
		t.Errorf("refused resync still pending: %s", pending)
	}
}
