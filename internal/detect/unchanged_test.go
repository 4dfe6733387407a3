package detect

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// contentDef is testDef with every content collector switched on.
const contentDef = testDef + `
comments: {enabled: true}
attachments: {enabled: true}
watchers: true
links: {enabled: true, types: {Blocks: blocks}}
`

// withContent builds the detector on contentDef; the watcher sweep stays
// off unless a test sets WatcherSweepEvery after it.
func withContent(t *testing.T) envOpt {
	return func(o *Options) {
		def, err := config.ParseSync([]byte(contentDef))
		if err != nil {
			t.Fatal(err)
		}
		fields, err := o.Jira.Fields(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		m, err := mapping.New(def, fields, mapping.Options{Users: o.Jira})
		if err != nil {
			t.Fatal(err)
		}
		o.Mapping = m
		o.WatcherSweepEvery = 1 << 30
	}
}

// settle moves Jira's (and the bridge's) clock past Settle.
func (e *env) settle() { e.jclk.Add(3 * time.Second) }

// issueCalls counts the Jira calls since the last ResetCounters that
// named the issue (by id or key) in their path: the per-issue work.
func (e *env) issueCalls(r jira.Ref) int {
	n := 0
	for k, v := range e.sim.Counters() {
		_, path, _ := strings.Cut(k, " ")
		path, _, _ = strings.Cut(path, "?")
		for _, ref := range []string{r.ID, r.Key} {
			if strings.HasSuffix(path, "/issue/"+ref) || strings.Contains(path, "/issue/"+ref+"/") {
				n += v
			}
		}
	}
	return n
}

// onlySearches fails unless every Jira call since the last ResetCounters
// was a search (or the time zone a new detector asks for once).
func (e *env) onlySearches(what string) {
	e.t.Helper()
	for route, n := range e.sim.RouteCounters() {
		if route != "POST /rest/api/2/search" && route != "GET /rest/api/2/myself" && n > 0 {
			e.t.Errorf("%s: %d calls of %s, want searches only (all %v)", what, n, route, e.sim.RouteCounters())
		}
	}
}

// quietPoll polls with fresh counters and checks that nothing was sent.
func (e *env) quietPoll(what string) Result {
	e.t.Helper()
	e.sim.ResetCounters()
	r := e.poll()
	if cs := e.drain(); len(cs) != 0 {
		e.t.Fatalf("%s: sent %v, want nothing", what, ids(cs))
	}
	return r
}

// settledEnv creates issues a, b and c, sends them, and polls until every
// one of them is recorded as examined in full.
func settledEnv(t *testing.T, opts ...envOpt) (e *env, a, b, c jira.Ref) {
	e = newEnv(t, append([]envOpt{withContent(t)}, opts...)...)
	a = e.create(e.alice, "Bug", "a", nil)
	b = e.create(e.alice, "Bug", "b", nil)
	c = e.create(e.alice, "Task", "c", nil)
	e.jclk.Add(time.Minute)
	if r := e.poll(); !r.Initial || r.Changes != 3 {
		t.Fatalf("initial poll = %+v, want 3 creates", r)
	}
	e.drain()
	e.settle()
	e.quietPoll("the poll after the initial sync")
	return e, a, b, c
}

func TestUnchangedIssuesCostNoCallsAndEveryChangeIsFound(t *testing.T) {
	t.Parallel()
	e, a, b, c := settledEnv(t)
	e.settle()
	if r := e.quietPoll("settled poll"); r.Issues != 3 || r.Skipped != 3 {
		t.Fatalf("settled poll = %+v, want 3 issues, all skipped", r)
	}
	e.onlySearches("settled poll")

	var cid, attID, linkID string
	steps := []struct {
		name   string
		change func()
		want   wire.ChangeKind
	}{
		{"field", func() { e.edit(e.alice, a.Key, map[string]any{"summary": "a2"}, nil) }, wire.IssueUpdate},
		{"status", func() { e.transition(e.alice, a.Key, "In Progress") }, wire.IssueUpdate},
		{"comment add", func() {
			cm, err := e.alice.AddComment(e.ctx, a.Key, "hello", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			cid = cm.ID
		}, wire.CommentAdd},
		{"comment edit", func() {
			if _, err := e.alice.EditComment(e.ctx, a.Key, cid, "hello again", nil); err != nil {
				t.Fatal(err)
			}
		}, wire.CommentEdit},
		{"comment delete", func() {
			if err := e.alice.DeleteComment(e.ctx, a.Key, cid); err != nil {
				t.Fatal(err)
			}
		}, wire.CommentDelete},
		{"attachment add", func() {
			at, err := e.alice.AddAttachment(e.ctx, a.Key, "x.txt", []byte("bytes"))
			if err != nil {
				t.Fatal(err)
			}
			attID = at.ID
		}, wire.AttachmentAdd},
		{"attachment delete", func() {
			if err := e.alice.DeleteAttachment(e.ctx, attID); err != nil {
				t.Fatal(err)
			}
		}, wire.AttachmentDelete},
		{"link add", func() {
			if err := e.alice.CreateLink(e.ctx, "Blocks", a.Key, c.Key); err != nil {
				t.Fatal(err)
			}
			ls, err := e.alice.IssueLinks(e.ctx, a.Key)
			if err != nil || len(ls) != 1 {
				t.Fatalf("links of %s: %v %v", a.Key, ls, err)
			}
			linkID = ls[0].ID
		}, wire.LinkAdd},
		{"link remove", func() {
			if err := e.alice.DeleteLink(e.ctx, linkID); err != nil {
				t.Fatal(err)
			}
		}, wire.LinkRemove},
	}
	for _, s := range steps {
		e.settle()
		s.change()
		e.settle()
		e.sim.ResetCounters()
		r := e.poll()
		cs := e.drain()
		if len(cs) != 1 || cs[0].Kind != s.want {
			t.Fatalf("%s: sent %v (%+v), want one %s", s.name, ids(cs), cs, s.want)
		}
		if n := e.issueCalls(b); n != 0 {
			t.Errorf("%s: %d calls for the unchanged issue %s, want none (%v)", s.name, n, b.Key, e.sim.Counters())
		}
		if r.Skipped < 1 {
			t.Errorf("%s: poll %+v skipped nothing", s.name, r)
		}
		// Once Jira's clock is known to be Settle past the change (the
		// poll after, at the latest), the issue is recorded and left
		// alone like the others.
		e.settle()
		e.quietPoll(s.name + ", next poll")
		e.settle()
		if r := e.quietPoll(s.name + ", the poll after"); r.Skipped != r.Issues {
			t.Errorf("%s: the poll after %+v, want every issue skipped", s.name, r)
		}
		e.onlySearches(s.name + ", the poll after")
	}
}

// Two changes in the same millisecond, the second committed after the
// first was read: that read came too soon after the issue's updated time
// to rule it out, so the issue is examined once more when Jira's clock is
// Settle past it (and left alone in between), and the second change is
// found.
func TestSameMillisecondChangeCommittedAfterTheReadIsFound(t *testing.T) {
	t.Parallel()
	e, a, _, _ := settledEnv(t)
	e.settle()
	e.edit(e.alice, a.Key, map[string]any{"summary": "one"}, nil)
	e.jclk.Add(time.Second) // less than Settle
	e.poll()
	if cs := e.drain(); len(cs) != 1 {
		t.Fatalf("first poll sent %v, want the edit", ids(cs))
	}
	// A comment stamped with the edit's millisecond lands now.
	e.jclk.Add(-time.Second)
	if _, err := e.alice.AddComment(e.ctx, a.Key, "same millisecond", nil, nil); err != nil {
		t.Fatal(err)
	}
	e.jclk.Add(time.Second)
	if r := e.quietPoll("still within Settle"); r.Skipped != 3 || e.issueCalls(a) != 0 {
		t.Fatalf("poll within Settle %+v, %d calls for %s: want every issue left alone", r, e.issueCalls(a), a.Key)
	}
	// Jira's clock as detection knows it: the edit's time when it was
	// first seen, a second late, carried forward.
	e.jclk.Add(2 * time.Second)
	e.sim.ResetCounters()
	r := e.poll()
	cs := e.drain()
	if len(cs) != 1 || cs[0].Kind != wire.CommentAdd {
		t.Fatalf("poll Settle after the edit sent %v, want the comment", ids(cs))
	}
	if r.Skipped != 2 || e.issueCalls(a) == 0 {
		t.Errorf("poll Settle after the edit %+v, %d calls for %s: want it examined once more", r, e.issueCalls(a), a.Key)
	}
	// That second look reads what could hide behind the same updated
	// time, not the watchers (they never move it; the sweep reads them).
	if n := e.sim.RouteCounters()["GET /rest/api/2/issue/{key}/watchers"]; n != 0 {
		t.Errorf("second look read the watchers %d times, want none", n)
	}
	e.settle()
	if r := e.quietPoll("after the second look"); r.Skipped != 3 {
		t.Errorf("poll after the second look %+v, want every issue left alone", r)
	}
}

// A poll that read an issue from Jira but failed to commit its changes
// leaves no record: the next poll reads the issue again and sends them.
func TestFailedCommitReadsTheIssueAgain(t *testing.T) {
	t.Parallel()
	var fail bool
	e, a, b, _ := settledEnv(t, func(o *Options) {
		o.beforeCommit = func(string) error {
			if fail {
				return errors.New("disk full")
			}
			return nil
		}
	})
	e.settle()
	if _, err := e.alice.AddComment(e.ctx, a.Key, "lost?", nil, nil); err != nil {
		t.Fatal(err)
	}
	e.settle()
	fail = true
	if _, err := e.det.Poll(e.ctx); err == nil {
		t.Fatal("poll with a failing store succeeded")
	}
	fail = false
	e.sim.ResetCounters()
	e.poll()
	if cs := e.drain(); len(cs) != 1 || cs[0].Kind != wire.CommentAdd {
		t.Fatalf("poll after the failure sent %v, want the comment", ids(cs))
	}
	if e.issueCalls(a) == 0 || e.issueCalls(b) != 0 {
		t.Errorf("calls: %s %d (want some), %s %d (want none)", a.Key, e.issueCalls(a), b.Key, e.issueCalls(b))
	}
}

// A collector that defers (the applier's watcher write in flight) keeps
// the issue from being recorded: it is examined again until the write is
// done, and a person's watcher change made meanwhile is found.
func TestDeferredCollectorLooksAgain(t *testing.T) {
	t.Parallel()
	e, a, _, _ := settledEnv(t)
	const inflight = "peer/b/w1"
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		if _, _, err := tx.ReplayEnqueue(syncID, "peer-issue", inflight, []byte(`{}`)); err != nil {
			return err
		}
		return tx.CursorSet(BusyCursor(syncID, a.ID, KindWatchers), inflight)
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.edit(e.alice, a.Key, map[string]any{"summary": "a2"}, nil)
	if err := e.client("bob").AddWatcher(e.ctx, a.Key, "bob"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.poll()
	if cs := e.drain(); len(cs) != 1 || cs[0].Kind != wire.IssueUpdate {
		t.Fatalf("busy poll sent %v, want the edit only", ids(cs))
	}
	e.settle()
	e.sim.ResetCounters()
	if r := e.poll(); r.Skipped != 2 || e.issueCalls(a) == 0 {
		t.Fatalf("poll while busy %+v, %d calls for %s: want it examined again", r, e.issueCalls(a), a.Key)
	}
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		return tx.CursorSet(BusyCursor(syncID, a.ID, KindWatchers), "")
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.poll()
	cs := e.drain()
	if len(cs) != 1 || cs[0].Kind != wire.WatcherAdd || cs[0].Watcher.Name != "bob" {
		t.Fatalf("poll after the write sent %+v, want bob's watch", cs)
	}
	e.settle()
	e.quietPoll("after the watcher")
	e.settle()
	if r := e.quietPoll("after the watcher, the poll after"); r.Skipped != r.Issues {
		t.Errorf("poll %+v, want every issue skipped", r)
	}
}

// Watching does not touch the issue's updated time: a watcher change of
// an issue left alone travels with the watcher sweep (or the issue's next
// update), as docs/engine-detect.md says.
func TestWatcherChangeOfAnUnchangedIssueTravelsWithTheSweep(t *testing.T) {
	t.Parallel()
	e, a, _, _ := settledEnv(t)
	e.det.o.WatcherSweepEvery = 3
	e.det.polls = 0
	e.settle()
	e.quietPoll("poll 1")
	if err := e.client("bob").AddWatcher(e.ctx, a.Key, "bob"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if r := e.quietPoll("poll 2, no sweep"); r.Skipped != 3 {
		t.Fatalf("poll 2 = %+v, want every issue left alone", r)
	}
	e.settle()
	e.poll() // poll 3: the sweep
	cs := e.drain()
	if len(cs) != 1 || cs[0].Kind != wire.WatcherAdd {
		t.Fatalf("sweep sent %v, want bob's watch", ids(cs))
	}
}

// Neither a resync, nor a webhook's hint, nor a restart skips what
// should not be skipped; a restarted detector trusts the stored records.
func TestResyncWebhookAndRestart(t *testing.T) {
	t.Parallel()
	e, a, _, _ := settledEnv(t)
	e.settle()
	e.sim.ResetCounters()
	if r, err := e.det.PollIssue(e.ctx, a.Key); err != nil || r.Skipped != 0 || e.issueCalls(a) == 0 {
		t.Fatalf("PollIssue = %+v, %v, %d calls: want the issue examined", r, err, e.issueCalls(a))
	}
	r, err := e.det.Resync(e.ctx, "")
	if err != nil || r.Issues != 3 || r.Skipped != 0 {
		t.Fatalf("Resync = %+v, %v: want every issue examined", r, err)
	}
	// Each issue goes again as a snapshot (watcher and link sets may
	// follow it, when those features are on).
	updated := map[string]bool{}
	for _, c := range e.drain() {
		if c.Kind == wire.IssueUpdate {
			updated[c.IssueID] = true
		}
	}
	if len(updated) != 3 {
		t.Fatalf("resync sent snapshots of %d issues, want 3", len(updated))
	}

	d2, err := New(e.det.o)
	if err != nil {
		t.Fatal(err)
	}
	e.det = d2
	e.settle()
	if r := e.quietPoll("after a restart"); r.Skipped != 3 {
		t.Fatalf("poll after a restart %+v, want all 3 skipped", r)
	}
	e.onlySearches("after a restart")
	// A changed sync definition examines every issue once again.
	d3, err := New(e.det.o)
	if err != nil {
		t.Fatal(err)
	}
	d3.DisableCollectors("links")
	e.det = d3
	if r := e.quietPoll("with links switched off"); r.Skipped != 0 {
		t.Fatalf("poll with other collectors %+v, want nothing skipped", r)
	}
}

// A parked issue is never recorded as examined: polls keep looking at it
// while it is in the window, so the operator's skip lets the held change
// go out with the next poll.
func TestParkedIssueKeepsBeingExamined(t *testing.T) {
	t.Parallel()
	e, a, _, _ := settledEnv(t)
	e.settle()
	e.edit(e.alice, a.Key, map[string]any{"priority": map[string]string{"name": "Lowest"}}, nil) // not in the values map
	e.jclk.Add(time.Second)
	e.edit(e.alice, a.Key, map[string]any{"summary": "held"}, nil)
	e.settle()
	if r := e.poll(); r.Parked != 1 {
		t.Fatalf("poll = %+v, want one parked", r)
	}
	for i := range 2 {
		e.settle()
		e.sim.ResetCounters()
		if r := e.quietPoll("parked"); r.Skipped != 2 || e.issueCalls(a) == 0 {
			t.Fatalf("poll %d while parked = %+v, %d calls for %s: want it examined", i, r, e.issueCalls(a), a.Key)
		}
	}
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		fs, err := tx.FailureList(syncID, 10, store.FailureOpen)
		if err != nil || len(fs) != 1 {
			return fmt.Errorf("failures %v: %v", fs, err)
		}
		return tx.FailureSkip(fs[0].ID)
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.poll()
	if cs := e.drain(); len(cs) != 1 || !cs[0].Fields["summary"].After.Equal(wire.StringValue("held")) {
		t.Fatalf("after skip sent %+v, want the held change", cs)
	}
}

// A resync reads each issue's comments once: its comment pass takes what
// the comment collector read.
func TestResyncReadsCommentsOnce(t *testing.T) {
	t.Parallel()
	e, a, _, _ := settledEnv(t)
	e.sim.ResetCounters()
	if _, err := e.det.Resync(e.ctx, "key = "+a.Key); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, v := range e.sim.Counters() {
		if strings.HasPrefix(k, "GET ") && strings.Contains(k, "/issue/"+a.ID+"/comment") {
			n += v
		}
	}
	if n != 1 {
		t.Errorf("resync read the comments of %s %d times, want 1 (counters %v)", a.Key, n, e.sim.Counters())
	}
}
