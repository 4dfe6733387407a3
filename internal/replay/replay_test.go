package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// fakeApplier records the changes it applies and fails those listed in
// fail (once each, unless sticky).
type fakeApplier struct {
	mu     sync.Mutex
	seen   []string
	calls  int
	fail   map[string]error
	sticky bool
}

func (f *fakeApplier) Apply(_ context.Context, c wire.Change) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err, ok := f.fail[c.ID]; ok {
		if !f.sticky {
			delete(f.fail, c.ID)
		}
		return err
	}
	f.seen = append(f.seen, c.ID)
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T, workers int, fa *fakeApplier) (*store.Store, *replay.Replayer, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), store.FileName), &store.Options{Now: clk.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.SyncPut(store.Sync{ID: "s", Name: "s", Role: store.RoleMaster, State: store.StateRunning})
	}); err != nil {
		t.Fatal(err)
	}
	r, err := replay.New(replay.Options{Store: st, SyncID: "s", Applier: fa, Workers: workers, Now: clk.Now,
		BackOff: func(int) time.Duration { return time.Minute }})
	if err != nil {
		t.Fatal(err)
	}
	return st, r, clk
}

func enqueue(t *testing.T, st *store.Store, issue string, ids ...string) {
	t.Helper()
	err := st.Update(context.Background(), func(tx *store.Tx) error {
		for _, id := range ids {
			b, _ := json.Marshal(wire.Change{ID: id, IssueID: issue, IssueKey: "P-" + issue, Kind: wire.IssueUpdate, At: time.Unix(1, 0)})
			if _, _, err := tx.ReplayEnqueue("s", issue, id, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLanesInOrderAndParallel(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{1, 4} {
		fa := &fakeApplier{}
		st, r, _ := setup(t, workers, fa)
		enqueue(t, st, "1", "a1", "a2", "a3")
		enqueue(t, st, "2", "b1", "b2")
		enqueue(t, st, "1", "a4")
		res, err := r.Round(context.Background())
		if err != nil || res.Applied != 6 {
			t.Fatalf("workers %d: Round = %+v, %v; want 6 applied", workers, res, err)
		}
		var a, b []string
		for _, id := range fa.seen {
			if id[0] == 'a' {
				a = append(a, id)
			} else {
				b = append(b, id)
			}
		}
		if !slices.Equal(a, []string{"a1", "a2", "a3", "a4"}) || !slices.Equal(b, []string{"b1", "b2"}) {
			t.Errorf("workers %d: order a=%v b=%v", workers, a, b)
		}
		if workers == 1 && !slices.Equal(fa.seen, []string{"a1", "a2", "a3", "a4", "b1", "b2"}) {
			t.Errorf("single worker order = %v, want lane by lane in queue order", fa.seen)
		}
	}
}

func TestPermanentParksOnlyItsLaneThenRetryAndSkip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fa := &fakeApplier{fail: map[string]error{"a2": errclass.New(errclass.Permanent, "jira_400", errors.New("field x is not on the screen"))}, sticky: true}
	st, r, _ := setup(t, 1, fa)
	enqueue(t, st, "1", "a1", "a2", "a3")
	enqueue(t, st, "2", "b1")
	res, err := r.Round(ctx)
	if err != nil || res.Applied != 2 || res.Parked != 1 {
		t.Fatalf("Round = %+v, %v; want 2 applied, 1 parked", res, err)
	}
	if !slices.Equal(fa.seen, []string{"a1", "b1"}) {
		t.Errorf("applied %v, want a1 b1 (a3 waits behind a2)", fa.seen)
	}
	var fs []store.Failure
	_ = st.View(ctx, func(tx *store.Tx) error { fs, err = tx.FailureList("s", 10, store.FailureOpen); return err })
	if len(fs) != 1 || fs[0].ChangeID != "a2" || fs[0].IssueKey != "P-1" || fs[0].Kind != "issue.update" || fs[0].ErrorClass != "jira_400" {
		t.Fatalf("failures = %+v", fs)
	}
	// Nothing moves while it is parked.
	if res, _ := r.Round(ctx); res.Applied != 0 {
		t.Errorf("parked lane moved: %+v", res)
	}
	// The cause is fixed; retry applies it and what waited behind it.
	fa.mu.Lock()
	fa.fail = nil
	fa.mu.Unlock()
	if _, err := replay.Retry(ctx, st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Round(ctx); err != nil || res.Applied != 2 {
		t.Fatalf("after retry: %+v, %v; want a2 and a3 applied", res, err)
	}
	_ = st.View(ctx, func(tx *store.Tx) error { fs[0], err = tx.FailureGet(fs[0].ID); return err })
	if fs[0].State != store.FailureResolved {
		t.Errorf("failure state after retry = %s, want resolved", fs[0].State)
	}

	// Skip: the lane moves on without the change.
	fa.mu.Lock()
	fa.fail = map[string]error{"c1": errclass.New(errclass.Permanent, "x", errors.New("no"))}
	fa.mu.Unlock()
	enqueue(t, st, "3", "c1", "c2")
	_, _ = r.Round(ctx)
	f, err := failureOf(st, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Skip(ctx, st, f.ID); err != nil {
		t.Fatal(err)
	}
	if res, _ := r.Round(ctx); res.Applied != 1 {
		t.Errorf("after skip: %+v, want c2 applied", res)
	}
	if slices.Contains(fa.seen, "c1") || !slices.Contains(fa.seen, "c2") {
		t.Errorf("seen %v", fa.seen)
	}
	if _, err := replay.Retry(ctx, st, f.ID); !errors.Is(err, store.ErrBadTransition) {
		t.Errorf("retry of a skipped failure: %v, want ErrBadTransition", err)
	}
}

func failureOf(st *store.Store, change string) (store.Failure, error) {
	var f store.Failure
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		f, err = tx.FailureByChange("s", change)
		return err
	})
	return f, err
}

func TestTemporaryAndBackOffWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fa := &fakeApplier{fail: map[string]error{
		"a1": errclass.New(errclass.Temporary, "jira_5xx", errors.New("503")),
		"b1": errclass.WithBackOff("jira_429", 90*time.Second, errors.New("429")),
	}}
	st, r, clk := setup(t, 1, fa)
	enqueue(t, st, "1", "a1", "a2")
	enqueue(t, st, "2", "b1")
	if res, _ := r.Round(ctx); res.Retries != 2 || res.Applied != 0 {
		t.Fatalf("first round %+v, want 2 retries", res)
	}
	clk.Advance(time.Minute) // the back-off for a1; b1 asked for 90s
	if res, _ := r.Round(ctx); res.Applied != 2 {
		t.Fatalf("after 1 minute: %+v, want a1 and a2", res)
	}
	clk.Advance(30 * time.Second)
	if res, _ := r.Round(ctx); res.Applied != 1 {
		t.Fatalf("after 90 s: %+v, want b1", res)
	}
	if n, _ := countFailures(st); n != 0 {
		t.Errorf("temporary errors left %d failures", n)
	}
}

func countFailures(st *store.Store) (int, error) {
	var n int
	err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		n, err = tx.FailureCount("s")
		return err
	})
	return n, err
}

func TestPauseStopsEveryCallUntilResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fa := &fakeApplier{fail: map[string]error{"a1": errclass.New(errclass.Pause, "jira_auth", errors.New("401"))}}
	st, r, _ := setup(t, 1, fa)
	enqueue(t, st, "1", "a1")
	enqueue(t, st, "2", "b1")
	res, err := r.Round(ctx)
	if err != nil || !res.Paused {
		t.Fatalf("Round = %+v, %v; want paused", res, err)
	}
	if fa.calls != 1 {
		t.Errorf("%d calls, want exactly 1", fa.calls)
	}
	var s store.Sync
	_ = st.View(ctx, func(tx *store.Tx) error { s, err = tx.SyncGet("s"); return err })
	if s.State != store.StatePaused || s.StateReason != replay.PauseReason {
		t.Errorf("sync = %s (%s), want PAUSED (authentication)", s.State, s.StateReason)
	}
	// A new replayer (a restart) stays paused too.
	r2, _ := replay.New(replay.Options{Store: st, SyncID: "s", Applier: fa, Workers: 1})
	for _, rr := range []*replay.Replayer{r, r2} {
		if res, _ := rr.Round(ctx); !res.Paused || fa.calls != 1 {
			t.Errorf("paused round made calls: %+v, calls %d", res, fa.calls)
		}
	}
	if err := r.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if res, _ := r.Round(ctx); res.Applied != 2 {
		t.Errorf("after resume: %+v, want 2 applied", res)
	}
}

// parentApplier is a fakeApplier whose changes with a ParentIssueID wait
// until that parent is marked present.
type parentApplier struct {
	fakeApplier
	present map[string]bool
}

func (p *parentApplier) Apply(ctx context.Context, c wire.Change) error {
	p.mu.Lock()
	ok := c.ParentIssueID == "" || p.present[c.ParentIssueID]
	p.mu.Unlock()
	if !ok {
		return errclass.New(errclass.Permanent, apply.ReasonWaitingParent, errors.New("parent missing"))
	}
	return p.fakeApplier.Apply(ctx, c)
}

func (p *parentApplier) ParentReady(_ context.Context, c wire.Change) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.present[c.ParentIssueID], nil
}

// TestSubtaskWaitsForParentWithoutBlocking: a sub-task that arrives before
// its parent waits (no failure, other issues go on) and is applied, with
// what queued behind it, once the parent is there.
func TestSubtaskWaitsForParentWithoutBlocking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa := &parentApplier{present: map[string]bool{}}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName), &store.Options{Now: clk.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_ = st.Update(ctx, func(tx *store.Tx) error {
		return tx.SyncPut(store.Sync{ID: "s", Name: "s", Role: store.RoleMaster, State: store.StateRunning})
	})
	r, err := replay.New(replay.Options{Store: st, SyncID: "s", Applier: pa, Workers: 1, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Update(ctx, func(tx *store.Tx) error {
		for _, c := range []wire.Change{
			{ID: "sub1", IssueID: "7", Kind: wire.IssueCreate, ParentIssueID: "5", At: time.Unix(1, 0)},
			{ID: "sub2", IssueID: "7", Kind: wire.IssueUpdate, At: time.Unix(2, 0)},
			{ID: "other", IssueID: "8", Kind: wire.IssueUpdate, At: time.Unix(3, 0)},
		} {
			b, _ := json.Marshal(c)
			if _, _, err := tx.ReplayEnqueue("s", c.IssueID, c.ID, b); err != nil {
				return err
			}
		}
		return nil
	})
	res, err := r.Round(ctx)
	if err != nil || res.Waiting != 1 || res.Applied != 1 || res.Parked != 0 {
		t.Fatalf("first round %+v, %v; want 1 waiting, 1 applied", res, err)
	}
	if n, _ := countFailures(st); n != 0 {
		t.Errorf("a waiting sub-task made %d failures", n)
	}
	if res, _ := r.Round(ctx); res.Applied != 0 || res.Retries != 0 {
		t.Errorf("waiting lane moved without its parent: %+v", res)
	}
	pa.mu.Lock()
	pa.present["5"] = true
	pa.mu.Unlock()
	if res, err := r.Round(ctx); err != nil || res.Applied != 2 {
		t.Fatalf("after the parent: %+v, %v; want sub1 and sub2", res, err)
	}
	if !slices.Equal(pa.seen, []string{"other", "sub1", "sub2"}) {
		t.Errorf("applied %v", pa.seen)
	}
}
