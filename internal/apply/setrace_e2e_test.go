package apply_test

import (
	"context"
	"testing"
)

// TestWatcherSetKeepsAnUndetectedLocalChange: a person on beta adds a
// watcher after alpha's resync read its watchers, and beta's bridge has
// not polled yet when alpha's watcher set arrives. The person's change is
// the newer one: it must survive the set on beta and reach alpha, not be
// undone by the set and then forgotten.
func TestWatcherSetKeepsAnUndetectedLocalChange(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "set race")
	w.settle()
	b1 := w.peer(w.a, r1.Key)
	carol := w.beta.People[2]
	if watching(t, w.beta, b1, "carol@corp.example") {
		t.Fatal("carol watches already")
	}
	if _, err := w.a.det.Resync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(1000 * 1000 * 1000) // a second later
	if err := w.beta.Client(t, "admin").AddWatcher(ctx, b1, carol); err != nil {
		t.Fatal(err)
	}
	// Alpha's set reaches beta before beta's bridge looks at b1 again.
	if _, err := move(ctx, w.a, w.b, w.sentAB); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.rep.Round(ctx); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if !watching(t, w.beta, b1, "carol@corp.example") {
		t.Errorf("beta: carol's watch, added after alpha's resync, was undone by the set")
	}
	same(t, "watchers", watcherEmails(t, w.alpha, r1.Key), watcherEmails(t, w.beta, b1))
}

// TestLinkSetKeepsAnUndetectedLocalLink: the same for links: a person on
// beta links two synced issues after alpha's resync read its links, and
// alpha's link set (without that link) arrives before beta's bridge
// looked: the link stays and reaches alpha.
func TestLinkSetKeepsAnUndetectedLocalLink(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "set race one")
	r2 := w.create(w.alpha, 0, "set race two")
	w.settle()
	b1, b2 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key)
	if _, err := w.a.det.Resync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(1000 * 1000 * 1000)
	if err := w.beta.Client(t, "admin").CreateLink(ctx, "Blocks", b1, b2); err != nil {
		t.Fatal(err)
	}
	if _, err := move(ctx, w.a, w.b, w.sentAB); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.rep.Round(ctx); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if linkTo(t, w.beta, b1, "Blocks", b2) == nil {
		t.Errorf("beta: the link made after alpha's resync was undone by the set")
	}
	if linkTo(t, w.alpha, r1.Key, "Blocks", r2.Key) == nil {
		t.Errorf("alpha: the link made on beta never arrived")
	}
}
