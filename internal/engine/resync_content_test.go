package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/perms"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
)

func dropPending(t *testing.T, b *bridge) int {
	t.Helper()
	var n int
	if err := b.st.Update(context.Background(), func(tx *store.Tx) error {
		ps, err := tx.PendingList(syncID, 10000)
		if err != nil || len(ps) == 0 {
			return err
		}
		ids := make([]int64, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		n = len(ids)
		return tx.PendingDelete(ids...)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func bodies(t *testing.T, s *enginetest.Site, key string) []string {
	t.Helper()
	cms, err := s.Sync.Comments(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cms {
		out = append(out, c.Body)
	}
	return out
}

// A comment and an attachment whose changes were lost reach the peer by
// `jirabridge resync --jql` (the request the CLI records), for the issue
// asked for only.
func TestEngineResyncRepairsLostContent(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withContent(t, w)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r1 := newIssue(t, alice, "ALPHA", "Bug", "one", "")
	r2 := newIssue(t, alice, "ALPHA", "Bug", "two", "")
	w.settle()
	for _, k := range []string{r1.Key, r2.Key} {
		if _, err := alice.AddComment(ctx, k, "lost words", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.AddAttachment(ctx, r1.Key, "lost.txt", []byte("lost bytes")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.node.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if n := dropPending(t, w.a); n != 3 {
		t.Fatalf("dropped %d changes, want 3", n)
	}
	w.settle()
	if _, err := engine.RequestResync(ctx, w.a.st, syncID, "key = "+r1.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	b1, b2 := w.a.peerKey(t, r1.Key), w.a.peerKey(t, r2.Key)
	if got := bodies(t, w.beta, b1); !slices.Equal(got, []string{"Alice Smith (Partner Jira):\nlost words"}) {
		t.Errorf("beta comments of %s %q", b1, got)
	}
	as, err := w.beta.Sync.Attachments(ctx, b1)
	if err != nil || len(as) != 1 || as[0].Filename != "lost.txt" {
		t.Errorf("beta attachments %+v, %v", as, err)
	}
	if got := bodies(t, w.beta, b2); len(got) != 0 {
		t.Errorf("beta comments of %s %q: the resync was for %s only", b2, got, r1.Key)
	}
}

// Beta's sync user lacks EDIT_ALL_COMMENTS: the engine's permission check
// refuses only the write-back of edits to originals; comments sync both
// ways, and a person's edit on alpha of the bridge's copy of a beta
// comment parks on beta naming the permission, until it is granted, the
// bridge restarted and the change retried.
func TestEnginePermissionCheckRefusesOnlyTheWriteBackToOriginals(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	if err := w.beta.Sim.SetPermission("BETA", "EDIT_ALL_COMMENTS"); err != nil {
		t.Fatal(err)
	}
	w.b.checkPerms = true
	withContent(t, w)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r := newIssue(t, alice, "ALPHA", "Bug", "write back", "")
	if _, err := alice.AddComment(ctx, r.Key, "from alpha", nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := w.b.node.Refused(); strings.Join(got, ",") != perms.FeatureCommentEditsToOriginals {
		t.Fatalf("refused %v, want only %s", got, perms.FeatureCommentEditsToOriginals)
	}
	bk := w.a.peerKey(t, r.Key)
	orig, err := person(t, w.beta, 1).AddComment(ctx, bk, "from beta", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := bodies(t, w.beta, bk); len(got) != 2 {
		t.Fatalf("beta comments %q, want both (comments still sync)", got)
	}
	var copyID string
	cms, err := w.alpha.Sync.Comments(ctx, r.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cms {
		if strings.HasSuffix(c.Body, "\nfrom beta") {
			copyID = c.ID
		}
	}
	if copyID == "" {
		t.Fatalf("alpha has no copy of beta's comment: %+v", cms)
	}
	if _, err := w.alpha.Client(t, "admin").EditComment(ctx, r.Key, copyID, "Bob Jones (Partner Jira):\nfrom beta, fixed on alpha", nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	var fs []store.Failure
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 100, store.FailureOpen)
		return err
	})
	if len(fs) != 1 || fs[0].Kind != "comment.edit" || !strings.Contains(fs[0].ErrorText, "EDIT_ALL_COMMENTS") ||
		!strings.Contains(fs[0].ErrorText, perms.FeatureCommentEditsToOriginals) {
		t.Fatalf("parked on beta %+v, want the edit naming EDIT_ALL_COMMENTS", fs)
	}
	if got := bodies(t, w.beta, bk); !slices.Contains(got, "from beta") {
		t.Errorf("beta's original changed without the permission: %q", got)
	}

	if err := w.beta.Sim.SetPermission("BETA", "EDIT_ALL_COMMENTS", "role:Administrators"); err != nil {
		t.Fatal(err)
	}
	w.b.restart()
	if _, err := replay.Retry(ctx, w.b.st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := w.b.node.Refused(); len(got) != 0 {
		t.Errorf("refused after the grant %v", got)
	}
	c, err := w.beta.Sync.Comment(ctx, bk, orig.ID)
	if err != nil || c.Body != "from beta, fixed on alpha" {
		t.Errorf("beta original %q, %v", c.Body, err)
	}
}
