package ops

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/link"
	"github.com/jirabridge/jirabridge/internal/store"
)

func mustEval(t *testing.T, ev *Evaluator) []Event {
	t.Helper()
	evs, err := ev.Evaluate(context.Background())
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return evs
}

func storeUpdate(t *testing.T, st *store.Store, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// insertSeqs stores envelopes of the peer with the given numbers.
func insertSeqs(t *testing.T, st *store.Store, seqs ...uint64) {
	t.Helper()
	storeUpdate(t, st, func(tx *store.Tx) error {
		for _, seq := range seqs {
			if _, err := tx.InboxInsert(store.InboxEntry{SyncID: testSync, Sender: "node-b", Seq: seq, Kind: "changes", Sealed: []byte("x")}); err != nil {
				return err
			}
		}
		return tx.LinkHeard(testSync)
	})
}

// TestGapAlertWhenResendAnswerIsOverdue: the gap alert fires when numbers
// the link asked for (the request time is in the store) are still missing
// ResendAnswerAfter after the first request, however young the gap; a gap
// asked for recently does not fire by its age alone; a gap never asked for
// fires after GapAlertAfter.
func TestGapAlertWhenResendAnswerIsOverdue(t *testing.T) {
	t.Parallel()
	c := newClock()
	st := openStore(t, c)
	ev, err := NewEvaluator(Options{Store: st, Now: c.Now, ResendAnswerAfter: 5 * time.Minute, GapAlertAfter: time.Hour,
		SilenceThreshold: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	insertSeqs(t, st, 1, 3) // 2 was lost
	c.Add(2 * time.Minute)
	asked := c.Now()
	asks := []link.ResendAsk{{Sender: "node-b", From: 2, To: 2, FirstAskedAt: asked, LastAskedAt: asked, Asks: 1},
		// A tail: the peer announced 4, which never came.
		{Sender: "node-b", From: 4, To: 4, FirstAskedAt: asked, LastAskedAt: asked, Asks: 1}}
	raw, _ := json.Marshal(asks)
	storeUpdate(t, st, func(tx *store.Tx) error { return tx.CursorSet(link.ResendAsksCursor(testSync), string(raw)) })

	c.Add(5*time.Minute - time.Second)
	if evs := mustEval(t, ev); len(evs) != 0 {
		t.Fatalf("before the answer is overdue: %+v", evs)
	}
	c.Add(time.Second)
	evs := mustEval(t, ev)
	if len(evs) != 2 {
		t.Fatalf("events = %+v, want the gap and the tail alerts", evs)
	}
	for _, e := range evs {
		if e.Name != AlertGapOpen || e.Status != StatusFiring || e.Reason != "resend_overdue" || !e.StartsAt.Equal(asked) {
			t.Errorf("event %+v, want firing %s resend_overdue since %s", e, AlertGapOpen, asked)
		}
	}
	// Envelope 2 arrives: its alert resolves, the tail's holds.
	insertSeqs(t, st, 2)
	evs = mustEval(t, ev)
	if len(evs) != 1 || evs[0].Status != StatusResolved || evs[0].Key != "node-b:2" {
		t.Fatalf("after 2 arrived: %+v, want node-b:2 resolved", evs)
	}
	insertSeqs(t, st, 4)
	if evs := mustEval(t, ev); len(evs) != 1 || evs[0].Key != "node-b:4" || evs[0].Status != StatusResolved {
		t.Fatalf("after 4 arrived: %+v, want node-b:4 resolved", evs)
	}

	// A gap with no request recorded fires by its age only.
	insertSeqs(t, st, 6)
	c.Add(time.Hour - time.Second)
	if evs := mustEval(t, ev); len(evs) != 0 {
		t.Fatalf("gap 5 before GapAlertAfter: %+v", evs)
	}
	c.Add(time.Second)
	if evs := mustEval(t, ev); len(evs) != 1 || evs[0].Reason != "gap" || evs[0].Key != "node-b:5" {
		t.Fatalf("gap 5 after GapAlertAfter: %+v, want the gap alert", evs)
	}
}

// recNotifier records what it is given, or fails while fail is set.
type recNotifier struct {
	mu   sync.Mutex
	fail bool
	got  []Event
}

func (r *recNotifier) Name() string { return "mail" }

func (r *recNotifier) Notify(_ context.Context, evs []Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("451 mail path down")
	}
	r.got = append(r.got, evs...)
	return nil
}

func (r *recNotifier) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.got...)
}

// TestUndeliveredAlertsSurviveRestart: an alert raised while its channel
// fails is kept in the store and delivered by the next process, once.
func TestUndeliveredAlertsSurviveRestart(t *testing.T) {
	t.Parallel()
	c := newClock()
	st := openStore(t, c)
	newEv := func(n Notifier) *Evaluator {
		ev, err := NewEvaluator(Options{Store: st, Now: c.Now, Notifiers: []Notifier{n}, SilenceThreshold: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	down := &recNotifier{fail: true}
	ev := newEv(down)
	var id int64
	storeUpdate(t, st, func(tx *store.Tx) error {
		var err error
		id, err = tx.FailureRecord(store.Failure{SyncID: testSync, ChangeID: "c1", IssueKey: "OPS-1", Kind: "issue.update",
			ErrorClass: "jira_bad_request", ErrorText: "field not on screen"})
		return err
	})
	mustEval(t, ev)
	if p := ev.Pending()["mail"]; p != 1 {
		t.Fatalf("queued = %d, want 1", p)
	}

	// The process ends; the next one has a working mail path.
	up := &recNotifier{}
	ev2 := newEv(up)
	if evs := mustEval(t, ev2); len(evs) != 0 {
		t.Errorf("the restarted evaluator raised %+v again", evs)
	}
	got := up.events()
	if len(got) != 1 || got[0].Name != AlertChangeParked || got[0].Status != StatusFiring || got[0].FailureID != id {
		t.Fatalf("delivered after restart: %+v, want the parked alert of failure %d", got, id)
	}
	if p := ev2.Pending()["mail"]; p != 0 {
		t.Errorf("still queued = %d, want 0", p)
	}
	// Delivered once: a third process has nothing to send.
	again := &recNotifier{}
	mustEval(t, newEv(again))
	if n := len(again.events()); n != 0 {
		t.Errorf("a later process delivered %d events again", n)
	}
	// The resolution is delivered too.
	storeUpdate(t, st, func(tx *store.Tx) error { return tx.FailureResolve(id) })
	mustEval(t, ev2)
	if got := up.events(); len(got) != 2 || got[1].Status != StatusResolved {
		t.Errorf("after the fix: %+v, want the resolution", got)
	}
}
