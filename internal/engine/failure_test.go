package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/app"
	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// TestCrashAndRestartNeverDoubles kills beta's apply of alpha's create
// after each Jira write, restarts beta's engine from its database, and
// checks that beta ends with one issue identical to alpha's.
func TestCrashAndRestartNeverDoubles(t *testing.T) {
	t.Parallel()
	for _, step := range []apply.Step{apply.StepCreate, apply.StepTransition, apply.StepRemoteLink, apply.StepProperty, apply.StepEdit} {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			ctx := context.Background()
			// The hook kills the step: it cancels the context the step runs
			// with, so nothing after the Jira write is recorded, as if the
			// process died there.
			crash := errors.New("simulated crash")
			crashed := 0
			kctx, kill := context.WithCancel(ctx)
			defer kill()
			w.b.hooks = apply.Hooks{AfterWrite: func(s apply.Step, c wire.Change) error {
				if s == step && crashed == 0 {
					crashed++
					kill()
					return crash
				}
				return nil
			}}
			w.b.restart()
			alice := person(t, w.alpha, 0)
			ref := createIssue(t, alice, w.alpha, "Task", fullFields(w.alpha, 0))
			transition(t, alice, ref.Key, "Done")
			if step == apply.StepEdit {
				// Edits happen on updates: sync the create first.
				w.settle()
				if err := alice.EditIssue(ctx, ref.Key, fullFields(w.alpha, 1), nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Run until the hook fires: the change is not applied (its
			// ledger entry is missing) although Jira has the write.
			w.ctx = kctx
			for i := 0; i < 5 && crashed == 0; i++ {
				_ = w.trySettle()
			}
			w.ctx = ctx
			if crashed == 0 {
				t.Fatalf("the apply never reached step %s", step)
			}
			// The process dies; a new one starts from the database.
			w.b.hooks = apply.Hooks{}
			w.b.restart()
			w.clk.Advance(2 * time.Minute)
			w.settle()
			if n := issueCount(t, w.beta); n != 1 {
				t.Fatalf("beta has %d issues after a crash at %s, want 1", n, step)
			}
			mustNoDiff(t, w, ref.Key)
			links, err := w.beta.Sync.RemoteLinks(ctx, w.a.peerKey(t, ref.Key))
			if err != nil || len(links) != 1 {
				t.Errorf("remote links %d (%v), want 1", len(links), err)
			}
		})
	}
}

// TestInterleavedHumanAndSyncUserChanges: people on beta edit the issue
// right before and right after the sync user applies alpha's change, all
// inside one poll window; nothing is lost and nothing echoes.
func TestInterleavedHumanAndSyncUserChanges(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice, asmith := person(t, w.alpha, 0), person(t, w.beta, 0)
	ref := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "start"})
	w.settle()
	betaKey := w.a.peerKey(t, ref.Key)

	// alpha's summary edit reaches beta's queue, but beta has not run.
	if err := alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "from alpha"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.node.Step(ctx); err != nil {
		t.Fatal(err)
	}
	count(t, w.a, w.sentAB)
	if _, err := loopback(w.a, w.b); err != nil {
		t.Fatal(err)
	}
	// A person edits before the sync user, the sync user applies, a
	// person edits after: all within the same second and poll window.
	if err := asmith.EditIssue(ctx, betaKey, map[string]any{"description": "person before"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := w.b.node.Replayer().Round(ctx); err != nil || res.Applied != 1 {
		t.Fatalf("beta replay %+v, %v", res, err)
	}
	if err := asmith.EditIssue(ctx, betaKey, map[string]any{"labels": []string{"after"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	bjones := person(t, w.beta, 1)
	if err := bjones.EditIssue(ctx, betaKey, map[string]any{"priority": map[string]string{"name": "Lowest"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	sentBefore := w.sentBA[wire.IssueUpdate]
	w.settle()
	mustNoDiff(t, w, ref.Key)
	_, _, f := state(t, w.alpha, ref.Key)
	want := map[string]wire.Value{"summary": wire.StringValue("from alpha"), "description": wire.StringValue("person before"),
		"labels": wire.ListValue("after"), "priority": wire.StringValue("Lowest")}
	for k, v := range want {
		if !f[k].Equal(v) {
			t.Errorf("alpha %s = %v, want %v", k, f[k], v)
		}
	}
	if got := w.sentBA[wire.IssueUpdate] - sentBefore; got != 3 {
		t.Errorf("beta sent %d updates, want the 3 people's edits (no echo of the sync user's)", got)
	}
}

func loopback(from, to *bridge) (int, error) {
	return engineLoopback(from, to)
}

// TestConflictsConverge: both sides change the same field before seeing
// each other's change; after settling both hold the newer value, and with
// equal Jira times the master's (alpha's).
func TestConflictsConverge(t *testing.T) {
	t.Parallel()
	for _, tie := range []bool{false, true} {
		t.Run(fmt.Sprintf("tie=%v", tie), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			ctx := context.Background()
			alice, asmith := person(t, w.alpha, 0), person(t, w.beta, 0)
			ref := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "start", "labels": []string{"x"}})
			w.settle()
			betaKey := w.a.peerKey(t, ref.Key)
			if tie {
				w.clk.SetTick(0)
			}
			if err := alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "alpha wins?", "labels": []string{"a"}}, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := asmith.EditIssue(ctx, betaKey, map[string]any{"summary": "beta wins?"}, nil, nil); err != nil {
				t.Fatal(err)
			}
			transition(t, asmith, betaKey, "In Progress")
			w.clk.SetTick(time.Millisecond)
			w.settle()
			mustNoDiff(t, w, ref.Key)
			_, st, f := state(t, w.alpha, ref.Key)
			wantSummary := "beta wins?"
			if tie {
				wantSummary = "alpha wins?"
			}
			if got := f["summary"].Text(); got != wantSummary {
				t.Errorf("summary = %q, want %q", got, wantSummary)
			}
			if got := f["labels"].Strings(); len(got) != 1 || got[0] != "a" {
				t.Errorf("labels = %v, want [a] (changed on one side only)", got)
			}
			if st != "doing" {
				t.Errorf("status %q, want doing (changed on beta only)", st)
			}
			n := 0
			for _, b := range []*bridge{w.a, w.b} {
				_ = b.st.View(ctx, func(tx *store.Tx) error {
					cs, err := tx.ConflictList(syncID, 10)
					n += len(cs)
					return err
				})
			}
			if n == 0 {
				t.Errorf("no conflict recorded")
			}
		})
	}
}

// TestParkedChangeBlocksOnlyItsIssue: a field beta's edit screen lacks
// parks that issue's lane; another issue keeps syncing; after the screen
// is fixed, `messages retry` applies the parked change and what waited
// behind it.
func TestParkedChangeBlocksOnlyItsIssue(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	one := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	two := createIssue(t, alice, w.alpha, "Bug", map[string]any{"summary": "two"})
	w.settle()
	onScreen := []string{"summary", "description", "priority", "labels", "duedate", "assignee", "reporter",
		w.beta.Field["Estimate"], w.beta.Field["Impact"]}
	if err := w.beta.Sim.SetScreen("BETA", onScreen...); err != nil {
		t.Fatal(err)
	}
	if err := alice.EditIssue(ctx, one.Key, map[string]any{w.alpha.Field["Customer Ref"]: "C-9"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.EditIssue(ctx, one.Key, map[string]any{"summary": "one, later"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.EditIssue(ctx, two.Key, map[string]any{"summary": "two, later"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if d := diffIssues(t, w, two.Key, w.a.peerKey(t, two.Key)); len(d) > 0 {
		t.Errorf("the other issue did not sync: %v", d)
	}
	_, _, f := state(t, w.beta, w.a.peerKey(t, one.Key))
	if f["summary"].Text() != "one" {
		t.Errorf("beta summary %q: the change behind the parked one must wait", f["summary"].Text())
	}
	var fs []store.Failure
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 10, store.FailureOpen)
		return err
	})
	if len(fs) != 1 || fs[0].IssueKey != w.a.peerKey(t, one.Key) || !strings.Contains(fs[0].ErrorText, w.beta.Field["Partner Reference"]) {
		t.Fatalf("failures = %+v", fs)
	}
	// The operator sees it with `jirabridge messages list`, fixes the
	// screen and runs `jirabridge messages retry ID` next to the bridge.
	var out, errb bytes.Buffer
	cli := app.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "JIRABRIDGE_DATA_DIR" {
			return filepath.Dir(w.b.dbPath)
		}
		return ""
	}}
	if code := app.Main([]string{"messages", "list"}, cli); code != app.ExitOK || !strings.Contains(out.String(), fs[0].IssueKey) {
		t.Fatalf("messages list: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if err := w.beta.Sim.SetScreen("BETA"); err != nil {
		t.Fatal(err)
	}
	if code := app.Main([]string{"messages", "retry", strconv.FormatInt(fs[0].ID, 10)}, cli); code != app.ExitOK {
		t.Fatalf("messages retry: exit %d: %s", code, errb.String())
	}
	w.settle()
	mustNoDiff(t, w, one.Key)
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		var err error
		fs[0], err = tx.FailureGet(fs[0].ID)
		return err
	})
	if fs[0].State != store.FailureResolved {
		t.Errorf("failure %s, want resolved", fs[0].State)
	}
}

// TestAuthenticationFailurePausesAfterOneCall: with a wrong password the
// node makes exactly one Jira call, pauses the sync with reason
// "authentication" and makes no further call until resumed with good
// credentials.
func TestAuthenticationFailurePausesAfterOneCall(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	ref := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "before"})
	w.settle()
	bad, err := jira.New(jira.Options{BaseURL: w.beta.URL, Username: "jirabridge", Password: "expired"})
	if err != nil {
		t.Fatal(err)
	}
	w.b.jira = bad
	w.b.restart()
	if err := alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "during"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.node.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := loopback(w.a, w.b); err != nil {
		t.Fatal(err)
	}
	total := func() int {
		n := 0
		for _, v := range w.beta.Sim.Counters() {
			n += v
		}
		return n
	}
	before := total()
	res, err := w.b.node.Step(ctx)
	if err != nil || !res.Paused {
		t.Fatalf("Step = %+v, %v; want paused", res, err)
	}
	for i := 0; i < 3; i++ {
		if _, err := w.b.node.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w.b.restart() // a restart stays paused
	if _, err := w.b.node.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := total() - before; got != 1 {
		t.Errorf("beta saw %d calls, want exactly 1", got)
	}
	var s store.Sync
	_ = w.b.st.View(ctx, func(tx *store.Tx) error { s, err = tx.SyncGet(syncID); return err })
	if s.State != store.StatePaused || s.StateReason != "authentication" {
		t.Errorf("sync %s (%s), want PAUSED (authentication)", s.State, s.StateReason)
	}
	// New credentials, then an explicit resume.
	w.b.jira = w.beta.Sync
	w.b.restart()
	if err := w.b.node.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	w.settle()
	mustNoDiff(t, w, ref.Key)
}

// TestTemporaryErrorsRetryAndBackOff: 503s on beta's edits are retried;
// a 429 with Retry-After holds the change until that time has passed on
// the bridge's clock, while nothing is parked.
func TestTemporaryErrorsRetryAndBackOff(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	ref := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	w.settle()
	betaKey := w.a.peerKey(t, ref.Key)

	w.beta.Sim.AddFault(jirasim.Fault{Method: "PUT", Path: "/rest/api/2/issue/*", Status: 500, Times: 2})
	if err := alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "two"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	mustNoDiff(t, w, ref.Key)

	w.beta.Sim.AddFault(jirasim.Fault{Method: "PUT", Path: "/rest/api/2/issue/*", Status: 429, RetryAfter: 30, Times: 1})
	if err := alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "three"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if _, _, f := state(t, w.beta, betaKey); f["summary"].Text() != "two" {
		t.Errorf("summary %q before Retry-After passed, want two", f["summary"].Text())
	}
	w.clk.Advance(31 * time.Second)
	w.settle()
	mustNoDiff(t, w, ref.Key)
	var n int
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		var err error
		n, err = tx.FailureCount(syncID)
		return err
	})
	if n != 0 {
		t.Errorf("%d failures recorded for temporary errors", n)
	}
}

// TestParallelLanes: many issues arrive through beta's replay with several
// workers; engine.Settle drives both nodes.
func TestParallelLanes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	w.b.stop()
	w.b.start()
	alice := person(t, w.alpha, 0)
	var keys []string
	for i := 0; i < 8; i++ {
		ref := createIssue(t, alice, w.alpha, "Bug", fullFields(w.alpha, i))
		transition(t, alice, ref.Key, "Done")
		keys = append(keys, ref.Key)
	}
	parallel, err := engine.NewNode(engine.Config{Store: w.b.st, Jira: w.beta.Sync, Mapping: w.beta.Mapping, SyncID: syncID,
		Node: "beta", SyncUser: enginetest.SyncUser, Workers: 4, BackOff: func(int) time.Duration { return 0 },
		Location: time.UTC, Now: w.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Settle(ctx, w.a.node, parallel); err != nil {
		t.Fatal(err)
	}
	if n := issueCount(t, w.beta); n != len(keys) {
		t.Fatalf("beta has %d issues, want %d", n, len(keys))
	}
	for _, k := range keys {
		mustNoDiff(t, w, k)
	}
}

// TestSubtaskWaitsForItsParent: a sub-task whose parent could not be
// created yet (Jira answered 500) waits without a failure, and is created
// under the parent's copy once the parent is there.
func TestSubtaskWaitsForItsParent(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	parent := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "parent"})
	sub := createIssue(t, alice, w.alpha, "Sub-task", map[string]any{"summary": "child", "parent": map[string]string{"key": parent.Key}})
	w.beta.Sim.AddFault(jirasim.Fault{Method: "POST", Path: "/rest/api/2/issue", Status: 500, Times: 1})
	w.settle()
	if n := issueCount(t, w.beta); n != 2 {
		t.Fatalf("beta has %d issues, want 2", n)
	}
	betaSub := w.a.peerKey(t, sub.Key)
	is, err := w.beta.Sync.GetIssue(ctx, betaSub, []string{"parent", "issuetype"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Key string `json:"key"`
	}
	_, _ = is.Field("parent", &p)
	if p.Key != w.a.peerKey(t, parent.Key) {
		t.Errorf("beta sub-task %s has parent %q, want %s", betaSub, p.Key, w.a.peerKey(t, parent.Key))
	}
	mustNoDiff(t, w, sub.Key)
	var n int
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		n, err = tx.FailureCount(syncID)
		return err
	})
	if n != 0 {
		t.Errorf("%d failures, want none for a waiting sub-task", n)
	}
	// The sub-task was tried before its parent existed, and waited.
	waited := false
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		items, err := tx.ReplayByState(syncID, store.ReplayApplied, 100)
		for _, it := range items {
			var c wire.Change
			if json.Unmarshal(it.Change, &c) == nil && c.ParentIssueID != "" && it.Attempts >= 2 {
				waited = true
			}
		}
		return err
	})
	if !waited {
		t.Errorf("the sub-task never waited for its parent")
	}
}
