package detect

import (
	"bytes"
	"errors"
	"github.com/jirabridge/jirabridge/internal/jirasim"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

var jbMeta = &jira.HistoryMetadata{Type: HistoryMetadataType, ExtraData: map[string]string{"change_id": "peer/x/h1"}}

func TestInitialSyncSendsPeoplesIssues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.create(e.alice, "Bug", "first", map[string]any{"priority": map[string]string{"name": "High"}, "labels": []string{"b", "a"}})
	b := e.create(e.alice, "Task", "second", nil)
	e.create(e.alice, "Story", "story: type not synced", nil)
	e.create(e.syncer, "Bug", "came from the peer", nil, jira.Property{Key: OriginProperty, Value: map[string]string{"change_id": "p/x/c1"}})
	e.transition(e.alice, b.Key, "In Progress")
	// A person's issue that carries the origin marker (a sync user shared
	// with people) is not new either.
	e.create(e.alice, "Bug", "marked", nil, jira.Property{Key: OriginProperty, Value: map[string]string{"change_id": "p/x/c2"}})

	r := e.poll()
	if !r.Initial || r.Changes != 2 {
		t.Fatalf("initial poll = %+v, want initial with 2 changes", r)
	}
	cs := e.drain()
	want := []string{syncID + "/a/c" + a.ID, syncID + "/a/c" + b.ID}
	if got := ids(cs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ids = %v, want %v", got, want)
	}
	c := cs[0]
	if c.Kind != wire.IssueCreate || c.IssueType != "bug" || c.Status != "todo" || c.IssueKey != a.Key {
		t.Errorf("create = %+v", c)
	}
	checks := map[string]wire.Value{
		"summary": wire.StringValue("first"), "prio": wire.StringValue("p2"), "labels": wire.ListValue("a", "b"),
		"description": wire.NullValue(), "reporter": wire.UserValue(wire.User{Name: "alice", Display: "Alice Example"}),
		"sev": wire.NullValue(),
	}
	for k, v := range checks {
		if !c.Fields[k].After.Equal(v) {
			t.Errorf("create field %s = %v, want %v", k, c.Fields[k].After, v)
		}
	}
	if len(c.Fields) != 14 {
		t.Errorf("create carries %d fields %v, want all 14", len(c.Fields), sortedAliases(c.Fields))
	}
	if cs[1].Status != "doing" {
		t.Errorf("second create status = %q, want doing (its transition is in the snapshot)", cs[1].Status)
	}
	// Nothing more: the transition before the initial sync is covered.
	e.jclk.Add(time.Minute)
	if r := e.poll(); r.Changes != 0 || r.Initial {
		t.Fatalf("second poll = %+v, want nothing", r)
	}
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("second poll sent %v", ids(cs))
	}
}

func TestEveryFieldType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	opt := func(v string) map[string]string { return map[string]string{"value": v} }
	steps := []struct {
		field string
		value any
		alias string
		want  wire.Value
	}{
		{"summary", "new summary", "summary", wire.StringValue("new summary")},
		{"description", "some\ntext", "description", wire.StringValue("some\ntext")},
		{"priority", map[string]string{"name": "Highest"}, "prio", wire.StringValue("p1")},
		{"labels", []string{"x", "c"}, "labels", wire.ListValue("c", "x")},
		{"duedate", "2026-04-01", "due", wire.StringValue("2026-04-01")},
		{"assignee", map[string]string{"name": "bob"}, "assignee", wire.UserValue(wire.User{Name: "bob", Display: "Bob Example"})},
		{"reporter", map[string]string{"name": "bob"}, "reporter", wire.UserValue(wire.User{Name: "bob", Display: "Bob Example"})},
		{e.fieldID("Notes"), "a note", "notes", wire.StringValue("a note")},
		{e.fieldID("Points"), 2.5, "points", wire.NumberValue(2.5)},
		{e.fieldID("Severity"), opt("S2"), "sev", wire.StringValue("sev2")},
		{e.fieldID("Platforms"), []any{opt("Mac"), opt("Linux")}, "platforms", wire.ListValue("Linux", "Mac")},
		{e.fieldID("Start"), "2026-03-09", "start", wire.StringValue("2026-03-09")},
		{e.fieldID("Deadline"), "2026-03-09T12:30:00.000+0200", "deadline", wire.StringValue("2026-03-09T10:30:00.000+0000")},
		{e.fieldID("Reviewer"), map[string]string{"name": "alice"}, "reviewer", wire.UserValue(wire.User{Name: "alice", Display: "Alice Example"})},
		{"assignee", nil, "assignee", wire.NullValue()},
		{e.fieldID("Severity"), nil, "sev", wire.NullValue()},
	}
	for _, s := range steps {
		e.jclk.Add(time.Second)
		e.edit(e.alice, is.Key, map[string]any{s.field: s.value}, nil)
	}
	e.jclk.Add(time.Second)
	r := e.poll()
	cs := e.drain()
	if r.Changes != len(steps) || len(cs) != len(steps) {
		t.Fatalf("poll sent %d (result %+v), want %d", len(cs), r, len(steps))
	}
	for i, s := range steps {
		c := cs[i]
		if c.Kind != wire.IssueUpdate || len(c.Fields) != 1 {
			t.Errorf("step %d (%s): change %+v, want one field update", i, s.alias, c)
			continue
		}
		if got := c.Fields[s.alias].After; !got.Equal(s.want) {
			t.Errorf("step %d: %s after = %v, want %v", i, s.alias, got, s.want)
		}
		if c.Author == nil || c.Author.Name != "alice" {
			t.Errorf("step %d: author %+v, want alice", i, c.Author)
		}
		if i > 0 && !cs[i-1].At.Before(c.At) {
			t.Errorf("step %d: changes out of order", i)
		}
	}
	// Before values follow the chain.
	if b := cs[1].Fields["description"].Before; !b.Equal(wire.NullValue()) {
		t.Errorf("description before = %v, want null", b)
	}
	if b := cs[14].Fields["assignee"].Before; !b.Equal(wire.UserValue(wire.User{Name: "bob", Display: "Bob Example"})) {
		t.Errorf("assignee before = %v, want bob", b)
	}
}

func TestIssueTypeAndStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"issuetype": map[string]string{"name": "Task"}}, nil)
	e.jclk.Add(time.Second)
	e.transition(e.alice, is.Key, "In Progress")
	e.jclk.Add(time.Second)
	e.transition(e.alice, is.Key, "Done")
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"issuetype": map[string]string{"name": "Story"}}, nil)
	e.poll()
	cs := e.drain()
	if len(cs) != 3 {
		t.Fatalf("sent %d changes %v, want 3 (the move to an unmapped type parks)", len(cs), ids(cs))
	}
	if cs[0].Kind != wire.IssueMove || cs[0].IssueType != "task" {
		t.Errorf("move = %+v", cs[0])
	}
	if cs[1].Kind != wire.IssueUpdate || cs[1].Status != "doing" || cs[2].Status != "done" {
		t.Errorf("transitions = %+v, %+v", cs[1], cs[2])
	}
	var fs []store.Failure
	_ = e.st.View(e.ctx, func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 10, store.FailureOpen)
		return err
	})
	if len(fs) != 1 || !strings.HasPrefix(fs[0].Kind, FailureKindPrefix) || fs[0].IssueKey != is.Key || !strings.Contains(fs[0].ErrorText, "Story") {
		t.Fatalf("failures = %+v, want one naming the issue and Story", fs)
	}
}

func TestEchoesAreNotSentAndInterleavedChangesAreKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	// In one poll window: a person, the sync user, a person tagged as the
	// bridge (shared account), a person again, the sync user again.
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"summary": "alice 1"}, nil)
	e.edit(e.syncer, is.Key, map[string]any{"summary": "sync 1", "labels": []string{"peer"}}, jbMeta)
	e.edit(e.alice, is.Key, map[string]any{"description": "tagged"}, jbMeta)
	e.edit(e.alice, is.Key, map[string]any{"labels": []string{"peer", "mine"}}, nil)
	e.edit(e.syncer, is.Key, map[string]any{"summary": "sync 2"}, nil)
	e.poll()
	cs := e.drain()
	if len(cs) != 2 {
		t.Fatalf("sent %v, want alice's two changes", ids(cs))
	}
	if got := cs[0].Fields["summary"]; !got.After.Equal(wire.StringValue("alice 1")) || len(cs[0].Fields) != 1 {
		t.Errorf("first = %+v", cs[0].Fields)
	}
	if got := cs[1].Fields["labels"]; !got.After.Equal(wire.ListValue("mine", "peer")) || !got.Before.Equal(wire.ListValue("peer")) {
		t.Errorf("second = %+v", cs[1].Fields)
	}
	// Issues the sync user creates are never sent as new.
	e.jclk.Add(time.Second)
	e.create(e.syncer, "Bug", "peer copy", nil)
	e.poll()
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("sent %v for the sync user's issue", ids(cs))
	}
}

func TestOverlapRepollSendsNothingTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	seen := map[string]bool{}
	for i := range 6 {
		e.jclk.Add(20 * time.Second)
		e.edit(e.alice, is.Key, map[string]any{"summary": "v" + string(rune('a'+i))}, nil)
		e.poll()
		e.poll() // a re-poll right after sees the same window
		for _, c := range e.drain() {
			if seen[c.ID] {
				t.Fatalf("change %s sent twice", c.ID)
			}
			seen[c.ID] = true
		}
	}
	if len(seen) != 6 {
		t.Fatalf("sent %d changes, want 6", len(seen))
	}
}

func TestClockSkewLosesNothing(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{-3 * time.Hour, 3 * time.Hour} {
		e := newEnv(t, func(o *Options) {
			o.Now = func() time.Time { return time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC).Add(skew) }
		})
		is := e.create(e.alice, "Bug", "s", nil)
		e.poll()
		e.drain()
		e.jclk.Add(10 * time.Second)
		e.edit(e.alice, is.Key, map[string]any{"summary": "one"}, nil)
		e.poll()
		// A change that reaches Jira with an older timestamp than the
		// newest one seen (another Jira node's clock, a long transaction)
		// still falls inside the overlap.
		e.jclk.Add(-70 * time.Second)
		e.edit(e.alice, is.Key, map[string]any{"summary": "late"}, nil)
		e.jclk.Add(80 * time.Second)
		e.poll()
		cs := e.drain()
		if len(cs) != 2 {
			t.Fatalf("skew %v: sent %v, want 2 changes", skew, ids(cs))
		}
		// Changelog order, not time order: the late change is the newer.
		if !cs[1].Fields["summary"].After.Equal(wire.StringValue("late")) || !cs[1].Fields["summary"].Before.Equal(wire.StringValue("one")) {
			t.Errorf("skew %v: last change %+v, want one -> late", skew, cs[1].Fields)
		}
	}
}

func TestCursorStaysWhenTheStoreWriteFails(t *testing.T) {
	t.Parallel()
	var fail bool
	e := newEnv(t, func(o *Options) {
		o.beforeCommit = func(string) error {
			if fail {
				return errors.New("disk full")
			}
			return nil
		}
	})
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	before, _, _ := e.det.Cursor(e.ctx)
	e.jclk.Add(10 * time.Minute)
	e.edit(e.alice, is.Key, map[string]any{"summary": "x"}, nil)
	fail = true
	if _, err := e.det.Poll(e.ctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("poll err = %v, want the store failure", err)
	}
	after, _, _ := e.det.Cursor(e.ctx)
	if !after.Equal(before) {
		t.Fatalf("cursor moved from %v to %v although nothing was stored", before, after)
	}
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("failed poll left %v", ids(cs))
	}
	fail = false
	e.poll()
	cs := e.drain()
	if len(cs) != 1 || !cs[0].Fields["summary"].After.Equal(wire.StringValue("x")) {
		t.Fatalf("retry sent %+v, want the change once", cs)
	}
	if after, _, _ := e.det.Cursor(e.ctx); !after.After(before) {
		t.Fatalf("cursor did not advance after a good poll")
	}
}

func TestNewIssueAfterInitialSyncAndPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.PageSize = 2 })
	e.poll() // initial sync of an empty project
	var keys []string
	for i := range 5 {
		e.jclk.Add(time.Second)
		r := e.create(e.alice, "Task", "n"+string(rune('0'+i)), nil)
		keys = append(keys, r.Key)
	}
	// Edited after creation but before the poll: covered by the create.
	e.edit(e.alice, keys[0], map[string]any{"summary": "edited"}, nil)
	e.poll()
	cs := e.drain()
	if len(cs) != 5 {
		t.Fatalf("sent %v, want 5 creates", ids(cs))
	}
	for _, c := range cs {
		if c.Kind != wire.IssueCreate {
			t.Errorf("%s is %s, want create", c.ID, c.Kind)
		}
		if c.IssueKey == keys[0] && !c.Fields["summary"].After.Equal(wire.StringValue("edited")) {
			t.Errorf("create of %s carries %v", c.IssueKey, c.Fields["summary"].After)
		}
	}
	e.jclk.Add(time.Second)
	e.edit(e.alice, keys[0], map[string]any{"summary": "later"}, nil)
	e.poll()
	if cs := e.drain(); len(cs) != 1 || cs[0].Kind != wire.IssueUpdate {
		t.Fatalf("after create: %v", ids(cs))
	}
}

func TestWebhookPollsTheIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"summary": "hooked"}, nil)
	rec := httptest.NewRecorder()
	e.det.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewBufferString(`{"webhookEvent":"jira:issue_updated","issue":{"id":"`+is.ID+`","key":"`+is.Key+`"}}`)))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("webhook answered %d %s", rec.Code, rec.Body)
	}
	cs := e.drain()
	if len(cs) != 1 || !cs[0].Fields["summary"].After.Equal(wire.StringValue("hooked")) {
		t.Fatalf("webhook sent %v", ids(cs))
	}
	e.poll()
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("poll after webhook re-sent %v", ids(cs))
	}
	rec = httptest.NewRecorder()
	e.det.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewBufferString(`{}`)))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("empty payload answered %d", rec.Code)
	}
}

func TestResyncSendsCurrentState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.create(e.alice, "Bug", "a", nil)
	e.create(e.alice, "Task", "b", nil)
	e.poll()
	e.drain()
	e.jclk.Add(time.Second)
	e.edit(e.alice, a.Key, map[string]any{"summary": "a2"}, nil)
	r, err := e.det.Resync(e.ctx, "issuetype = Bug")
	if err != nil || r.Changes != 1 {
		t.Fatalf("resync = %+v, %v", r, err)
	}
	cs := e.drain()
	if len(cs) != 1 || cs[0].Kind != wire.IssueUpdate || cs[0].IssueType != "bug" || cs[0].Status != "todo" ||
		!cs[0].Fields["summary"].After.Equal(wire.StringValue("a2")) || len(cs[0].Fields) != 14 {
		t.Fatalf("resync sent %+v", cs)
	}
	// The edit before the resync is covered by it.
	e.poll()
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("poll after resync sent %v", ids(cs))
	}
}

func TestUnmappableValueParksTheIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	other := e.create(e.alice, "Bug", "other", nil)
	e.poll()
	e.drain()
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"priority": map[string]string{"name": "Lowest"}}, nil) // not in the values map
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"summary": "held"}, nil)
	e.edit(e.alice, other.Key, map[string]any{"summary": "goes on"}, nil)
	r := e.poll()
	cs := e.drain()
	if r.Parked != 1 || len(cs) != 1 || cs[0].IssueKey != other.Key {
		t.Fatalf("poll = %+v sent %v, want only the other issue and one parked", r, ids(cs))
	}
	var f store.Failure
	if err := e.st.View(e.ctx, func(tx *store.Tx) error {
		fs, err := tx.FailureList(syncID, 10, store.FailureOpen)
		if len(fs) == 1 {
			f = fs[0]
		}
		return err
	}); err != nil || f.ID == 0 {
		t.Fatalf("no failure record: %v", err)
	}
	if f.ErrorClass != "mapping" || !strings.Contains(f.ErrorText, "Lowest") || !strings.Contains(f.ErrorText, is.Key) {
		t.Errorf("failure = %+v", f)
	}
	// The operator skips it: the held change goes out, the skipped never.
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error { return tx.FailureSkip(f.ID) }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.det.PollIssue(e.ctx, is.Key); err != nil {
		t.Fatal(err)
	}
	cs = e.drain()
	if len(cs) != 1 || !cs[0].Fields["summary"].After.Equal(wire.StringValue("held")) {
		t.Fatalf("after skip sent %+v", cs)
	}
}

func TestChangeIDsNameTheHistoryEntry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"summary": "x"}, nil)
	e.poll()
	got := ids(e.drain())
	full, err := e.syncer.GetIssue(e.ctx, is.Key, []string{"summary"}, []string{"changelog"})
	if err != nil || full.Changelog == nil || len(full.Changelog.Histories) == 0 {
		t.Fatalf("read changelog: %v", err)
	}
	hs := full.Changelog.Histories
	want := []string{syncID + "/a/c" + is.ID, syncID + "/a/h" + hs[len(hs)-1].ID}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ids = %v, want %v", got, want)
	}
}

func TestParkedChangeGoesOutAfterTheMappingIsFixed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"priority": map[string]string{"name": "Lowest"}}, nil)
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"summary": "held"}, nil)
	if r := e.poll(); r.Parked != 1 {
		t.Fatalf("poll = %+v, want one parked", r)
	}
	e.drain()
	// Time passes: the cursor moves far beyond the parked entries.
	e.jclk.Add(time.Hour)
	e.create(e.alice, "Task", "unrelated", nil)
	e.poll()
	e.drain()
	// The operator maps Lowest and restarts the bridge: the first poll
	// looks at parked issues again.
	def := strings.Replace(testDef, "Low: p4}", "Low: p4, Lowest: p5}", 1)
	e2 := *e
	e2.m = remap(t, e, def)
	d, err := New(Options{Jira: e.syncer, Store: e.st, SyncID: syncID, Node: "a", SyncUser: "bridge", Mapping: e2.m, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Poll(e.ctx); err != nil {
		t.Fatal(err)
	}
	cs := e.drain()
	if len(cs) != 2 || !cs[0].Fields["prio"].After.Equal(wire.StringValue("p5")) || !cs[1].Fields["summary"].After.Equal(wire.StringValue("held")) {
		t.Fatalf("after the fix sent %+v", cs)
	}
	var open int
	_ = e.st.View(e.ctx, func(tx *store.Tx) error {
		open, _ = tx.FailureCount(syncID, store.FailureOpen, store.FailureRetrying)
		return nil
	})
	if open != 0 {
		t.Fatalf("%d failures still open", open)
	}
}

func TestIssuesMovingDuringPagingAreNotLost(t *testing.T) {
	t.Parallel()
	var e *env
	moved := false
	var first string
	e = newEnv(t, func(o *Options) {
		o.PageSize = 2
		o.beforeCommit = func(issueID string) error {
			if first != "" && !moved && issueID == first {
				moved = true
				// Someone edits the first issue while the scan is on
				// page one: it moves to the end of the result and the
				// third issue slips to page one, unseen.
				e.jclk.Add(10 * time.Minute)
				e.edit(e.alice, first, map[string]any{"summary": "moved"}, nil)
			}
			return nil
		}
	})
	var refs []jira.Ref
	for i := range 5 {
		refs = append(refs, e.create(e.alice, "Task", "n"+string(rune('0'+i)), nil))
		e.jclk.Add(time.Second)
	}
	e.poll()
	e.drain()
	for _, r := range refs {
		// Far enough apart that the overlap alone would not save the
		// third issue once the cursor passed the fifth.
		e.jclk.Add(2 * time.Minute)
		e.edit(e.alice, r.Key, map[string]any{"summary": "edit " + r.Key}, nil)
	}
	e.jclk.Add(5 * time.Minute)
	first = refs[0].ID
	before, _, _ := e.det.Cursor(e.ctx)
	e.poll()
	// The disturbed scan still moves the cursor, but only as far as its
	// first page reached, so polls make progress under constant edits.
	after, _, _ := e.det.Cursor(e.ctx)
	if !after.After(before) || !after.Before(e.jclk.Now().Add(-5*time.Minute)) {
		t.Errorf("cursor went from %v to %v (Jira time %v)", before, after, e.jclk.Now())
	}
	e.jclk.Add(time.Second)
	e.poll()
	got := map[string]bool{}
	for _, c := range e.drain() {
		if s, ok := c.Fields["summary"]; ok {
			got[s.After.Text()] = true
		}
	}
	for _, r := range refs {
		if !got["edit "+r.Key] {
			t.Errorf("edit of %s lost (sent %v)", r.Key, got)
		}
	}
	if !moved || !got["moved"] {
		t.Errorf("moved=%v, sent %v", moved, got)
	}
}

func TestJQLDatesInTheSyncUsersTimeZone(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	// Jira reads JQL dates in New York time; a cursor written in UTC
	// would ask for changes five hours in the future and find nothing.
	e := newEnvSim(t, jirasim.Options{Location: ny})
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	for i := range 3 {
		e.jclk.Add(time.Minute)
		e.edit(e.alice, is.Key, map[string]any{"summary": "v" + string(rune('0'+i))}, nil)
		e.poll()
	}
	if cs := e.drain(); len(cs) != 3 {
		t.Fatalf("sent %v, want 3 changes", ids(cs))
	}
}

func TestEmptyProjectThenFirstIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.poll(); !r.Initial || r.Changes != 0 {
		t.Fatalf("empty initial poll = %+v", r)
	}
	is := e.create(e.alice, "Bug", "s", nil)
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"summary": "t"}, nil)
	e.poll()
	cs := e.drain()
	if len(cs) != 1 || cs[0].Kind != wire.IssueCreate || !cs[0].Fields["summary"].After.Equal(wire.StringValue("t")) {
		t.Fatalf("sent %+v, want one create with the edit", cs)
	}
	e.jclk.Add(time.Second)
	e.poll()
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("re-poll sent %v", ids(cs))
	}
}

// The bridge's first poll that sees an issue may find a copy it created
// itself for the peer, already edited by a person: that edit must be sent,
// not covered by the initial sync's baseline.
func TestEmptyProjectThenPeersCopyEditedBeforeFirstPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.poll(); !r.Initial || r.Changes != 0 {
		t.Fatalf("empty initial poll = %+v", r)
	}
	cp := e.create(e.syncer, "Bug", "peer copy", nil, jira.Property{Key: OriginProperty, Value: map[string]string{"change_id": "p/x/c1"}})
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		return tx.PairPut(store.IssuePair{SyncID: syncID, LocalID: cp.ID, LocalKey: cp.Key, PeerID: "9001", PeerKey: "PEER-1"})
	}); err != nil {
		t.Fatal(err)
	}
	e.jclk.Add(time.Second)
	e.edit(e.alice, cp.Key, map[string]any{"summary": "alice edits the copy"}, nil)
	e.poll()
	cs := e.drain()
	if len(cs) != 1 || cs[0].Kind != wire.IssueUpdate || !cs[0].Fields["summary"].After.Equal(wire.StringValue("alice edits the copy")) {
		t.Fatalf("sent %+v, want alice's edit of the copy", cs)
	}
}

func TestUnmappableCreateParksAndSendsNothingOfTheIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.poll()
	is := e.create(e.alice, "Bug", "s", map[string]any{"priority": map[string]string{"name": "Lowest"}})
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"summary": "t"}, nil)
	if r := e.poll(); r.Parked != 1 || r.Changes != 0 {
		t.Fatalf("poll = %+v, want the create parked", r)
	}
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("sent %v", ids(cs))
	}
	// A person fixes the value: the next change of the issue brings the
	// create (with the current state) and resolves the failure.
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"priority": map[string]string{"name": "Low"}}, nil)
	e.poll()
	cs := e.drain()
	if len(cs) != 1 || cs[0].Kind != wire.IssueCreate || !cs[0].Fields["prio"].After.Equal(wire.StringValue("p4")) {
		t.Fatalf("sent %+v, want the create", cs)
	}
	var open int
	_ = e.st.View(e.ctx, func(tx *store.Tx) error {
		open, _ = tx.FailureCount(syncID, store.FailureOpen)
		return nil
	})
	if open != 0 {
		t.Fatalf("%d failures open after the create went out", open)
	}
}

func TestUserDirectoryAgainstJirasim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, found, err := e.syncer.UserByEmail(e.ctx, "BOB@example.org")
	if err != nil || !found || u.Name != "bob" {
		t.Fatalf("UserByEmail = %+v %v %v", u, found, err)
	}
	if _, found, err := e.syncer.UserByEmail(e.ctx, "bo@example.org"); err != nil || found {
		t.Fatalf("a prefix matched: %v %v", found, err)
	}
	u, found, err = e.syncer.UserByName(e.ctx, "alice")
	if err != nil || !found || u.EmailAddress != "alice@example.org" {
		t.Fatalf("UserByName = %+v %v %v", u, found, err)
	}
	k, found, err := e.syncer.UserByKey(e.ctx, u.Key)
	if err != nil || !found || k.Name != "alice" {
		t.Fatalf("UserByKey(%s) = %+v %v %v", u.Key, k, found, err)
	}
	if _, found, err := e.syncer.UserByName(e.ctx, "nobody"); err != nil || found {
		t.Fatalf("UserByName(nobody) = %v %v", found, err)
	}
}

func TestByEmailPolicySendsAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	def := strings.Replace(testDef, "users: {mode: by_username}", "users: {mode: by_email}", 1)
	m := remap(t, e, def)
	d, err := New(Options{Jira: e.syncer, Store: e.st, SyncID: syncID, Node: "a", SyncUser: "bridge", Mapping: m, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	is := e.create(e.alice, "Bug", "s", nil)
	if _, err := d.Poll(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.drain()
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"assignee": map[string]string{"name": "bob"}}, nil)
	if _, err := d.Poll(e.ctx); err != nil {
		t.Fatal(err)
	}
	cs := e.drain()
	want := wire.UserValue(wire.User{Email: "bob@example.org", Display: "Bob Example"})
	if len(cs) != 1 || !cs[0].Fields["assignee"].After.Equal(want) || cs[0].Author == nil || cs[0].Author.Email != "alice@example.org" || cs[0].Author.Name != "" {
		t.Fatalf("sent %+v, want bob by address, author alice by address", cs)
	}
}

func TestRetryOfAParkedChangeThatStillFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	is := e.create(e.alice, "Bug", "s", nil)
	e.poll()
	e.drain()
	e.jclk.Add(time.Second)
	e.edit(e.alice, is.Key, map[string]any{"priority": map[string]string{"name": "Lowest"}}, nil)
	e.poll()
	var f store.Failure
	_ = e.st.View(e.ctx, func(tx *store.Tx) error {
		fs, _ := tx.FailureList(syncID, 10)
		f = fs[0]
		return nil
	})
	// Quiet polls do not touch the parked issue again.
	e.jclk.Add(time.Hour)
	e.poll()
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error { return tx.FailureRetry(f.ID) }); err != nil {
		t.Fatal(err)
	}
	e.poll()
	if cs := e.drain(); len(cs) != 0 {
		t.Fatalf("sent %v", ids(cs))
	}
	_ = e.st.View(e.ctx, func(tx *store.Tx) error {
		var err error
		f, err = tx.FailureGet(f.ID)
		return err
	})
	if f.State != store.FailureOpen || f.Attempts != 2 {
		t.Fatalf("failure after retry = %+v, want open again after 2 attempts", f)
	}
}
