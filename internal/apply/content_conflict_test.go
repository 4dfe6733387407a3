package apply_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// This file proves the conflict rule of watchers and links (a per-element
// logical clock, detect/clock.go): changes of the same watcher or link
// made on both sides before either saw the other's converge to the newer
// one (tie: the master), whatever the two bridges' clocks say, and a
// change made after seeing the peer's always wins. It also proves that a
// resync repairs watcher and link sets that came apart.

// clockWorld is a content world whose two bridges have clocks of their
// own (detection stamps, applier, store); both Jiras share a third.
func clockWorld(t *testing.T) (w *cworld, clkA, clkB *enginetest.Clock) {
	t.Helper()
	clk := enginetest.NewClock(time.Millisecond)
	alpha, beta := enginetest.NewPair(t, clk)
	contentDef(t, alpha, nil)
	contentDef(t, beta, nil)
	clkA, clkB = enginetest.NewClock(time.Millisecond), enginetest.NewClock(time.Millisecond)
	w = &cworld{t: t, clk: clk, alpha: alpha, beta: beta, sentAB: map[wire.ChangeKind]int{}, sentBA: map[wire.ChangeKind]int{}}
	w.a = newSide(t, clkA, alpha, beta, store.RoleMaster)
	w.b = newSide(t, clkB, beta, alpha, store.RoleSlave)
	return w, clkA, clkB
}

// stopClocks stops both bridges' clocks an hour after the later of them,
// beta's skewB away from alpha's, so the stamps of what follows are known.
func stopClocks(clkA, clkB *enginetest.Clock, skewB time.Duration) {
	clkA.SetTick(0)
	clkB.SetTick(0)
	a, b := clkA.Now(), clkB.Now()
	x := a
	if b.After(x) {
		x = b
	}
	x = x.Add(time.Hour)
	clkA.Advance(x.Sub(a))
	clkB.Advance(x.Add(skewB).Sub(b))
}

func conflicts(t *testing.T, sd *side) []store.Conflict {
	t.Helper()
	var cs []store.Conflict
	if err := sd.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		cs, err = tx.ConflictList(syncID, 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return cs
}

func watching(t *testing.T, s *enginetest.Site, key, email string) bool {
	return slices.Contains(watcherEmails(t, s, key), email)
}

// Bob watches the issue on both sides. Alpha's person removes him and
// (after alpha's bridge sent that) adds him again; beta's person removes
// him. Alpha's add and beta's removal cross; the newer stamp wins on both
// sides, a tie goes to the master (alpha).
func TestWatcherAddAndRemoveCrossing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		skewB    time.Duration
		watching bool // bob in the end
		loserAt  string
	}{
		{"master newer", -time.Hour, true, "alpha"},
		{"slave newer", time.Hour, false, "beta"},
		{"tie goes to the master", time.Millisecond, true, "alpha"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, clkA, clkB := clockWorld(t)
			ctx := context.Background()
			ref := w.create(w.alpha, 0, "watchers cross")
			adminA := w.alpha.Client(t, "admin")
			if err := adminA.AddWatcher(ctx, ref.Key, "bob"); err != nil {
				t.Fatal(err)
			}
			w.settle()
			bk := w.peer(w.a, ref.Key)
			if !watching(t, w.beta, bk, "bob@corp.example") {
				t.Fatal("bob does not watch on beta after the first settle")
			}
			// Alpha stamps X then X+1ms; beta X+skew. The tie case puts
			// beta's removal on alpha's add.
			stopClocks(clkA, clkB, tc.skewB)
			if err := adminA.RemoveWatcher(ctx, ref.Key, "bob"); err != nil {
				t.Fatal(err)
			}
			poll(t, w.a)
			if err := adminA.AddWatcher(ctx, ref.Key, "bob"); err != nil {
				t.Fatal(err)
			}
			poll(t, w.a)
			if err := w.beta.Client(t, "admin").RemoveWatcher(ctx, bk, w.beta.People[1]); err != nil {
				t.Fatal(err)
			}
			poll(t, w.b)
			w.settle()

			same(t, "watchers", watcherEmails(t, w.alpha, ref.Key), watcherEmails(t, w.beta, bk))
			if got := watching(t, w.alpha, ref.Key, "bob@corp.example"); got != tc.watching {
				t.Errorf("bob watching = %v, want %v", got, tc.watching)
			}
			loser, other := w.a, w.b
			if tc.loserAt == "beta" {
				loser, other = w.b, w.a
			}
			cs := conflicts(t, loser)
			if len(cs) != 1 || cs[0].Field != "watcher "+map[*side]string{w.a: "bob", w.b: w.beta.People[1]}[loser] || cs[0].Winner != "local" {
				t.Errorf("%s conflicts %+v, want one on bob's watch won here", loser.site.Name, cs)
			}
			if cs := conflicts(t, other); len(cs) != 0 {
				t.Errorf("%s conflicts %+v, want none", other.site.Name, cs)
			}
		})
	}
}

// A change made after seeing the peer's wins even when the later side's
// clock is an hour behind: its stamp is the peer's plus a millisecond.
func TestWatcherChangeAfterSeeingThePeersWinsDespiteSkew(t *testing.T) {
	t.Parallel()
	for _, behind := range []string{"beta", "alpha"} {
		t.Run(behind+" behind", func(t *testing.T) {
			t.Parallel()
			w, clkA, clkB := clockWorld(t)
			ctx := context.Background()
			ref := w.create(w.alpha, 0, "skew")
			w.settle()
			bk := w.peer(w.a, ref.Key)
			first, later := w.a, w.b
			firstKey, laterKey := ref.Key, bk
			if behind == "alpha" {
				first, later, firstKey, laterKey = w.b, w.a, bk, ref.Key
				clkA.Advance(-2 * time.Hour)
			} else {
				clkB.Advance(-2 * time.Hour)
			}
			// The side ahead adds carol; the side behind sees it, then
			// removes her; then adds her again; then the side ahead
			// removes her once more.
			steps := []struct {
				sd  *side
				key string
				add bool
			}{{first, firstKey, true}, {later, laterKey, false}, {later, laterKey, true}, {first, firstKey, false}}
			for i, st := range steps {
				name := st.sd.site.People[2]
				var err error
				if st.add {
					err = st.sd.site.Client(t, "admin").AddWatcher(ctx, st.key, name)
				} else {
					err = st.sd.site.Client(t, "admin").RemoveWatcher(ctx, st.key, name)
				}
				if err != nil {
					t.Fatal(err)
				}
				w.settle()
				for _, s := range []struct {
					site *enginetest.Site
					key  string
				}{{w.alpha, ref.Key}, {w.beta, bk}} {
					if got := watching(t, s.site, s.key, "carol@corp.example"); got != st.add {
						t.Errorf("step %d: carol watching on %s = %v, want %v", i, s.site.Name, got, st.add)
					}
				}
			}
			if cs := append(conflicts(t, w.a), conflicts(t, w.b)...); len(cs) != 0 {
				t.Errorf("conflicts %+v, want none: every change saw the one before", cs)
			}
		})
	}
}

func linkTo(t *testing.T, s *enginetest.Site, from, typ, to string) *jira.IssueLink {
	t.Helper()
	ls, err := s.Sync.IssueLinks(context.Background(), from)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ls {
		if l := ls[i]; l.OutwardIssue != nil && l.OutwardIssue.Key == to && l.Type.Name == typ {
			return &l
		}
	}
	return nil
}

// One side removes a link while the other removes it and makes it again
// (in one poll or two), or one side makes and removes a link while the
// other makes it: both converge on the newer side's state.
func TestLinkChangesCrossing(t *testing.T) {
	t.Parallel()
	type act func(t *testing.T, s *enginetest.Site, sd *side, from, to string)
	link := func(t *testing.T, s *enginetest.Site, _ *side, from, to string) {
		if err := s.Client(t, "admin").CreateLink(context.Background(), "Blocks", from, to); err != nil {
			t.Fatal(err)
		}
	}
	unlink := func(t *testing.T, s *enginetest.Site, _ *side, from, to string) {
		l := linkTo(t, s, from, "Blocks", to)
		if l == nil {
			t.Fatalf("%s: no link %s blocks %s", s.Name, from, to)
		}
		if err := s.Client(t, "admin").DeleteLink(context.Background(), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	pollNow := func(t *testing.T, _ *enginetest.Site, sd *side, _, _ string) { poll(t, sd) }
	for _, tc := range []struct {
		name         string
		linked       bool // at the start
		alpha, beta  []act
		alphaNewerIs bool // linked in the end when alpha's clock is ahead
	}{
		{"removed vs removed and made again in one poll", true, []act{unlink}, []act{unlink, link}, false},
		{"removed vs removed, then made again", true, []act{unlink}, []act{unlink, pollNow, link}, false},
		{"made and removed vs made", false, []act{link, pollNow, unlink}, []act{link}, false},
	} {
		for _, ahead := range []string{"alpha", "beta"} {
			t.Run(tc.name+"/"+ahead+" ahead", func(t *testing.T) {
				t.Parallel()
				w, clkA, clkB := clockWorld(t)
				ctx := context.Background()
				r1 := w.create(w.alpha, 0, "from")
				r2 := w.create(w.alpha, 0, "to")
				if tc.linked {
					if err := w.person(w.alpha, 0).CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
						t.Fatal(err)
					}
				}
				w.settle()
				b1, b2 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key)
				if (linkTo(t, w.beta, b1, "Blocks", b2) != nil) != tc.linked {
					t.Fatal("the link did not reach beta")
				}
				skew := time.Hour
				if ahead == "alpha" {
					skew = -time.Hour
				}
				stopClocks(clkA, clkB, skew)
				for _, f := range tc.alpha {
					f(t, w.alpha, w.a, r1.Key, r2.Key)
				}
				poll(t, w.a)
				for _, f := range tc.beta {
					f(t, w.beta, w.b, b1, b2)
				}
				poll(t, w.b)
				w.settle()

				// The side whose last change is newer wins.
				wantLinked := tc.alphaNewerIs
				if ahead == "beta" {
					wantLinked = !tc.alphaNewerIs
				}
				gotA := linkTo(t, w.alpha, r1.Key, "Blocks", r2.Key) != nil
				gotB := linkTo(t, w.beta, b1, "Blocks", b2) != nil
				if gotA != gotB || gotA != wantLinked {
					t.Errorf("linked: alpha %v, beta %v; want %v on both", gotA, gotB, wantLinked)
				}
				winner := w.a
				if ahead == "beta" {
					winner = w.b
				}
				if cs := conflicts(t, winner); len(cs) == 0 || cs[0].Winner != "local" {
					t.Errorf("%s (the newer side) recorded no conflict: %+v", winner.site.Name, cs)
				}
			})
		}
	}
}

// setWatcherRecord makes a side's watcher record match its Jira, so a
// change made there is never sent: the sets came apart behind the
// bridges' backs.
func setWatcherRecord(t *testing.T, sd *side, key string) {
	t.Helper()
	ctx := context.Background()
	is, err := sd.site.Sync.GetIssue(ctx, key, []string{"summary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := sd.site.Sync.Watchers(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range ws {
		if u.Name != enginetest.SyncUser {
			names = append(names, u.Name)
		}
	}
	if err := sd.st.Update(ctx, func(tx *store.Tx) error {
		v, _, err := tx.SentGet(syncID, is.ID, detect.KindWatchers, "")
		if err != nil {
			return err
		}
		seq, _ := detect.ParseWatcherRecord(v)
		return tx.SentPut(store.SentItem{SyncID: syncID, IssueID: is.ID, ItemKind: detect.KindWatchers, Version: detect.WatcherRecord(seq, names)})
	}); err != nil {
		t.Fatal(err)
	}
}

// hideLinks records every outward link of a side's issue as it is now, so
// links made or removed there are never sent.
func hideLinks(t *testing.T, sd *side, key string) {
	t.Helper()
	ctx := context.Background()
	is, err := sd.site.Sync.GetIssue(ctx, key, []string{"summary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := sd.site.Sync.IssueLinks(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.st.Update(ctx, func(tx *store.Tx) error {
		items, err := tx.SentList(syncID, is.ID)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.ItemKind == detect.KindLink {
				st, alias, other := detect.ParseLinkVersion(it.Version)
				if st == detect.LinkActive {
					it.Version = detect.LinkVersion(detect.LinkRemoved, alias, other)
					if err := tx.SentPut(it); err != nil {
						return err
					}
				}
			}
		}
		for _, l := range ls {
			if l.OutwardIssue != nil {
				alias := l.Type.Name // the sites map no link types: names are the aliases
				if err := tx.SentPut(store.SentItem{SyncID: syncID, IssueID: is.ID, ItemKind: detect.KindLink, ItemID: l.ID,
					Version: detect.LinkVersion(detect.LinkActive, alias, l.OutwardIssue.ID)}); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestResyncRepairsWatcherAndLinkSets(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "resync one")
	r2 := w.create(w.alpha, 1, "resync two")
	r3 := w.create(w.alpha, 1, "resync three")
	adminA := w.alpha.Client(t, "admin")
	if err := adminA.AddWatcher(ctx, r1.Key, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := w.person(w.alpha, 0).CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	b1, b2, b3 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key), w.peer(w.a, r3.Key)
	toAlpha := map[string]string{b1: r1.Key, b2: r2.Key, b3: r3.Key}
	tr := func(k string) string { return toAlpha[k] }
	id := func(k string) string { return k }

	// Behind the bridges' backs, beta's copy loses bob and alice and
	// gains carol; its Blocks link goes and a Relates one to three comes.
	adminB := w.beta.Client(t, "admin")
	for _, n := range []string{w.beta.People[0], w.beta.People[1]} {
		if err := adminB.RemoveWatcher(ctx, b1, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := adminB.AddWatcher(ctx, b1, w.beta.People[2]); err != nil {
		t.Fatal(err)
	}
	if l := linkTo(t, w.beta, b1, "Blocks", b2); l == nil {
		t.Fatal("no link on beta")
	} else if err := adminB.DeleteLink(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if err := adminB.CreateLink(ctx, "Relates", b1, b3); err != nil {
		t.Fatal(err)
	}
	setWatcherRecord(t, w.b, b1)
	hideLinks(t, w.b, b1)
	w.settle()
	if same := slices.Equal(watcherEmails(t, w.alpha, r1.Key), watcherEmails(t, w.beta, b1)); same {
		t.Fatal("the watcher sets did not come apart (the test changed nothing behind the bridge's back)")
	}
	if slices.Equal(linkSet(t, w.alpha, r1.Key, id), linkSet(t, w.beta, b1, tr)) {
		t.Fatal("the link sets did not come apart")
	}
	wantW, wantL := watcherEmails(t, w.alpha, r1.Key), linkSet(t, w.alpha, r1.Key, id)

	res, err := w.a.det.Resync(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Issues != 3 {
		t.Errorf("resync examined %d issues, want 3", res.Issues)
	}
	w.settle()
	same(t, "watchers after resync", wantW, watcherEmails(t, w.beta, b1))
	same(t, "links after resync", wantL, linkSet(t, w.beta, b1, tr))
	same(t, "alpha's watchers unchanged", wantW, watcherEmails(t, w.alpha, r1.Key))
	same(t, "alpha's links unchanged", wantL, linkSet(t, w.alpha, r1.Key, id))
	if w.sentAB[wire.WatcherSet] != 3 || w.sentAB[wire.LinkSet] != 3 {
		t.Errorf("alpha sent %v, want a watcher set and a link set per issue", w.sentAB)
	}
	// Nothing comes back: beta's repairs are the bridge's own writes.
	if w.sentBA[wire.WatcherAdd]+w.sentBA[wire.WatcherRemove]+w.sentBA[wire.LinkAdd]+w.sentBA[wire.LinkRemove] != 0 {
		t.Errorf("beta sent %v after the resync", w.sentBA)
	}
	for _, sd := range []*side{w.a, w.b} {
		if cs := conflicts(t, sd); len(cs) != 0 {
			t.Errorf("%s conflicts %+v, want none", sd.site.Name, cs)
		}
	}

	// Later changes still travel: a person on beta removes bob again.
	if err := adminB.RemoveWatcher(ctx, b1, w.beta.People[1]); err != nil {
		t.Fatal(err)
	}
	w.settle()
	same(t, "watchers after a later change", watcherEmails(t, w.alpha, r1.Key), watcherEmails(t, w.beta, b1))
	if watching(t, w.alpha, r1.Key, "bob@corp.example") {
		t.Error("bob still watches on alpha after beta removed him following the resync")
	}
}

// A resync from the side that cannot name a watcher (dave exists on alpha
// only) leaves them watching on the other side, while it still repairs
// the people both sides know.
func TestResyncKeepsWatchersThePeerCannotName(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	if err := w.alpha.Sim.CreateUser(jiraUser("dave")); err != nil {
		t.Fatal(err)
	}
	ref := w.create(w.alpha, 0, "dave watches")
	adminA := w.alpha.Client(t, "admin")
	for _, n := range []string{"bob", "dave"} {
		if err := adminA.AddWatcher(ctx, ref.Key, n); err != nil {
			t.Fatal(err)
		}
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	// Behind the bridges' backs bob stops watching beta's copy.
	if err := w.beta.Client(t, "admin").RemoveWatcher(ctx, bk, w.beta.People[1]); err != nil {
		t.Fatal(err)
	}
	setWatcherRecord(t, w.b, bk)
	if _, err := w.b.det.Resync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	w.settle()
	want := []string{"alice@corp.example", "dave@elsewhere.example"}
	if got := watcherEmails(t, w.alpha, ref.Key); !slices.Equal(got, want) {
		t.Errorf("alpha watchers after beta's resync %q, want %q (bob gone, dave kept)", got, want)
	}
	if w.sentBA[wire.WatcherSet] != 1 {
		t.Errorf("beta sent %v, want one watcher set", w.sentBA)
	}

	// Once dave stops watching, beta's next resync no longer names him.
	if err := adminA.RemoveWatcher(ctx, ref.Key, "dave"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if err := adminA.AddWatcher(ctx, ref.Key, "carol"); err != nil {
		t.Fatal(err)
	}
	setWatcherRecord(t, w.a, ref.Key) // carol stays on alpha only
	if _, err := w.b.det.Resync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := watcherEmails(t, w.alpha, ref.Key); !slices.Equal(got, []string{"alice@corp.example"}) {
		t.Errorf("alpha watchers after the second resync %q, want only alice", got)
	}
}

// A crash right after a set's Jira writes (before its record): the retry
// finds nothing left to write, records what is there, and nothing is sent
// back as a person's change.
func TestCrashAfterSetWritesSendsNoEcho(t *testing.T) {
	t.Parallel()
	for _, step := range []apply.Step{apply.StepWatcher, apply.StepLink} {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			w := newCWorld(t, nil)
			ctx := context.Background()
			r1 := w.create(w.alpha, 0, "crash one")
			r2 := w.create(w.alpha, 0, "crash two")
			if err := w.alpha.Client(t, "admin").AddWatcher(ctx, r1.Key, "bob"); err != nil {
				t.Fatal(err)
			}
			if err := w.person(w.alpha, 0).CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
				t.Fatal(err)
			}
			w.settle()
			b1, b2 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key)
			// Beta's copy loses bob and the link behind the bridges' backs.
			adminB := w.beta.Client(t, "admin")
			if err := adminB.RemoveWatcher(ctx, b1, w.beta.People[1]); err != nil {
				t.Fatal(err)
			}
			if err := adminB.DeleteLink(ctx, linkTo(t, w.beta, b1, "Blocks", b2).ID); err != nil {
				t.Fatal(err)
			}
			setWatcherRecord(t, w.b, b1)
			hideLinks(t, w.b, b1)

			crashes := 0
			w.b.hooks.AfterWrite = func(s apply.Step, c wire.Change) error {
				if s == step && (c.Kind == wire.WatcherSet || c.Kind == wire.LinkSet) {
					crashes++
					return errCrash
				}
				return nil
			}
			w.b.restart(t)
			if _, err := w.a.det.Resync(ctx, "id = "+r1.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := move(ctx, w.a, w.b, w.sentAB); err != nil {
				t.Fatal(err)
			}
			_, _ = w.b.rep.Round(ctx)
			if crashes != 1 {
				t.Fatalf("%d crashes, want 1", crashes)
			}
			// Beta polls while the set is unfinished: the busy marker
			// keeps its own write from being sent.
			poll(t, w.b)
			w.b.hooks.AfterWrite = nil
			w.b.restart(t)
			var parked []store.Failure
			_ = w.b.st.View(ctx, func(tx *store.Tx) error {
				var err error
				parked, err = tx.FailureList(syncID, 10, store.FailureOpen)
				return err
			})
			for _, f := range parked {
				if _, err := replay.Retry(ctx, w.b.st, f.ID); err != nil {
					t.Fatal(err)
				}
			}
			w.settle()
			toAlpha := map[string]string{b1: r1.Key, b2: r2.Key}
			same(t, "watchers", watcherEmails(t, w.alpha, r1.Key), watcherEmails(t, w.beta, b1))
			same(t, "links", linkSet(t, w.alpha, r1.Key, func(k string) string { return k }), linkSet(t, w.beta, b1, func(k string) string { return toAlpha[k] }))
			if !watching(t, w.beta, b1, "bob@corp.example") || linkTo(t, w.beta, b1, "Blocks", b2) == nil {
				t.Error("the resync did not repair beta")
			}
			if n := w.sentBA[wire.WatcherAdd] + w.sentBA[wire.WatcherRemove] + w.sentBA[wire.LinkAdd] + w.sentBA[wire.LinkRemove]; n != 0 {
				t.Errorf("beta sent its own writes back: %v", w.sentBA)
			}
		})
	}
}

// A link set naming a link whose other end has no copy on the receiver
// yet sets it aside, listed for status, and makes it once the other end
// is created there.
func TestResyncLinkWaitsForItsOtherEnd(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "resync from")
	w.settle()
	r2 := w.create(w.alpha, 0, "resync to, not sent yet")
	if err := w.person(w.alpha, 0).CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	// The resync of the first issue, before any poll sends the second.
	if _, err := w.a.det.Resync(ctx, "id = "+r1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := move(ctx, w.a, w.b, w.sentAB); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.rep.Round(ctx); err != nil {
		t.Fatal(err)
	}
	var listed int
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		ss, err := tx.SkipList(syncID, store.SkipQuery{})
		for _, s := range ss {
			if s.Kind == store.SkipLink {
				listed++
			}
		}
		return err
	})
	if listed != 1 {
		t.Errorf("%d links listed as skipped on beta while the other end is missing, want 1", listed)
	}
	w.settle()
	b1, b2 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key)
	if linkTo(t, w.beta, b1, "Blocks", b2) == nil {
		t.Error("the link of the set was not made once its other end arrived")
	}
	if w.sentAB[wire.LinkAdd] != 0 || w.sentAB[wire.LinkSet] != 1 {
		t.Errorf("alpha sent %v, want the link only in the set", w.sentAB)
	}
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		ss, err := tx.SkipList(syncID, store.SkipQuery{})
		for _, s := range ss {
			t.Errorf("still listed on beta: %+v", s)
		}
		return err
	})
}

// A watcher this side cannot send, first seen by a resync, is counted and
// listed once, as a poll would, and the poll after it does not count again.
func TestResyncListsUnsendableWatchersOnce(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, func(d *config.SyncDef) { d.Users.Mode = config.UserDrop })
	ctx := context.Background()
	ref := w.create(w.alpha, 0, "drop policy")
	w.settle()
	n0 := w.a.det.Stats().UnmappableWatchers.Load() // the reporter
	if err := w.alpha.Client(t, "admin").AddWatcher(ctx, ref.Key, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.det.Resync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if n := w.a.det.Stats().UnmappableWatchers.Load() - n0; n != 1 {
		t.Errorf("unmappable watchers counted %d more, want 1 (bob)", n)
	}
	var listed []string
	_ = w.a.st.View(ctx, func(tx *store.Tx) error {
		ss, err := tx.SkipList(syncID, store.SkipQuery{})
		for _, s := range ss {
			if s.Kind == store.SkipWatcher {
				listed = append(listed, s.Item)
			}
		}
		return err
	})
	if !slices.Contains(listed, "bob") {
		t.Errorf("watchers listed as skipped on alpha %q, want bob", listed)
	}
}
