package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestSyncsAndKeys(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		if err := tx.SyncSetState(testSync, StatePaused, "authentication"); err != nil {
			return err
		}
		if err := tx.SyncSetPeer(testSync, "node-b"); err != nil {
			return err
		}
		if err := tx.SyncSetState("nope", StateRunning, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("set state of unknown sync: got %v, want ErrNotFound", err)
		}
		if err := tx.SyncSetState(testSync, SyncState("BOGUS"), ""); err == nil {
			t.Error("unknown state accepted")
		}
		return tx.KeysPut(Keys{SyncID: testSync, SigningKey: []byte{1, 2}, AgeIdentity: "AGE-SECRET-KEY-1X",
			PeerSigningKey: []byte{3}, PeerAgeRecipient: "age1y", HandshakeSecretHash: []byte{9}})
	})
	view(t, s, func(tx *Tx) error {
		sy, err := tx.SyncGet(testSync)
		if err != nil {
			return err
		}
		if sy.State != StatePaused || sy.StateReason != "authentication" || sy.PeerNode != "node-b" || sy.SelfNode != "node-a" {
			t.Errorf("sync: got %+v", sy)
		}
		list, err := tx.SyncList()
		if err != nil {
			return err
		}
		if len(list) != 1 {
			t.Errorf("list: got %d syncs, want 1", len(list))
		}
		k, err := tx.KeysGet(testSync)
		if err != nil {
			return err
		}
		if !bytes.Equal(k.SigningKey, []byte{1, 2}) || k.AgeIdentity != "AGE-SECRET-KEY-1X" ||
			!bytes.Equal(k.PeerSigningKey, []byte{3}) || k.PeerAgeRecipient != "age1y" {
			t.Errorf("keys: got %+v", k)
		}
		if _, err := tx.KeysGet("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("keys of unknown sync: got %v, want ErrNotFound", err)
		}
		return nil
	})
	// Deleting the sync takes everything of it along.
	update(t, s, func(tx *Tx) error {
		if _, err := tx.OutboxAppend(testSync, "changes", []byte("x")); err != nil {
			return err
		}
		return tx.SyncDelete(testSync)
	})
	view(t, s, func(tx *Tx) error {
		if _, err := tx.KeysGet(testSync); !errors.Is(err, ErrNotFound) {
			t.Errorf("keys after delete: got %v, want ErrNotFound", err)
		}
		st, err := tx.OutboxStats(testSync)
		if err != nil {
			return err
		}
		if st.HighestSeq != 0 {
			t.Errorf("outbox after delete: got %+v", st)
		}
		return nil
	})
}

func TestPairs(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		if err := tx.PairPut(IssuePair{SyncID: testSync, LocalID: "100", LocalKey: "A-1", PeerID: "900", PeerKey: "B-7"}); err != nil {
			return err
		}
		// A moved issue changes key, not id.
		if err := tx.PairPut(IssuePair{SyncID: testSync, LocalID: "100", LocalKey: "C-3", PeerID: "900", PeerKey: "B-7"}); err != nil {
			return err
		}
		if err := tx.PairPut(IssuePair{SyncID: testSync, LocalID: "100", LocalKey: "C-3", PeerID: "901", PeerKey: "B-8"}); err == nil {
			t.Error("re-pairing a local issue with another peer issue succeeded")
		}
		return nil
	})
	view(t, s, func(tx *Tx) error {
		p, err := tx.PairByPeer(testSync, "900")
		if err != nil {
			return err
		}
		if p.LocalID != "100" || p.LocalKey != "C-3" {
			t.Errorf("by peer: got %+v", p)
		}
		p, err = tx.PairByLocal(testSync, "100")
		if err != nil {
			return err
		}
		if p.PeerKey != "B-7" {
			t.Errorf("by local: got %+v", p)
		}
		if _, err := tx.PairByLocal(testSync, "101"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown local: got %v, want ErrNotFound", err)
		}
		list, err := tx.PairList(testSync, "", 0)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			t.Errorf("list: got %d, want 1", len(list))
		}
		return nil
	})
}

func TestLedgerSentCursors(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		dup, err := tx.LedgerRecord(Applied{ChangeID: "c1", SyncID: testSync, Issue: "100", Result: "comment 55"})
		if err != nil || dup {
			t.Errorf("first record: dup %v err %v", dup, err)
		}
		dup, err = tx.LedgerRecord(Applied{ChangeID: "c1", SyncID: testSync, Result: "other"})
		if err != nil || !dup {
			t.Errorf("second record: dup %v err %v, want duplicate", dup, err)
		}
		a, err := tx.LedgerGet("c1")
		if err != nil {
			return err
		}
		if a.Result != "comment 55" || a.Issue != "100" {
			t.Errorf("ledger: got %+v", a)
		}
		if _, err := tx.LedgerGet("c2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown change: got %v, want ErrNotFound", err)
		}

		if err := tx.SentPut(SentItem{SyncID: testSync, IssueID: "100", ItemKind: "comment", ItemID: "7", Version: "t1"}); err != nil {
			return err
		}
		if err := tx.SentPut(SentItem{SyncID: testSync, IssueID: "100", ItemKind: "comment", ItemID: "7", Version: "t2"}); err != nil {
			return err
		}
		if err := tx.SentPut(SentItem{SyncID: testSync, IssueID: "100", ItemKind: "changelog", ItemID: "3"}); err != nil {
			return err
		}
		v, ok, err := tx.SentGet(testSync, "100", "comment", "7")
		if err != nil || !ok || v != "t2" {
			t.Errorf("sent comment 7: got %q %v %v, want t2", v, ok, err)
		}
		if _, ok, _ := tx.SentGet(testSync, "100", "comment", "8"); ok {
			t.Error("sent comment 8: found, want absent")
		}
		list, err := tx.SentList(testSync, "100")
		if err != nil {
			return err
		}
		if len(list) != 2 {
			t.Errorf("sent list: got %d, want 2", len(list))
		}
		if err := tx.SentDeleteIssue(testSync, "100"); err != nil {
			return err
		}
		if list, _ := tx.SentList(testSync, "100"); len(list) != 0 {
			t.Errorf("sent list after delete: got %d, want 0", len(list))
		}

		if _, ok, err := tx.CursorGet("sync-1/detect"); ok || err != nil {
			t.Errorf("unset cursor: ok %v err %v", ok, err)
		}
		if err := tx.CursorSet("sync-1/detect", "2026-11-24T04:00"); err != nil {
			return err
		}
		if err := tx.CursorSet("sync-1/detect", "2026-11-24T05:00"); err != nil {
			return err
		}
		v, ok, err = tx.CursorGet("sync-1/detect")
		if err != nil || !ok || v != "2026-11-24T05:00" {
			t.Errorf("cursor: got %q %v %v", v, ok, err)
		}
		return nil
	})
}

func TestConflictsQuarantineLink(t *testing.T) {
	t.Parallel()
	s, clk := open(t)
	t0 := clk.Now()
	update(t, s, func(tx *Tx) error {
		for _, w := range []string{"local", "peer"} {
			if _, err := tx.ConflictAdd(Conflict{SyncID: testSync, Issue: "A-1", Field: "summary", LocalValue: "x",
				LocalAt: t0.Add(-time.Minute), PeerValue: "y", PeerAt: t0, Winner: w}); err != nil {
				return err
			}
		}
		if _, err := tx.ConflictAdd(Conflict{SyncID: testSync, Winner: "both"}); err == nil {
			t.Error("winner \"both\" accepted")
		}
		id, err := tx.QuarantineAdd(Quarantined{SyncID: "unknown", TransportRef: "INBOX/42", Reason: "bad signature", Raw: []byte("raw mail")})
		if err != nil {
			return err
		}
		q, err := tx.QuarantineGet(id)
		if err != nil {
			return err
		}
		if string(q.Raw) != "raw mail" || q.Reason != "bad signature" || !q.At.Equal(t0) {
			t.Errorf("quarantined: got %+v", q)
		}
		list, err := tx.QuarantineList(0)
		if err != nil {
			return err
		}
		if len(list) != 1 || list[0].Raw != nil || list[0].TransportRef != "INBOX/42" {
			t.Errorf("quarantine list: got %+v", list)
		}
		if err := tx.QuarantineDelete(id); err != nil {
			return err
		}
		if err := tx.QuarantineDelete(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: got %v, want ErrNotFound", err)
		}

		if err := tx.LinkHeard(testSync); err != nil {
			return err
		}
		if err := tx.LinkHeartbeatSent(testSync); err != nil {
			return err
		}
		if err := tx.LinkAckSent(testSync, 7); err != nil {
			return err
		}
		if err := tx.LinkAckSent(testSync, 5); err != nil { // an ack never goes back
			return err
		}
		if _, err := tx.InboxInsert(InboxEntry{SyncID: testSync, Sender: "node-b", Seq: 2}); err != nil {
			return err
		}
		_, err = tx.OutboxAppend(testSync, "changes", []byte("x"))
		return err
	})
	view(t, s, func(tx *Tx) error {
		cs, err := tx.ConflictList(testSync, 0)
		if err != nil {
			return err
		}
		if len(cs) != 2 || cs[0].Winner != "peer" || !cs[0].LocalAt.Equal(t0.Add(-time.Minute)) || !cs[0].At.Equal(t0) {
			t.Errorf("conflicts (newest first): got %+v", cs)
		}
		st, err := tx.LinkStatus(testSync)
		if err != nil {
			return err
		}
		if !st.LastHeardAt.Equal(t0) || !st.LastHeartbeatAt.Equal(t0) || st.AckSent != 7 {
			t.Errorf("link state: got %+v", st.LinkState)
		}
		if st.Outbox.HighestSeq != 1 || st.Outbox.Depth != 1 {
			t.Errorf("link outbox: got %+v", st.Outbox)
		}
		in := st.Inbound["node-b"]
		if in.Cursor.HighestSeen != 2 || in.Cursor.Contiguous != 0 || len(in.Gaps) != 1 || in.Gaps[0].From != 1 {
			t.Errorf("link inbound: got %+v", in)
		}
		return nil
	})
}
