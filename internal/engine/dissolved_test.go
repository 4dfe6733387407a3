package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Interactions of a dissolved pair (one of its issues was deleted) with
// the content that was built next to it: links, the list of skipped items
// and links set aside.

func skipList(t *testing.T, b *bridge) []store.Skip {
	t.Helper()
	var out []store.Skip
	if err := b.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		out, err = tx.SkipList(syncID, store.SkipQuery{Limit: 1000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func skipLines(ss []store.Skip) []string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s.Direction)+" "+string(s.Kind)+" "+s.IssueKey)
	}
	slices.Sort(out)
	return out
}

func waitingLinks(t *testing.T, b *bridge) string {
	t.Helper()
	var v string
	if err := b.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		v, _, err = tx.CursorGet("links-waiting/" + syncID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// withLinkTypes maps only the given link types on one site (by name) and
// restarts its bridge.
func withLinkTypes(t *testing.T, b *bridge, s *enginetest.Site, types ...string) {
	t.Helper()
	def := *s.Def
	def.Links.Types = nil
	for _, n := range types {
		def.Links.Types = append(def.Links.Types, config.AliasPair{Local: n, Alias: n})
	}
	fields, err := s.Sync.Fields(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(&def, fields, mapping.Options{Users: s.Sync})
	if err != nil {
		t.Fatal(err)
	}
	s.Def, s.Mapping = &def, m
	b.restart()
}

// TestLinkToAnUnpairedIssueIsNotSent: once the partner of an issue was
// deleted, the issue stays (deletes: keep) but is not synced; a link a
// person then makes to it from a synced issue is left out and listed as
// such, instead of being sent to wait on the peer for an issue that will
// never come. The dissolved issue's own skipped items are no longer
// listed.
func TestLinkToAnUnpairedIssueIsNotSent(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withContent(t, w)
	withDeletes(t, w, w.alpha, config.DeletesKeep)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r1 := newIssue(t, alice, "ALPHA", "Bug", "stays synced", "")
	r2 := newIssue(t, alice, "ALPHA", "Bug", "partner deleted", "")
	// Over attachments.max_size_mb 1: listed as skipped on r2.
	if _, err := alice.AddAttachment(ctx, r2.Key, "big.bin", make([]byte, 2<<20)); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := skipLines(skipList(t, w.a)); !slices.Equal(got, []string{"outgoing attachment " + r2.Key}) {
		t.Fatalf("alpha skips before the delete %q", got)
	}
	if err := w.beta.Client(t, "admin").DeleteIssue(ctx, w.a.peerKey(t, r2.Key)); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := skipLines(skipList(t, w.a)); len(got) != 0 {
		t.Errorf("alpha skips after r2's partner was deleted %q, want none (r2 is not synced any more)", got)
	}
	// Of what detection kept about r2 (comments, attachments, watchers,
	// element clocks...) only the mark that it is unpaired is left.
	var kinds []string
	if err := w.a.st.View(ctx, func(tx *store.Tx) error {
		items, err := tx.SentList(syncID, r2.ID)
		for _, it := range items {
			kinds = append(kinds, it.ItemKind)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kinds, []string{detect.KindUnpaired}) {
		t.Errorf("alpha's records of r2 after the dissolution: %q, want only %q", kinds, detect.KindUnpaired)
	}

	if err := alice.CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if n := w.sentAB[wire.LinkAdd]; n != 0 {
		t.Errorf("alpha sent %d link.add, want 0: the other end is unpaired", n)
	}
	if v := waitingLinks(t, w.b); v != "" {
		t.Errorf("beta has links waiting for an issue that never comes: %s", v)
	}
	if got := skipLines(skipList(t, w.b)); len(got) != 0 {
		t.Errorf("beta skips %q, want none", got)
	}
	got := skipList(t, w.a)
	if !slices.Equal(skipLines(got), []string{"outgoing link " + r1.Key}) {
		t.Fatalf("alpha skips %q, want the link of %s", skipLines(got), r1.Key)
	}
	if r := got[0].Reason; !strings.Contains(r, r2.Key) || !strings.Contains(r, "partner") {
		t.Errorf("reason %q should say %s is no longer synced because its partner was deleted", r, r2.Key)
	}
}

// TestDissolvedPairDropsLinksSetAside: a link that waits on beta (its
// type is not mapped there) can never be made once a person on beta
// deletes one of its ends (alpha keeps the link, to an issue it no longer
// syncs): the pair's dissolution drops it from the waiting links, and its
// entry in the list of skipped items says why it is not made.
func TestDissolvedPairDropsLinksSetAside(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withContent(t, w)
	withDeletes(t, w, w.alpha, config.DeletesKeep)
	withLinkTypes(t, w.b, w.beta, "Blocks")
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r1 := newIssue(t, alice, "ALPHA", "Bug", "one", "")
	r2 := newIssue(t, alice, "ALPHA", "Bug", "two", "")
	w.settle()
	if err := alice.CreateLink(ctx, "Relates", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	b1 := w.a.peerKey(t, r1.Key)
	if got := skipLines(skipList(t, w.b)); !slices.Equal(got, []string{"incoming link " + b1}) || waitingLinks(t, w.b) == "" {
		t.Fatalf("beta skips %q, waiting %q: want the link of %s set aside", got, waitingLinks(t, w.b), b1)
	}
	if err := w.beta.Client(t, "admin").DeleteIssue(ctx, w.a.peerKey(t, r2.Key)); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if v := waitingLinks(t, w.b); v != "" {
		t.Errorf("beta still keeps a link to the dissolved issue waiting: %s", v)
	}
	mustForgetLinkToDeleted(t, w.b, b1)
}

// mustForgetLinkToDeleted checks that b no longer lists the incoming link of
// local issue key: its other end was deleted, nothing is left to do here,
// and the peer may never send the link's removal, so an entry would never
// go. (The peer lists its side: other end no longer synced.)
func mustForgetLinkToDeleted(t *testing.T, b *bridge, key string) {
	t.Helper()
	if got := skipLines(skipList(t, b)); slices.Contains(got, "incoming link "+key) {
		t.Fatalf("skips %q: the link of %s to a deleted issue is still listed", got, key)
	}
}

// TestWaitingLinkToAnIssueDeletedOnThePeer: a link waits on beta (its
// type is not mapped there); then alpha, the peer, deletes its other end.
// Beta keeps its copy (deletes: keep) and the pair is dissolved: the link
// stops waiting and is listed as not made because its other end was
// deleted.
func TestWaitingLinkToAnIssueDeletedOnThePeer(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withContent(t, w)
	withDeletes(t, w, w.beta, config.DeletesKeep)
	withLinkTypes(t, w.b, w.beta, "Blocks")
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r1 := newIssue(t, alice, "ALPHA", "Bug", "one", "")
	r2 := newIssue(t, alice, "ALPHA", "Bug", "two", "")
	w.settle()
	if err := alice.CreateLink(ctx, "Relates", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	b1, b2 := w.a.peerKey(t, r1.Key), w.a.peerKey(t, r2.Key)
	if waitingLinks(t, w.b) == "" {
		t.Fatal("the link does not wait on beta (test did not set up the wait)")
	}
	if err := w.alpha.Client(t, "admin").DeleteIssue(ctx, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if _, err := w.beta.Sync.GetIssue(ctx, b2, []string{"summary"}, nil); err != nil {
		t.Fatalf("beta's copy %s of the deleted issue: %v, want it kept", b2, err)
	}
	if v := waitingLinks(t, w.b); v != "" {
		t.Errorf("beta still keeps a link to the deleted issue waiting: %s", v)
	}
	mustForgetLinkToDeleted(t, w.b, b1)
}

// TestDissolvedPairResolvesItsOutgoingPark: a local change of an issue
// parked on its way out (a value the sync definition does not map); then
// the partner is deleted. The issue is not synced any more, so the parked
// change can never be sent: it leaves the list of parked messages, and
// the property shows "unpaired", not "parked".
func TestDissolvedPairResolvesItsOutgoingPark(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	withoutS3(t, w)
	withDeletes(t, w, w.alpha, config.DeletesKeep)
	alice := person(t, w.alpha, 0)
	one := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	w.settle()
	if err := alice.EditIssue(ctx, one.Key, map[string]any{w.alpha.Field["Severity"]: map[string]string{"value": "S3"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if fs := openFailures(t, w.a); len(fs) != 1 {
		t.Fatalf("open failures on alpha = %+v, want 1 (outgoing)", fs)
	}
	if err := w.beta.Client(t, "admin").DeleteIssue(ctx, w.a.peerKey(t, one.Key)); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if fs := openFailures(t, w.a); len(fs) != 0 {
		t.Errorf("open failures on alpha after the partner was deleted = %+v, want none", fs)
	}
	if st := syncState(t, w.alpha, one.Key); st.State != apply.StateUnpaired {
		t.Errorf("alpha property = %+v, want unpaired", st)
	}
}

// withoutS3 makes alpha's sync definition forget the Severity value S3
// and restarts alpha's bridge; the returned func puts the definition back
// and restarts it again.
func withoutS3(t *testing.T, w *world) (restore func()) {
	t.Helper()
	orig, origM := w.alpha.Def, w.alpha.Mapping
	def := *w.alpha.Def
	def.Fields = append([]config.FieldMap(nil), def.Fields...)
	for i, f := range def.Fields {
		if f.Alias != "severity" {
			continue
		}
		var vals config.AliasMap
		for _, v := range f.Values {
			if v.Local != "S3" {
				vals = append(vals, v)
			}
		}
		def.Fields[i].Values = vals
	}
	fields, err := w.alpha.Sync.Fields(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(&def, fields, mapping.Options{Users: w.alpha.Sync})
	if err != nil {
		t.Fatal(err)
	}
	w.alpha.Def, w.alpha.Mapping = &def, m
	w.a.restart()
	return func() {
		w.alpha.Def, w.alpha.Mapping = orig, origM
		w.a.restart()
	}
}

// TestResyncOfAnIssueParkedOnItsWayOut: a resync of an issue whose
// outgoing change is parked for a value the definition does not map
// parks no second change (the issue is listed once, as parked), and once
// the value is mapped and the park retried, nothing of the issue stays
// parked.
func TestResyncOfAnIssueParkedOnItsWayOut(t *testing.T) {
	t.Parallel()
	// Known, not fixed on the review branch: the fix belongs in
	// detect.go (write/processIssue), which another branch is changing.
	// A resync snapshot that cannot be mapped parks under its own change
	// id "r<issue>/<stamp>", a new open failure per resync that no later
	// scan ever produces again, so it never resolves. Remove this skip
	// with the fix.

	w := newWorld(t)
	ctx := context.Background()
	restore := withoutS3(t, w)
	alice := person(t, w.alpha, 0)
	one := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	w.settle()
	if err := alice.EditIssue(ctx, one.Key, map[string]any{w.alpha.Field["Severity"]: map[string]string{"value": "S3"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	fs := openFailures(t, w.a)
	if len(fs) != 1 {
		t.Fatalf("open failures on alpha = %+v, want 1 (outgoing)", fs)
	}
	for range 2 {
		if _, err := engine.RequestResync(ctx, w.a.st, syncID, "key = "+one.Key); err != nil {
			t.Fatal(err)
		}
		w.settle()
	}
	if got := openFailures(t, w.a); len(got) != 1 {
		t.Errorf("open failures on alpha after two resyncs = %d, want still 1:\n%+v", len(got), got)
	}
	restore()
	if _, err := replay.Retry(ctx, w.a.st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := openFailures(t, w.a); len(got) != 0 {
		t.Errorf("open failures on alpha after the value was mapped and the park retried = %+v, want none", got)
	}
	mustNoDiff(t, w, one.Key)
}

// TestDeleteDropsTheIssuesParkedIncomingChanges: a change from alpha parks
// on beta (a field beta's screen does not show); then a person on beta
// deletes the copy. That change can never be applied now: it is dropped
// as a change of a dissolved pair (counted, not parked), and nothing of
// the issue stays in beta's list of parked messages.
func TestDeleteDropsTheIssuesParkedIncomingChanges(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withMetrics(t, w)
	withDeletes(t, w, w.alpha, config.DeletesKeep)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	one := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	w.settle()
	betaKey := w.a.peerKey(t, one.Key)
	onScreen := []string{"summary", "description", "priority", "labels", "duedate", "assignee", "reporter",
		w.beta.Field["Estimate"], w.beta.Field["Impact"]}
	if err := w.beta.Sim.SetScreen("BETA", onScreen...); err != nil {
		t.Fatal(err)
	}
	if err := alice.EditIssue(ctx, one.Key, map[string]any{w.alpha.Field["Customer Ref"]: "C-9"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if fs := openFailures(t, w.b); len(fs) != 1 {
		t.Fatalf("open failures on beta = %+v, want 1", fs)
	}
	if err := w.beta.Client(t, "admin").DeleteIssue(ctx, betaKey); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if fs := openFailures(t, w.b); len(fs) != 0 {
		t.Errorf("open failures on beta after its copy was deleted = %+v, want none", fs)
	}
	var unresolved int
	if err := w.b.st.View(ctx, func(tx *store.Tx) error {
		var err error
		unresolved, err = tx.FailureCount(syncID, store.FailureOpen, store.FailureRetrying)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if unresolved != 0 {
		t.Errorf("beta has %d unresolved failures, want none", unresolved)
	}
	if got := testutil.ToFloat64(w.b.metrics.ChangesSkipped.WithLabelValues(apply.ReasonPairDissolved)); got != 1 {
		t.Errorf("beta dropped %v changes of the dissolved pair, want 1 (the parked one)", got)
	}
}

// TestParkedResyncSnapshotIsRetriedAsAResync: a resync snapshot carrying a
// value this side's definition no longer maps parks once (a second resync
// adds no second park); once the value is mapped again, retrying that park
// sends the issue again as a resync and nothing stays parked.
func TestParkedResyncSnapshotIsRetriedAsAResync(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	one := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	w.settle()
	if err := alice.EditIssue(ctx, one.Key, map[string]any{w.alpha.Field["Severity"]: map[string]string{"value": "S3"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	mustNoDiff(t, w, one.Key)
	restore := withoutS3(t, w)
	for range 2 {
		if _, err := engine.RequestResync(ctx, w.a.st, syncID, "key = "+one.Key); err != nil {
			t.Fatal(err)
		}
		w.settle()
	}
	fs := openFailures(t, w.a)
	if len(fs) != 1 || !strings.Contains(fs[0].ChangeID, "/r") {
		t.Fatalf("open failures on alpha after two resyncs = %+v, want the one resync snapshot", fs)
	}
	restore()
	if _, err := replay.Retry(ctx, w.a.st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := openFailures(t, w.a); len(got) != 0 {
		t.Errorf("open failures on alpha after the value was mapped and the park retried = %+v, want none", got)
	}
	mustNoDiff(t, w, one.Key)
}
