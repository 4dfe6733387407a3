package apply_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// This file proves that what the bridge leaves out on purpose is listed
// per item in the store (for `jirabridge status`), survives a restart,
// and goes when it no longer applies.

func skips(t testing.TB, s *side) []store.Skip {
	t.Helper()
	var out []store.Skip
	if err := s.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		out, err = tx.SkipList(syncID, store.SkipQuery{Limit: 1000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// skipLines renders skips as "direction kind issue-key item" for
// comparison; the reason is checked separately.
func skipLines(ss []store.Skip) []string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s.Direction)+" "+string(s.Kind)+" "+s.IssueKey+" "+s.Item)
	}
	slices.Sort(out)
	return out
}

// TestSkippedLinkToUnsyncedIssueIsListedUntilTheOtherEndJoins: a link to
// an issue outside the sync is listed with its reason, also after a
// restart; once the other end is brought into the sync the link is made
// on the peer and the entry is gone.
func TestSkippedLinkToUnsyncedIssueIsListedUntilTheOtherEndJoins(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "one")
	alice := w.person(w.alpha, 0)
	// Story is no synced issue type on alpha.
	other, err := alice.CreateIssue(ctx, map[string]any{"project": map[string]string{"key": "ALPHA"},
		"issuetype": map[string]string{"name": "Story"}, "summary": "not synced yet"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.CreateLink(ctx, "Relates", r1.Key, other.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	ls, err := w.alpha.Sync.IssueLinks(ctx, r1.Key)
	if err != nil || len(ls) != 1 {
		t.Fatalf("links of %s: %v %v", r1.Key, ls, err)
	}
	want := []string{"outgoing link " + r1.Key + " " + ls[0].ID}
	got := skips(t, w.a)
	if !slices.Equal(skipLines(got), want) {
		t.Fatalf("alpha skips %q, want %q", skipLines(got), want)
	}
	if r := got[0].Reason; !strings.Contains(r, "other end "+other.Key+" is not in the sync") {
		t.Errorf("reason %q does not name the other end %s", r, other.Key)
	}
	if got[0].FirstSeenAt.IsZero() || got[0].LastSeenAt.Before(got[0].FirstSeenAt) {
		t.Errorf("seen times: first %v last %v", got[0].FirstSeenAt, got[0].LastSeenAt)
	}
	if n := len(skips(t, w.b)); n != 0 {
		t.Errorf("beta skips %d, want none", n)
	}

	w.a.restart(t)
	if got := skipLines(skips(t, w.a)); !slices.Equal(got, want) {
		t.Fatalf("alpha skips after restart %q, want %q", got, want)
	}

	// The other end joins the sync (its type becomes a synced one): it
	// is sent, the link follows, and the entry goes. Later than the
	// poll's overlap, so that nothing but the look at skipped links
	// brings the issue back.
	w.pastOverlap()
	if err := alice.EditIssue(ctx, other.Key, map[string]any{"issuetype": map[string]string{"name": "Bug"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	b1, bo := w.peer(w.a, r1.Key), w.peer(w.a, other.Key)
	if got := linkSet(t, w.beta, b1, func(k string) string { return k }); !slices.Equal(got, []string{"Relates>" + bo}) {
		t.Errorf("beta links of %s %q, want the link to %s", b1, got, bo)
	}
	for _, s := range []*side{w.a, w.b} {
		if got := skipLines(skips(t, s)); len(got) != 0 {
			t.Errorf("%s skips after the other end joined: %q, want none", s.site.Name, got)
		}
	}
}

// moveKinds moves only the pending changes of the given kinds from one
// side's outbox to the other's replay queue.
func moveKinds(t testing.TB, from, to *side, kinds ...wire.ChangeKind) int {
	t.Helper()
	ctx := context.Background()
	var ps []store.PendingChange
	if err := from.st.View(ctx, func(tx *store.Tx) error {
		var err error
		ps, err = tx.PendingList(syncID, 10000)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	if err := to.st.Update(ctx, func(tx *store.Tx) error {
		for _, p := range ps {
			var c wire.Change
			if err := json.Unmarshal(p.Change, &c); err != nil {
				return err
			}
			if !slices.Contains(kinds, c.Kind) {
				continue
			}
			if _, _, err := tx.ReplayEnqueue(syncID, c.IssueID, c.ID, p.Change); err != nil {
				return err
			}
			ids = append(ids, p.ID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := from.st.Update(ctx, func(tx *store.Tx) error { return tx.PendingDelete(ids...) }); err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// TestIncomingLinkWaitingForItsOtherEndIsListed: a link that arrives
// before its other end is listed on the receiving side with why, also
// after a restart, and goes when the other end arrives and the link is
// made.
func TestIncomingLinkWaitingForItsOtherEndIsListed(t *testing.T) {
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
	// Only the link travels now; r2's creation comes later.
	if n := moveKinds(t, w.a, w.b, wire.LinkAdd); n != 1 {
		t.Fatalf("moved %d link changes, want 1", n)
	}
	if _, err := w.b.rep.Round(ctx); err != nil {
		t.Fatal(err)
	}
	b1 := w.peer(w.a, r1.Key)
	is2, err := w.alpha.Sync.GetIssue(ctx, r2.Key, []string{"summary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := skips(t, w.b)
	if len(got) != 1 || got[0].Direction != store.SkipIncoming || got[0].Kind != store.SkipLink || got[0].IssueKey != b1 {
		t.Fatalf("beta skips %q, want the incoming link of %s", skipLines(got), b1)
	}
	if r := got[0].Reason; !strings.Contains(r, "waits for its other end, peer issue "+is2.ID) {
		t.Errorf("reason %q does not say it waits for peer issue %s", r, is2.ID)
	}
	w.b.restart(t)
	if again := skips(t, w.b); !slices.Equal(skipLines(again), skipLines(got)) {
		t.Fatalf("beta skips after restart %q, want %q", skipLines(again), skipLines(got))
	}

	w.settle()
	b2 := w.peer(w.a, r2.Key)
	if links := linkSet(t, w.beta, b1, func(k string) string { return k }); !slices.Equal(links, []string{"Blocks>" + b2}) {
		t.Errorf("beta links of %s %q, want Blocks>%s", b1, links, b2)
	}
	if got := skipLines(skips(t, w.b)); len(got) != 0 {
		t.Errorf("beta skips after the link was made %q, want none", got)
	}
}

// TestUnmappableWatcherIsListedUntilTheyLeave: a peer's watcher nobody
// here matches is listed on the receiving side, and the entry goes when
// they stop watching.
func TestUnmappableWatcherIsListedUntilTheyLeave(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	if err := w.alpha.Sim.CreateUser(jiraUser("dave")); err != nil {
		t.Fatal(err)
	}
	ref := w.create(w.alpha, 0, "watch")
	admin := w.alpha.Client(t, "admin")
	if err := admin.AddWatcher(ctx, ref.Key, "dave"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	want := []string{"incoming watcher " + bk + " dave@elsewhere.example"}
	got := skips(t, w.b)
	if !slices.Equal(skipLines(got), want) {
		t.Fatalf("beta skips %q, want %q", skipLines(got), want)
	}
	if r := got[0].Reason; !strings.Contains(r, "dave@elsewhere.example (Dave Nobody) has no match here") || !strings.Contains(r, "users.mode by_email") {
		t.Errorf("reason %q", r)
	}
	w.b.restart(t)
	if got := skipLines(skips(t, w.b)); !slices.Equal(got, want) {
		t.Fatalf("beta skips after restart %q, want %q", got, want)
	}
	if err := admin.RemoveWatcher(ctx, ref.Key, "dave"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := skipLines(skips(t, w.b)); len(got) != 0 {
		t.Errorf("beta skips after dave left %q, want none", got)
	}
}

// TestFilteredAttachmentAndRestrictedCommentAreListed: detection lists
// what it does not send with the filter or restriction that stopped it,
// and forgets an entry when its item is deleted.
func TestFilteredAttachmentAndRestrictedCommentAreListed(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	// The sync user sees the restricted comment, and still must not send it.
	if err := w.alpha.Sim.AddRoleMember(w.alpha.Project, "Developers", enginetest.SyncUser); err != nil {
		t.Fatal(err)
	}
	ref := w.create(w.alpha, 0, "content")
	alice := w.person(w.alpha, 0)
	big, err := alice.AddAttachment(ctx, ref.Key, "big.bin", randomBytes(1, 2<<20))
	if err != nil {
		t.Fatal(err)
	}
	odd, err := alice.AddAttachment(ctx, ref.Key, "notes.doc", []byte("words"))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := alice.AddComment(ctx, ref.Key, "for developers only", &jira.Visibility{Type: "role", Value: "Developers"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	got := skips(t, w.a)
	want := []string{"outgoing attachment " + ref.Key + " " + big.ID, "outgoing attachment " + ref.Key + " " + odd.ID,
		"outgoing comment " + ref.Key + " " + cm.ID}
	if !slices.Equal(skipLines(got), want) {
		t.Fatalf("alpha skips %q, want %q", skipLines(got), want)
	}
	reasons := map[string]string{}
	for _, s := range got {
		reasons[string(s.Kind)+s.Item] = s.Reason
	}
	if r := reasons["attachment"+big.ID]; !strings.Contains(r, "big.bin (2.0 MB") || !strings.Contains(r, "over attachments.max_size_mb 1") {
		t.Errorf("reason of big.bin: %q", r)
	}
	if r := reasons["attachment"+odd.ID]; !strings.Contains(r, "notes.doc") || !strings.Contains(r, "attachments.filename_patterns") {
		t.Errorf("reason of notes.doc: %q", r)
	}
	if r := reasons["comment"+cm.ID]; !strings.Contains(r, `restricted to role "Developers"`) || !strings.Contains(r, "comments.restricted is skip") {
		t.Errorf("reason of the restricted comment: %q", r)
	}
	if err := alice.DeleteAttachment(ctx, big.ID); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteComment(ctx, ref.Key, cm.ID); err != nil {
		t.Fatal(err)
	}
	// Deleting an attachment leaves the issue's updated time alone in
	// some Jiras; a comment makes sure the poll looks at the issue.
	if _, err := alice.AddComment(ctx, ref.Key, "removed the big one", nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	want = []string{"outgoing attachment " + ref.Key + " " + odd.ID}
	if got := skipLines(skips(t, w.a)); !slices.Equal(got, want) {
		t.Errorf("alpha skips after deleting big.bin and the comment %q, want %q", got, want)
	}
	// The issue leaves the sync (here: deleted): its entries go too.
	if err := w.alpha.Client(t, "admin").DeleteIssue(ctx, ref.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := skipLines(skips(t, w.a)); len(got) != 0 {
		t.Errorf("alpha skips after the issue was deleted %q, want none", got)
	}
}

// TestIncomingLinkOfAnUnmappedTypeWaitsListed: a link whose type alias
// has no local link type does not park the issue: it is set aside and
// listed with what to map, and made once the type is mapped.
func TestIncomingLinkOfAnUnmappedTypeWaitsListed(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	// Beta maps only Blocks; alpha sends link types by name.
	only := func(types ...string) func(*config.SyncDef) {
		return func(d *config.SyncDef) {
			for _, n := range types {
				d.Links.Types = append(d.Links.Types, config.AliasPair{Local: n, Alias: n})
			}
		}
	}
	contentDef(t, w.beta, only("Blocks"))
	w.b.restart(t)
	r1 := w.create(w.alpha, 0, "one")
	r2 := w.create(w.alpha, 0, "two")
	w.settle()
	if err := w.person(w.alpha, 0).CreateLink(ctx, "Relates", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle() // nothing parked
	b1, b2 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key)
	got := skips(t, w.b)
	if len(got) != 1 || got[0].Kind != store.SkipLink || got[0].Direction != store.SkipIncoming || got[0].IssueKey != b1 {
		t.Fatalf("beta skips %q, want the incoming link of %s", skipLines(got), b1)
	}
	if r := got[0].Reason; !strings.Contains(r, `link type alias "Relates" is not in links.types`) {
		t.Errorf("reason %q", r)
	}
	if links := linkSet(t, w.beta, b1, func(k string) string { return k }); len(links) != 0 {
		t.Errorf("beta links of %s %q, want none yet", b1, links)
	}

	// The operator maps it and restarts; the next create makes it.
	contentDef(t, w.beta, only("Blocks", "Relates"))
	w.b.restart(t)
	w.create(w.alpha, 0, "three")
	w.settle()
	if links := linkSet(t, w.beta, b1, func(k string) string { return k }); !slices.Equal(links, []string{"Relates>" + b2}) {
		t.Errorf("beta links of %s %q, want Relates>%s", b1, links, b2)
	}
	if got := skipLines(skips(t, w.b)); len(got) != 0 {
		t.Errorf("beta skips after the type was mapped %q, want none", got)
	}
}

// TestOutgoingLinkOfAnUnmappedTypeIsSentOnceMapped: detection lists a link
// whose type this side does not map, and sends it on the first poll after
// a restart with the type mapped, though the issue did not change.
func TestOutgoingLinkOfAnUnmappedTypeIsSentOnceMapped(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	only := func(types ...string) func(*config.SyncDef) {
		return func(d *config.SyncDef) {
			for _, n := range types {
				d.Links.Types = append(d.Links.Types, config.AliasPair{Local: n, Alias: n})
			}
		}
	}
	contentDef(t, w.alpha, only("Blocks"))
	w.a.restart(t)
	r1 := w.create(w.alpha, 0, "one")
	r2 := w.create(w.alpha, 0, "two")
	w.settle()
	if err := w.person(w.alpha, 0).CreateLink(ctx, "Relates", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	got := skips(t, w.a)
	if len(got) != 1 || got[0].Kind != store.SkipLink || got[0].Direction != store.SkipOutgoing || got[0].IssueKey != r1.Key {
		t.Fatalf("alpha skips %q, want the outgoing link of %s", skipLines(got), r1.Key)
	}
	if r := got[0].Reason; !strings.Contains(r, `link type "Relates" is not in links.types`) {
		t.Errorf("reason %q", r)
	}
	// Later than the poll's overlap: the issue does not change, only the
	// first poll after the restart looks at it again.
	w.pastOverlap()
	contentDef(t, w.alpha, only("Blocks", "Relates"))
	w.a.restart(t)
	w.settle()
	b1, b2 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key)
	if links := linkSet(t, w.beta, b1, func(k string) string { return k }); !slices.Equal(links, []string{"Relates>" + b2}) {
		t.Errorf("beta links of %s %q, want Relates>%s", b1, links, b2)
	}
	if got := skipLines(skips(t, w.a)); len(got) != 0 {
		t.Errorf("alpha skips after the type was mapped %q, want none", got)
	}
}

// pastOverlap moves detection's window past every issue so far: an hour
// later another issue changes, and the polls' cursor follows it.
func (w *cworld) pastOverlap() {
	w.t.Helper()
	w.clk.Advance(time.Hour)
	w.create(w.alpha, 1, "later")
	w.create(w.beta, 1, "later")
	w.settle()
}
