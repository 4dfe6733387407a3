package apply_test

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/perms"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// This file proves that `jirabridge resync` repairs comments and
// attachments that differ behind the bridge's back (changes lost on the
// way, stray writes, lost records), that a second resync writes nothing,
// and that the write-back of a partner's edits and deletions to the
// originals needs the *_ALL_* permissions.

// lose drops what a side has detected but not sent: the envelopes were
// lost on the way.
func lose(t testing.TB, s *side) int {
	t.Helper()
	var n int
	if err := s.st.Update(context.Background(), func(tx *store.Tx) error {
		ps, err := tx.PendingList(syncID, 10000)
		if err != nil {
			return err
		}
		ids := make([]int64, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		n = len(ids)
		if n == 0 {
			return nil
		}
		return tx.PendingDelete(ids...)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func poll(t testing.TB, s *side) {
	t.Helper()
	if _, err := s.det.Poll(context.Background()); err != nil {
		t.Fatalf("poll %s: %v", s.site.Name, err)
	}
}

func resync(t testing.TB, s *side) {
	t.Helper()
	if _, err := s.det.Resync(context.Background(), ""); err != nil {
		t.Fatalf("resync %s: %v", s.site.Name, err)
	}
}

// writes counts the Jira calls that change something, by route. Searches
// (POST) read; the issue property jirabridge.sync shows the last applied
// change of the issue and moves with the resync's issue.update by design.
func writes(s *enginetest.Site) map[string]int {
	out := map[string]int{}
	for r, n := range s.Sim.RouteCounters() {
		if strings.HasPrefix(r, "GET ") || r == "POST /rest/api/2/search" || r == "PUT /rest/api/2/issue/{key}/properties/{prop}" || n == 0 {
			continue
		}
		out[r] = n
	}
	return out
}

func commentID(t testing.TB, s *enginetest.Site, key, suffix string) string {
	t.Helper()
	cms, err := s.Sync.Comments(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cms {
		if strings.HasSuffix(c.Body, suffix) {
			return c.ID
		}
	}
	t.Fatalf("%s %s: no comment ending %q", s.Name, key, suffix)
	return ""
}

func attachmentID(t testing.TB, s *enginetest.Site, key, name string) string {
	t.Helper()
	as, err := s.Sync.Attachments(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Filename == name {
			return a.ID
		}
	}
	t.Fatalf("%s %s: no attachment %q", s.Name, key, name)
	return ""
}

func TestResyncRepairsCommentsAndAttachmentsAndASecondResyncWritesNothing(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	if err := w.alpha.Sim.AddRoleMember(w.alpha.Project, "Developers", enginetest.SyncUser); err != nil {
		t.Fatal(err)
	}
	ref := w.create(w.alpha, 0, "resync content")
	alice := w.person(w.alpha, 0)
	add := func(text string) jira.Comment {
		t.Helper()
		c, err := alice.AddComment(ctx, ref.Key, text, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1, c3 := add("one"), add("three")
	add("four")
	if _, err := alice.AddAttachment(ctx, ref.Key, "kept.bin", randomBytes(1, 3000)); err != nil {
		t.Fatal(err)
	}
	a3, err := alice.AddAttachment(ctx, ref.Key, "gone.bin", randomBytes(3, 2000))
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)

	// Lost on the way: a new comment, an edit, a deletion, a new and a
	// deleted attachment, a skipped attachment's notice; a restricted and
	// an internal comment are detected too (and must stay on alpha).
	add("two")
	if _, err := alice.EditComment(ctx, ref.Key, c1.ID, "one, edited", nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteComment(ctx, ref.Key, c3.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddAttachment(ctx, ref.Key, "new.txt", []byte("fresh bytes")); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteAttachment(ctx, a3.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddAttachment(ctx, ref.Key, "tool.exe", randomBytes(4, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddComment(ctx, ref.Key, "developers only", &jira.Visibility{Type: "role", Value: "Developers"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddComment(ctx, ref.Key, "internal note", nil,
		[]jira.Property{{Key: jira.InternalCommentProperty, Value: map[string]bool{"internal": true}}}); err != nil {
		t.Fatal(err)
	}
	poll(t, w.a)
	if n := lose(t, w.a); n < 6 {
		t.Fatalf("lost %d changes, want the 6 the people made", n)
	}
	// A stray write on beta the records do not know: the sync user
	// changed the copy of "four" (detection never sends the sync user's
	// own edits, so nothing repairs it but a resync).
	if _, err := w.beta.Sync.EditComment(ctx, bk, commentID(t, w.beta, bk, "\nfour"), "Alice Smith (Partner Jira):\ntampered", nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := commentLines(t, w.beta, bk); slices.Contains(got, "Alice Smith: two") {
		t.Fatalf("beta has the lost comment already: %q", got)
	}

	resync(t, w.a)
	w.settle()
	wantComments := []string{"Alice Smith: four", "Alice Smith: one, edited", "Alice Smith: two",
		`notice: Attachment "tool.exe" (100 bytes) was not synced: its type or name is not synced.`}
	if got := commentLines(t, w.beta, bk); !slices.Equal(got, wantComments) {
		t.Errorf("beta comments after resync\n got %q\nwant %q", got, wantComments)
	}
	alphaSums := slices.DeleteFunc(attachmentSums(t, w.alpha, ref.Key), func(s string) bool { return strings.HasPrefix(s, "tool.exe=") })
	same(t, "attachments after resync", alphaSums, attachmentSums(t, w.beta, bk))
	if n := len(attachmentSums(t, w.beta, bk)); n != 2 {
		t.Errorf("beta has %d attachments, want kept.bin and new.txt", n)
	}
	if got := commentLines(t, w.alpha, ref.Key); len(got) != 5 {
		t.Errorf("alpha comments %q: the resync wrote on the sender", got)
	}
	if n := w.a.det.Stats().RestrictedComments.Load(); n != 2 {
		t.Errorf("restricted comments counted %d, want 2 (once each, the resync counts nothing again)", n)
	}
	if n := w.a.det.Stats().FilteredAttachments.Load(); n != 1 {
		t.Errorf("filtered attachments counted %d, want 1", n)
	}

	// A second resync: every item travels again, and nothing is written.
	w.alpha.Sim.ResetCounters()
	w.beta.Sim.ResetCounters()
	before := w.sentAB[wire.CommentAdd]
	resync(t, w.a)
	w.settle()
	if w.sentAB[wire.CommentAdd] == before {
		t.Error("the second resync sent no comments (nothing was tested)")
	}
	for _, s := range []*enginetest.Site{w.alpha, w.beta} {
		if got := writes(s); len(got) != 0 {
			t.Errorf("second resync wrote to %s: %v", s.Name, got)
		}
	}
	if got := commentLines(t, w.beta, bk); !slices.Equal(got, wantComments) {
		t.Errorf("beta comments after the second resync %q", got)
	}
	// Normal sync goes on: nothing is sent again by the next polls.
	sent := w.sentAB[wire.CommentAdd] + w.sentAB[wire.AttachmentAdd]
	w.settle()
	if w.sentAB[wire.CommentAdd]+w.sentAB[wire.AttachmentAdd] != sent {
		t.Errorf("polls after the resync sent again: %v", w.sentAB)
	}
	// A person on beta removes the notice: nothing to do on alpha, even
	// where the write-back to originals is refused (settle checks that
	// nothing parks).
	w.a.app.RefuseFeatures(map[string]string{perms.FeatureCommentDeletesToOriginals: "grant DELETE_ALL_COMMENTS"})
	if err := w.beta.Client(t, "admin").DeleteComment(ctx, bk, commentID(t, w.beta, bk, "its type or name is not synced.")); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := commentLines(t, w.alpha, ref.Key); len(got) != 5 {
		t.Errorf("alpha comments after the notice went on beta %q", got)
	}
}

// A person on beta edits and deletes the bridge's copies, and those
// changes are lost on the way. A resync of alpha must not undo them (the
// person's newer edit and deletion win); a resync of beta carries them to
// the originals.
func TestResyncOfThePeerCarriesLostEditsAndDeletesOfCopiesToTheOriginals(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	ref := w.create(w.alpha, 0, "copies")
	alice := w.person(w.alpha, 0)
	for _, text := range []string{"keep me", "drop me"} {
		if _, err := alice.AddComment(ctx, ref.Key, text, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.AddAttachment(ctx, ref.Key, "drop.bin", randomBytes(7, 999)); err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	admin := w.beta.Client(t, "admin")
	if _, err := admin.EditComment(ctx, bk, commentID(t, w.beta, bk, "\nkeep me"), "Alice Smith (Partner Jira):\nkeep me, corrected on beta", nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteComment(ctx, bk, commentID(t, w.beta, bk, "\ndrop me")); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteAttachment(ctx, attachmentID(t, w.beta, bk, "drop.bin")); err != nil {
		t.Fatal(err)
	}
	poll(t, w.b)
	if n := lose(t, w.b); n != 3 {
		t.Fatalf("beta lost %d changes, want 3", n)
	}

	resync(t, w.a)
	w.settle()
	if got := commentLines(t, w.beta, bk); !slices.Equal(got, []string{"Alice Smith: keep me, corrected on beta"}) {
		t.Errorf("alpha's resync undid the person's changes on beta: %q", got)
	}
	if got := attachmentSums(t, w.beta, bk); len(got) != 0 {
		t.Errorf("alpha's resync brought back the attachment deleted on beta: %q", got)
	}

	resync(t, w.b)
	w.settle()
	if got := commentLines(t, w.alpha, ref.Key); !slices.Equal(got, []string{"Alice Smith: keep me, corrected on beta"}) {
		t.Errorf("alpha comments after beta's resync %q", got)
	}
	if got := attachmentSums(t, w.alpha, ref.Key); len(got) != 0 {
		t.Errorf("alpha attachments after beta's resync %q", got)
	}
	same(t, "comments", commentLines(t, w.alpha, ref.Key), commentLines(t, w.beta, bk))

	w.alpha.Sim.ResetCounters()
	w.beta.Sim.ResetCounters()
	resync(t, w.a)
	resync(t, w.b)
	w.settle()
	for _, s := range []*enginetest.Site{w.alpha, w.beta} {
		if got := writes(s); len(got) != 0 {
			t.Errorf("second resyncs wrote to %s: %v", s.Name, got)
		}
	}
}

// Beta's records of its copies are lost (a store restored from an old
// backup): the resync finds the copies by the comment property and by
// the sync user's upload with the same name and checksum instead of
// adding them again.
func TestResyncFindsCopiesWhoseRecordsWereLost(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	ref := w.create(w.alpha, 0, "lost records")
	alice := w.person(w.alpha, 0)
	c1, err := alice.AddComment(ctx, ref.Key, "only once", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := alice.AddAttachment(ctx, ref.Key, "once.bin", randomBytes(8, 4321))
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	bis, err := w.beta.Sync.GetIssue(ctx, bk, []string{"summary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.b.st.Update(ctx, func(tx *store.Tx) error {
		for _, k := range []string{"comment/" + syncID + "/" + c1.ID, "attachment/" + syncID + "/" + a1.ID} {
			if err := tx.CursorSet(k, ""); err != nil {
				return err
			}
		}
		return tx.SentDeleteIssue(syncID, bis.ID)
	}); err != nil {
		t.Fatal(err)
	}
	w.beta.Sim.ResetCounters()
	resync(t, w.a)
	w.settle()
	if got := commentLines(t, w.beta, bk); !slices.Equal(got, []string{"Alice Smith: only once"}) {
		t.Errorf("beta comments %q, want one", got)
	}
	same(t, "attachments", attachmentSums(t, w.alpha, ref.Key), attachmentSums(t, w.beta, bk))
	if got := writes(w.beta); len(got) != 0 {
		t.Errorf("resync wrote to beta: %v", got)
	}
	// The pairing is known again: alpha's next edit reaches the copy.
	if _, err := alice.EditComment(ctx, ref.Key, c1.ID, "only once, edited", nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := commentLines(t, w.beta, bk); !slices.Equal(got, []string{"Alice Smith: only once, edited"}) {
		t.Errorf("beta comments after the edit %q", got)
	}
	// And beta's detection knows the copy again: a person's deletion of
	// it reaches the original.
	if err := w.beta.Client(t, "admin").DeleteComment(ctx, bk, commentID(t, w.beta, bk, "\nonly once, edited")); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := commentLines(t, w.alpha, ref.Key); len(got) != 0 {
		t.Errorf("alpha comments after beta deleted the copy %q", got)
	}
}

// run is settle without the check that nothing is parked.
func (w *cworld) run() {
	w.t.Helper()
	ctx := context.Background()
	for round := 0; round < 60; round++ {
		moved := 0
		for _, s := range []*side{w.a, w.b} {
			r, err := s.det.Poll(ctx)
			if err != nil {
				w.t.Fatalf("poll %s: %v", s.site.Name, err)
			}
			rr, err := s.rep.Round(ctx)
			if err != nil {
				w.t.Fatalf("replay %s: %v", s.site.Name, err)
			}
			moved += r.Changes + rr.Applied + rr.Retries
		}
		n, err := move(ctx, w.a, w.b, w.sentAB)
		if err != nil {
			w.t.Fatal(err)
		}
		m, err := move(ctx, w.b, w.a, w.sentBA)
		if err != nil {
			w.t.Fatal(err)
		}
		if moved+n+m == 0 {
			return
		}
	}
	w.t.Fatal("still moving after 60 rounds")
}

func parked(t testing.TB, s *side) []store.Failure {
	t.Helper()
	var fs []store.Failure
	if err := s.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 100, store.FailureOpen)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].ID < fs[j].ID })
	return fs
}

// Alpha's sync user may add comments and edit or delete its own, but not
// a person's (no EDIT_ALL_COMMENTS, DELETE_ALL_COMMENTS). A person on
// beta edits, then deletes, the bridge's copy of alice's comment: on
// alpha each change parks, naming the permission (with the permission
// check's refusal, or Jira's 403 without it), while other comments keep
// syncing; once granted and retried the original changes.
func TestWriteBackToOriginalsNeedsTheAllPermissions(t *testing.T) {
	t.Parallel()
	for _, refuse := range []bool{true, false} {
		name := "jira refuses"
		if refuse {
			name = "permission check refuses"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newCWorld(t, nil)
			ctx := context.Background()
			for _, p := range []string{"EDIT_ALL_COMMENTS", "DELETE_ALL_COMMENTS"} {
				if err := w.alpha.Sim.SetPermission(w.alpha.Project, p); err != nil {
					t.Fatal(err)
				}
			}
			// What the engine does at start (engine.Config.CheckPermissions).
			check := func(want int) {
				t.Helper()
				if !refuse {
					return
				}
				rows, err := perms.Check(ctx, w.alpha.Sync, w.alpha.Project, perms.Features(w.alpha.Def))
				if err != nil {
					t.Fatal(err)
				}
				why := map[string]string{}
				for _, r := range perms.Missing(rows) {
					why[r.Feature] = r.WhatToDo
				}
				if len(why) != want {
					t.Fatalf("refused %v, want %d write-back features", why, want)
				}
				w.a.app.RefuseFeatures(why)
			}
			check(2)
			ref := w.create(w.alpha, 0, "write back")
			alice := w.person(w.alpha, 0)
			orig, err := alice.AddComment(ctx, ref.Key, "original words", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.settle()
			bk := w.peer(w.a, ref.Key)
			copyID := commentID(t, w.beta, bk, "\noriginal words")
			admin := w.beta.Client(t, "admin")
			if _, err := admin.EditComment(ctx, bk, copyID, "Alice Smith (Partner Jira):\nwords corrected on beta", nil); err != nil {
				t.Fatal(err)
			}
			w.run()
			fs := parked(t, w.a)
			if len(fs) != 1 || fs[0].Kind != string(wire.CommentEdit) || !strings.Contains(fs[0].ErrorText, "EDIT_ALL_COMMENTS") ||
				!strings.Contains(fs[0].ErrorText, enginetest.SyncUser) {
				t.Fatalf("parked on alpha %+v, want the edit naming EDIT_ALL_COMMENTS", fs)
			}
			if got := commentLines(t, w.alpha, ref.Key); !slices.Equal(got, []string{"Alice Smith: original words"}) {
				t.Errorf("alpha original %q, want unchanged while parked", got)
			}
			// Comments of other issues still sync both ways.
			other := w.create(w.alpha, 0, "still syncing")
			if _, err := alice.AddComment(ctx, other.Key, "hello", nil, nil); err != nil {
				t.Fatal(err)
			}
			w.run()
			if got := commentLines(t, w.beta, w.peer(w.a, other.Key)); !slices.Equal(got, []string{"Alice Smith: hello"}) {
				t.Errorf("other issue's comments on beta %q", got)
			}

			// Granted (and, for the refusal, the bridge restarted): retried,
			// the original is edited.
			if err := w.alpha.Sim.SetPermission(w.alpha.Project, "EDIT_ALL_COMMENTS", "role:Administrators"); err != nil {
				t.Fatal(err)
			}
			check(1)
			if _, err := replay.Retry(ctx, w.a.st, fs[0].ID); err != nil {
				t.Fatal(err)
			}
			w.run()
			cms, err := w.alpha.Sync.Comments(ctx, ref.Key)
			if err != nil {
				t.Fatal(err)
			}
			if len(cms) != 1 || cms[0].ID != orig.ID || cms[0].Body != "words corrected on beta" {
				t.Errorf("alpha original after the grant %+v", cms)
			}
			if fs := parked(t, w.a); len(fs) != 0 {
				t.Errorf("still parked: %+v", fs)
			}
			// Revoked again, a resync of beta sends the copy's edit again:
			// the original has that text, so nothing parks (settle checks).
			if err := w.alpha.Sim.SetPermission(w.alpha.Project, "EDIT_ALL_COMMENTS"); err != nil {
				t.Fatal(err)
			}
			check(2)
			before := w.sentBA[wire.CommentEdit]
			resync(t, w.b)
			w.settle()
			if w.sentBA[wire.CommentEdit] == before {
				t.Error("beta's resync sent no edit of the copy (nothing was tested)")
			}
			if err := w.alpha.Sim.SetPermission(w.alpha.Project, "EDIT_ALL_COMMENTS", "role:Administrators"); err != nil {
				t.Fatal(err)
			}
			check(1)

			// The deletion: parked without DELETE_ALL_COMMENTS, done with it.
			if err := admin.DeleteComment(ctx, bk, copyID); err != nil {
				t.Fatal(err)
			}
			w.run()
			fs = parked(t, w.a)
			if len(fs) != 1 || fs[0].Kind != string(wire.CommentDelete) || !strings.Contains(fs[0].ErrorText, "DELETE_ALL_COMMENTS") {
				t.Fatalf("parked on alpha %+v, want the deletion naming DELETE_ALL_COMMENTS", fs)
			}
			if err := w.alpha.Sim.SetPermission(w.alpha.Project, "DELETE_ALL_COMMENTS", "role:Administrators"); err != nil {
				t.Fatal(err)
			}
			check(0)
			if _, err := replay.Retry(ctx, w.a.st, fs[0].ID); err != nil {
				t.Fatal(err)
			}
			w.settle()
			if got := commentLines(t, w.alpha, ref.Key); len(got) != 0 {
				t.Errorf("alpha comments after the granted deletion %q", got)
			}
		})
	}
}

// With restricted comments mapped, a resync keeps the restriction: the
// lost comment arrives restricted, an unmapped internal one stays home,
// and a second resync writes nothing.
func TestResyncKeepsMappedRestrictions(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, func(d *config.SyncDef) {
		d.Comments.Restricted = config.RestrictedMap
		d.Comments.Visibility = []config.Visibility{{Type: "role", Value: "Developers", Alias: "devs"}}
	})
	ctx := context.Background()
	for _, s := range []*enginetest.Site{w.alpha, w.beta} {
		if err := s.Sim.AddRoleMember(s.Project, "Developers", enginetest.SyncUser); err != nil {
			t.Fatal(err)
		}
	}
	ref := w.create(w.alpha, 0, "mapped resync")
	w.settle()
	alice := w.person(w.alpha, 0)
	if _, err := alice.AddComment(ctx, ref.Key, "devs only", &jira.Visibility{Type: "role", Value: "Developers"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddComment(ctx, ref.Key, "internal stays", nil,
		[]jira.Property{{Key: jira.InternalCommentProperty, Value: map[string]bool{"internal": true}}}); err != nil {
		t.Fatal(err)
	}
	poll(t, w.a)
	lose(t, w.a)
	resync(t, w.a)
	w.settle()
	bk := w.peer(w.a, ref.Key)
	check := func() {
		t.Helper()
		cms, err := w.beta.Sync.Comments(ctx, bk)
		if err != nil {
			t.Fatal(err)
		}
		if len(cms) != 1 || cms[0].Visibility == nil || cms[0].Visibility.Value != "Developers" || !strings.HasSuffix(cms[0].Body, "\ndevs only") {
			t.Errorf("beta comments %+v, want only the Developers one, restricted", cms)
		}
	}
	check()
	w.beta.Sim.ResetCounters()
	resync(t, w.a)
	w.settle()
	check()
	if got := writes(w.beta); len(got) != 0 {
		t.Errorf("second resync wrote to beta: %v", got)
	}
}

// The bridge dies right after a resync's Jira write on beta (an add of a
// lost comment or attachment, or the edit of a stray copy): after the
// restart the retry finds what it wrote instead of writing again.
func TestCrashDuringResyncDoesNotDouble(t *testing.T) {
	t.Parallel()
	for _, step := range []apply.Step{apply.StepComment, apply.StepAttachment} {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			w := newCWorld(t, nil)
			ctx := context.Background()
			ref := w.create(w.alpha, 0, "crash in resync")
			alice := w.person(w.alpha, 0)
			if _, err := alice.AddComment(ctx, ref.Key, "stray", nil, nil); err != nil {
				t.Fatal(err)
			}
			w.settle()
			bk := w.peer(w.a, ref.Key)
			if _, err := w.beta.Sync.EditComment(ctx, bk, commentID(t, w.beta, bk, "\nstray"), "Alice Smith (Partner Jira):\nchanged", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.AddComment(ctx, ref.Key, "lost", nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.AddAttachment(ctx, ref.Key, "lost.bin", randomBytes(11, 3000)); err != nil {
				t.Fatal(err)
			}
			poll(t, w.a)
			lose(t, w.a)

			crashes := 0
			w.b.hooks.AfterWrite = func(s apply.Step, c wire.Change) error {
				if s == step && detect.IsResyncChange(c.ID) {
					crashes++
					return errCrash
				}
				return nil
			}
			w.b.restart(t)
			resync(t, w.a)
			for i := 0; i < 3; i++ {
				if _, err := move(ctx, w.a, w.b, w.sentAB); err != nil {
					t.Fatal(err)
				}
				_, _ = w.b.rep.Round(ctx)
				w.b.hooks.AfterWrite = nil
				w.b.restart(t)
				for _, f := range parked(t, w.b) {
					if _, err := replay.Retry(ctx, w.b.st, f.ID); err != nil {
						t.Fatal(err)
					}
				}
			}
			if crashes == 0 {
				t.Fatal("no crash (the test did not exercise the resync's writes)")
			}
			w.settle()
			if got := commentLines(t, w.beta, bk); !slices.Equal(got, []string{"Alice Smith: lost", "Alice Smith: stray"}) {
				t.Errorf("beta comments %q", got)
			}
			same(t, "attachments", attachmentSums(t, w.alpha, ref.Key), attachmentSums(t, w.beta, bk))
			if w.sentBA[wire.CommentAdd]+w.sentBA[wire.CommentEdit]+w.sentBA[wire.AttachmentAdd] != 0 {
				t.Errorf("beta echoed the bridge's writes: %v", w.sentBA)
			}
		})
	}
}
