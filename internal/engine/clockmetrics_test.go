package engine_test

import (
	"context"
	"testing"
)

// TestWatcherConflictsAreCounted: a conflict of a watcher (changes of the
// same watcher crossing, decided by the element clocks) moves
// jirabridge_conflicts_total like a field conflict does: by the number of
// conflicts in the store.
func TestWatcherConflictsAreCounted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withContent(t, w)
	alphaURL, betaURL := withMetrics(t, w)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	ref := newIssue(t, alice, "ALPHA", "Bug", "watched", "")
	carol, carolB := w.alpha.People[2], w.beta.People[2]
	if err := w.alpha.Client(t, "admin").AddWatcher(ctx, ref.Key, carol); err != nil {
		t.Fatal(err)
	}
	w.settle()
	betaKey := w.a.peerKey(t, ref.Key)
	step := func(b *bridge) {
		t.Helper()
		if _, err := b.node.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Alpha removes carol and adds her again (each seen by a poll); beta,
	// later and before seeing either, removes her.
	adminA, adminB := w.alpha.Client(t, "admin"), w.beta.Client(t, "admin")
	if err := adminA.RemoveWatcher(ctx, ref.Key, carol); err != nil {
		t.Fatal(err)
	}
	step(w.a)
	if err := adminA.AddWatcher(ctx, ref.Key, carol); err != nil {
		t.Fatal(err)
	}
	step(w.a)
	if err := adminB.RemoveWatcher(ctx, betaKey, carolB); err != nil {
		t.Fatal(err)
	}
	step(w.b)
	w.settle()
	total := conflictsMatchStores(t, w, alphaURL, betaURL)
	if total == 0 {
		t.Fatal("no watcher conflict was recorded; the test did not make the changes cross")
	}
}
