package store

import (
	"errors"
	"testing"
	"time"
)

func TestOutboxSendAckPrune(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	update(t, s, func(tx *Tx) error {
		for i := 1; i <= 5; i++ {
			seq, err := tx.OutboxAppend(testSync, "changes", []byte{byte(i)})
			if err != nil {
				return err
			}
			if seq != uint64(i) {
				t.Errorf("append %d: got seq %d", i, seq)
			}
		}
		unsent, err := tx.OutboxNextUnsent(testSync, 3)
		if err != nil {
			return err
		}
		if len(unsent) != 3 || unsent[0].Seq != 1 || unsent[2].Seq != 3 {
			t.Errorf("NextUnsent(3): got %d entries starting %v", len(unsent), unsent)
		}
		for _, e := range unsent {
			if err := tx.OutboxMarkSent(testSync, e.Seq); err != nil {
				return err
			}
		}
		if err := tx.OutboxMarkSendFailed(testSync, 4, "smtp 451"); err != nil {
			return err
		}
		e, err := tx.OutboxGet(testSync, 4)
		if err != nil {
			return err
		}
		if e.Attempts != 1 || e.LastError != "smtp 451" || !e.SentAt.IsZero() {
			t.Errorf("after failed send: got attempts %d error %q sent %v", e.Attempts, e.LastError, e.SentAt)
		}
		unsent, err = tx.OutboxNextUnsent(testSync, 0)
		if err != nil {
			return err
		}
		if len(unsent) != 2 || unsent[0].Seq != 4 {
			t.Errorf("NextUnsent after sending 1-3: got %v", unsent)
		}
		return nil
	})

	clk.Add(time.Minute)
	update(t, s, func(tx *Tx) error {
		n, err := tx.OutboxAck(testSync, 2)
		if err != nil {
			return err
		}
		if n != 2 {
			t.Errorf("Ack(2): got %d newly acked, want 2", n)
		}
		if n, _ := tx.OutboxAck(testSync, 2); n != 0 {
			t.Errorf("Ack(2) again: got %d, want 0", n)
		}
		un, err := tx.OutboxUnacked(testSync, 0)
		if err != nil {
			return err
		}
		if len(un) != 1 || un[0].Seq != 3 {
			t.Errorf("Unacked: got %v, want only seq 3", un)
		}
		return nil
	})
	clk.Add(time.Hour)
	update(t, s, func(tx *Tx) error {
		_, err := tx.OutboxAck(testSync, 3)
		return err
	})
	view(t, s, func(tx *Tx) error {
		st, err := tx.OutboxStats(testSync)
		if err != nil {
			return err
		}
		want := OutboxStats{Depth: 2, Unsent: 2, OldestUnacked: time.UnixMilli(1_700_000_000_000),
			HighestSeq: 5, HighestSent: 3, HighestAcked: 3}
		if st != want {
			t.Errorf("stats: got %+v, want %+v", st, want)
		}
		l, err := tx.LinkGet(testSync)
		if err != nil {
			return err
		}
		if l.PeerAcked != 3 {
			t.Errorf("link peer acked: got %d, want 3", l.PeerAcked)
		}
		return nil
	})

	// Prune what was acked more than 30 minutes ago: 1 and 2, not 3.
	update(t, s, func(tx *Tx) error {
		n, err := tx.OutboxPrune(testSync, clk.Now().Add(-30*time.Minute))
		if err != nil {
			return err
		}
		if n != 2 {
			t.Errorf("Prune: got %d, want 2", n)
		}
		return nil
	})
	view(t, s, func(tx *Tx) error {
		for seq, want := range map[uint64]error{1: ErrPruned, 2: ErrPruned, 3: nil, 6: ErrNotFound, 0: ErrNotFound} {
			_, err := tx.OutboxGet(testSync, seq)
			if !errors.Is(err, want) || (want == nil && err != nil) {
				t.Errorf("Get(%d): got %v, want %v", seq, err, want)
			}
		}
		st, err := tx.OutboxStats(testSync)
		if err != nil {
			return err
		}
		if st.PrunedThrough != 2 || st.HighestSeq != 5 {
			t.Errorf("stats after prune: got %+v", st)
		}
		return nil
	})

	// Ack and prune everything: the numbering still goes on from 6.
	clk.Add(time.Hour)
	update(t, s, func(tx *Tx) error {
		if _, err := tx.OutboxAck(testSync, 5); err != nil {
			return err
		}
		clk.Add(time.Hour)
		if _, err := tx.OutboxPrune(testSync, clk.Now()); err != nil {
			return err
		}
		seq, err := tx.OutboxAppend(testSync, "control", nil)
		if err != nil {
			return err
		}
		if seq != 6 {
			t.Errorf("append after pruning all: got seq %d, want 6", seq)
		}
		if _, err := tx.OutboxGet(testSync, 5); !errors.Is(err, ErrPruned) {
			t.Errorf("Get(5): got %v, want ErrPruned", err)
		}
		return nil
	})
}

// TestOutboxPruneStopsAtUnacked: an unacked envelope stops pruning, so the
// tombstone watermark never covers something that is still needed.
func TestOutboxPruneStopsAtUnacked(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	update(t, s, func(tx *Tx) error {
		for range 4 {
			if _, err := tx.OutboxAppend(testSync, "changes", []byte("x")); err != nil {
				return err
			}
		}
		_, err := tx.OutboxAck(testSync, 1)
		return err
	})
	clk.Add(time.Hour)
	update(t, s, func(tx *Tx) error {
		n, err := tx.OutboxPrune(testSync, clk.Now())
		if err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("Prune: got %d, want 1", n)
		}
		for seq := uint64(2); seq <= 4; seq++ {
			if _, err := tx.OutboxGet(testSync, seq); err != nil {
				t.Errorf("Get(%d) after prune: %v", seq, err)
			}
		}
		return nil
	})
}

func TestOutboxUnknownSync(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	err := s.Update(t.Context(), func(tx *Tx) error {
		_, err := tx.OutboxAppend("no-such-sync", "changes", []byte("x"))
		return err
	})
	if err == nil {
		t.Fatal("append to an unknown sync succeeded, want a foreign key error")
	}
}

func TestOutboxAppendFunc(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	update(t, s, func(tx *Tx) error {
		for want := uint64(1); want <= 3; want++ {
			seq, err := tx.OutboxAppendFunc(testSync, "changes", func(seq uint64) ([]byte, error) {
				return []byte{byte(seq)}, nil
			})
			if err != nil {
				return err
			}
			e, err := tx.OutboxGet(testSync, seq)
			if err != nil {
				return err
			}
			if seq != want || len(e.Sealed) != 1 || uint64(e.Sealed[0]) != want {
				t.Errorf("append: got seq %d sealed %v, want %d", seq, e.Sealed, want)
			}
		}
		boom := errors.New("seal failed")
		if _, err := tx.OutboxAppendFunc(testSync, "changes", func(uint64) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Errorf("failing seal: got %v, want it unchanged", err)
		}
		next, err := tx.OutboxNextSeq(testSync)
		if err != nil {
			return err
		}
		if next != 4 {
			t.Errorf("next after failing seal: got %d, want 4", next)
		}
		return nil
	})
	clk.Add(time.Minute)
	view(t, s, func(tx *Tx) error {
		st, err := tx.OutboxStats(testSync)
		if err != nil {
			return err
		}
		if got := st.OldestUnackedAge(clk.Now()); got != time.Minute {
			t.Errorf("oldest unacked age: got %v, want 1m", got)
		}
		if got := (OutboxStats{}).OldestUnackedAge(clk.Now()); got != 0 {
			t.Errorf("age of an empty outbox: got %v, want 0", got)
		}
		return nil
	})
}
