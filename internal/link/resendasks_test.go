package link

import (
	"context"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
)

// dropTimes drops changes envelope seq the first n times it is sent
// (the original and the resends).
type dropTimes struct {
	next transport.Sender
	seq  uint64
	n    int
}

func (d *dropTimes) Send(ctx context.Context, o transport.Outgoing) error {
	if o.Kind == wire.KindChanges && o.Seq == d.seq && d.n > 0 {
		d.n--
		return nil
	}
	return d.next.Send(ctx, o)
}
func (d *dropTimes) Close() error { return d.next.Close() }

func (n *node) resendAsks(t *testing.T) (asks []ResendAsk, cur store.InboxCursor, gaps []store.Gap) {
	t.Helper()
	if err := n.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		if asks, err = ResendAsks(tx, testSync); err != nil {
			return err
		}
		if cur, err = tx.InboxCursor(testSync, n.peer.name); err != nil {
			return err
		}
		gaps, err = tx.InboxGaps(testSync, n.peer.name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return asks, cur, gaps
}

// TestResendAskTimeIsRecorded: when the link asks for a gap it records
// when, in the store; asking again for the same numbers keeps the first
// time and counts the asks; once the numbers arrive the record no longer
// counts as missing.
func TestResendAskTimeIsRecorded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.MaxBatchChanges = 1
	a.sender = &dropTimes{next: a.sender, seq: 2, n: 2} // the original and the first resend are lost
	a.start(o)
	b.start(o)
	var want []wire.Change
	for i := range 3 {
		want = append(want, a.change(1, i))
	}
	a.queue(want...)
	stepUntil := func(asked int64) time.Time {
		t.Helper()
		for range 300 {
			if b.link.Counters().ResendAsked >= asked {
				return clk.Now()
			}
			step(t, time.Second, a, b)
		}
		t.Fatalf("b did not ask %d times: %+v", asked, b.link.Counters())
		return time.Time{}
	}
	firstAt := stepUntil(1)
	asks, cur, gaps := b.resendAsks(t)
	if len(asks) != 1 || asks[0].From != 2 || asks[0].To != 2 || asks[0].Asks != 1 || asks[0].Sender != "node-a" ||
		!asks[0].FirstAskedAt.Equal(asks[0].LastAskedAt) || asks[0].FirstAskedAt.After(firstAt) {
		t.Fatalf("after the first ask: %+v (asked by %s)", asks, firstAt)
	}
	first := asks[0].FirstAskedAt
	if !asks[0].Missing(cur, gaps) {
		t.Errorf("number 2 should still be missing: cursor %+v, gaps %+v", cur, gaps)
	}
	stepUntil(2)
	asks, _, _ = b.resendAsks(t)
	if len(asks) != 1 || !asks[0].FirstAskedAt.Equal(first) || !asks[0].LastAskedAt.After(first) || asks[0].Asks != 2 {
		t.Fatalf("after the second ask: %+v, want first ask %s kept and 2 asks", asks, first)
	}
	run(t, 300, time.Second, a, b)
	checkReplay(t, "b", b.replayed(), want)
	asks, cur, gaps = b.resendAsks(t)
	for _, x := range asks {
		if x.Missing(cur, gaps) {
			t.Errorf("ask %+v still missing after the repair (cursor %+v)", x, cur)
		}
	}
}

func TestResendAskMissing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ask  ResendAsk
		cur  store.InboxCursor
		gaps []store.Gap
		want bool
	}{
		{"all below the prefix", ResendAsk{From: 2, To: 3}, store.InboxCursor{Contiguous: 5, HighestSeen: 5}, nil, false},
		{"a tail never seen", ResendAsk{From: 6, To: 6}, store.InboxCursor{Contiguous: 5, HighestSeen: 5}, nil, true},
		{"inside a gap", ResendAsk{From: 3, To: 3}, store.InboxCursor{Contiguous: 2, HighestSeen: 6}, []store.Gap{{From: 3, To: 4}}, true},
		{"gap moved past it", ResendAsk{From: 3, To: 3}, store.InboxCursor{Contiguous: 2, HighestSeen: 6}, []store.Gap{{From: 5, To: 5}}, false},
	} {
		if got := tc.ask.Missing(tc.cur, tc.gaps); got != tc.want {
			t.Errorf("%s: Missing = %v, want %v", tc.name, got, tc.want)
		}
	}
}
