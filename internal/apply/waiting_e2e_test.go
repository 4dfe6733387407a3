package apply_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/jirasim"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// This file proves that nothing waits for ever on a peer issue whose
// create the operator skipped here: a link waiting for it is listed as
// not made, saying why, and a sub-task waiting for it parks.

// parkNextCreate makes the side's next issue create fail for good.
func parkNextCreate(s *side) {
	s.site.Sim.AddFault(jirasim.Fault{Method: "POST", Path: "/rest/api/2/issue", Status: 400, Times: 1})
}

// openFailures returns the side's open failures.
func openFailures(t testing.TB, s *side) []store.Failure {
	t.Helper()
	var fs []store.Failure
	if err := s.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 100, store.FailureOpen)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return fs
}

func replayItem(t testing.TB, s *side, changeID string) store.ReplayItem {
	t.Helper()
	var it store.ReplayItem
	if err := s.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		it, err = tx.ReplayGetByChange(syncID, changeID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return it
}

func waitingCursor(t testing.TB, s *side) string {
	t.Helper()
	var v string
	if err := s.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		v, _, err = tx.CursorGet("links-waiting/" + syncID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func round(t testing.TB, s *side) replay.Result {
	t.Helper()
	r, err := s.rep.Round(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLinkWaitingOnASkippedCreateIsListedAsNotMade: a link waits for its
// other end, whose create parks; the operator skips that create. The link
// leaves the waiting list, and its entry says it is not made because of
// the skip, and what to do.
func TestLinkWaitingOnASkippedCreateIsListedAsNotMade(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "one")
	w.settle()
	r2 := w.create(w.alpha, 0, "two")
	if err := w.person(w.alpha, 0).CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.det.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := moveKinds(t, w.a, w.b, wire.LinkAdd); n != 1 {
		t.Fatalf("moved %d link changes, want 1", n)
	}
	round(t, w.b)
	if waitingCursor(t, w.b) == "" {
		t.Fatal("the link does not wait for its other end (test did not set up the wait)")
	}
	parkNextCreate(w.b)
	if n := moveKinds(t, w.a, w.b, wire.IssueCreate); n != 1 {
		t.Fatalf("moved %d creates, want 1", n)
	}
	if r := round(t, w.b); r.Parked != 1 {
		t.Fatalf("round %+v, want the create parked", r)
	}
	fs := openFailures(t, w.b)
	if len(fs) != 1 || fs[0].Kind != string(wire.IssueCreate) {
		t.Fatalf("beta failures %+v, want r2's create", fs)
	}
	if _, err := replay.Skip(ctx, w.b.st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	if v := waitingCursor(t, w.b); v != "" {
		t.Errorf("beta still keeps the link waiting for a skipped create: %s", v)
	}
	is2, err := w.alpha.Sync.GetIssue(ctx, r2.Key, []string{"summary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b1 := w.peer(w.a, r1.Key)
	got := skips(t, w.b)
	if len(got) != 1 || got[0].Kind != store.SkipLink || got[0].IssueKey != b1 {
		t.Fatalf("beta skips %q, want the link of %s", skipLines(got), b1)
	}
	for _, want := range []string{"other end peer issue " + is2.ID + " was skipped here (jirabridge messages skip " + strconv.FormatInt(fs[0].ID, 10) + ")",
		"the link is not made", "resync peer issue " + r1.Key} {
		if !strings.Contains(got[0].Reason, want) {
			t.Errorf("reason %q does not say %q", got[0].Reason, want)
		}
	}
	if strings.Contains(got[0].Reason, "waits for") {
		t.Errorf("reason %q still says the link waits", got[0].Reason)
	}

	// A new link to the same issue, and both sent again by a resync of r1
	// (a set of links), are listed the same way at once, and do not wait.
	if err := w.person(w.alpha, 0).CreateLink(ctx, "Relates", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if v := waitingCursor(t, w.b); v != "" {
		t.Errorf("beta keeps a new link to the skipped issue waiting: %s", v)
	}
	notMade := func(when string) {
		t.Helper()
		got := skips(t, w.b)
		if len(got) != 2 {
			t.Fatalf("beta skips %s: %q, want both links", when, skipLines(got))
		}
		for _, s := range got {
			if !strings.Contains(s.Reason, "was skipped here") {
				t.Errorf("beta skip %s of link %s: reason %q, want it listed as not made", when, s.Item, s.Reason)
			}
		}
	}
	notMade("after a second link")
	ls, err := w.alpha.Sync.IssueLinks(ctx, r1.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Type.Name != "Relates" {
			continue
		}
		var a store.Applied
		if err := w.b.st.View(ctx, func(tx *store.Tx) error {
			a, err = tx.LedgerGet(syncID + "/alpha/l" + l.ID)
			return err
		}); err != nil || a.Result != "other_end_gone" {
			t.Errorf("beta's ledger of the second link: %+v %v, want result other_end_gone", a, err)
		}
	}
	w.pastOverlap()
	if _, err := w.a.det.Resync(ctx, "key = "+r1.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if v := waitingCursor(t, w.b); v != "" {
		t.Errorf("after a resync of %s beta keeps the link waiting: %s", r1.Key, v)
	}
	notMade("after a resync")
	if links := linkSet(t, w.beta, b1, func(k string) string { return k }); len(links) != 0 {
		t.Errorf("beta links of %s %q, want none", b1, links)
	}
}

// TestSubtaskWaitingOnASkippedParentParks: a sub-task waits for its
// parent, whose create parks; the operator skips the parent's create.
// The sub-task does not wait for ever: it parks, and its failure names the
// parent and why; a retry parks it again, and a skip ends it.
func TestSubtaskWaitingOnASkippedParentParks(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	alice := w.person(w.alpha, 0)
	parent, err := alice.CreateIssue(ctx, map[string]any{"project": map[string]string{"key": w.alpha.Project},
		"issuetype": map[string]string{"name": "Task"}, "summary": "parent"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.det.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	parkNextCreate(w.b)
	if n := moveKinds(t, w.a, w.b, wire.IssueCreate); n != 1 {
		t.Fatalf("moved %d creates, want the parent's", n)
	}
	if r := round(t, w.b); r.Parked != 1 {
		t.Fatalf("round %+v, want the parent's create parked", r)
	}
	pf := openFailures(t, w.b)
	if len(pf) != 1 {
		t.Fatalf("beta failures %+v, want the parent's create", pf)
	}

	sub, err := alice.CreateIssue(ctx, map[string]any{"project": map[string]string{"key": w.alpha.Project},
		"issuetype": map[string]string{"name": "Sub-task"}, "summary": "child", "parent": map[string]string{"key": parent.Key}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.det.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := moveKinds(t, w.a, w.b, wire.IssueCreate); n != 1 {
		t.Fatalf("moved %d creates, want the sub-task's", n)
	}
	if r := round(t, w.b); r.Waiting != 1 {
		t.Fatalf("round %+v, want the sub-task waiting", r)
	}
	var subItem store.ReplayItem
	if err := w.b.st.View(ctx, func(tx *store.Tx) error {
		items, err := tx.ReplayByState(syncID, store.ReplayWaitingParent, 10)
		if len(items) == 1 {
			subItem = items[0]
		}
		return err
	}); err != nil || subItem.ID == 0 {
		t.Fatalf("no sub-task waiting for its parent (%v)", err)
	}

	if _, err := replay.Skip(ctx, w.b.st, pf[0].ID); err != nil {
		t.Fatal(err)
	}
	if r := round(t, w.b); r.Parked != 1 {
		t.Fatalf("round after the skip %+v, want the sub-task parked", r)
	}
	var c wire.Change
	if err := json.Unmarshal(subItem.Change, &c); err != nil {
		t.Fatal(err)
	}
	if it := replayItem(t, w.b, c.ID); it.State != store.ReplayParked {
		t.Errorf("sub-task's change is %s, want parked", it.State)
	}
	fs := openFailures(t, w.b)
	if len(fs) != 1 || fs[0].ChangeID != c.ID {
		t.Fatalf("beta failures %+v, want the sub-task's create", fs)
	}
	if fs[0].ErrorClass != apply.ReasonParentGone {
		t.Errorf("error class %q, want %q", fs[0].ErrorClass, apply.ReasonParentGone)
	}
	for _, want := range []string{"peer issue " + sub.Key, "its parent, peer issue " + c.ParentIssueID,
		"was skipped here (jirabridge messages skip " + strconv.FormatInt(pf[0].ID, 10) + ")", "Skip this message"} {
		if !strings.Contains(fs[0].ErrorText, want) {
			t.Errorf("failure text %q does not say %q", fs[0].ErrorText, want)
		}
	}

	// A retry parks it again with the same record; a skip ends it.
	if _, err := replay.Retry(ctx, w.b.st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	if r := round(t, w.b); r.Parked != 1 {
		t.Fatalf("round after the retry %+v, want the sub-task parked again", r)
	}
	if again := openFailures(t, w.b); len(again) != 1 || again[0].ID != fs[0].ID {
		t.Fatalf("failures after the retry %+v, want record %d open again", again, fs[0].ID)
	}
	if _, err := replay.Skip(ctx, w.b.st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	if r := round(t, w.b); r != (replay.Result{}) {
		t.Errorf("round after skipping the sub-task %+v, want nothing to do", r)
	}
	if n := len(openFailures(t, w.b)); n != 0 {
		t.Errorf("%d open failures, want none", n)
	}
}
