package store

import (
	"errors"
	"testing"
)

func TestPairDelete(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	update(t, s, func(tx *Tx) error {
		for _, p := range []IssuePair{
			{SyncID: testSync, LocalID: "1", LocalKey: "A-1", PeerID: "10", PeerKey: "B-1"},
			{SyncID: testSync, LocalID: "2", LocalKey: "A-2", PeerID: "20", PeerKey: "B-2"},
		} {
			if err := tx.PairPut(p); err != nil {
				return err
			}
		}
		if err := tx.PairDelete(testSync, "1"); err != nil {
			return err
		}
		return tx.PairDelete(testSync, "404") // not paired: no error
	})
	view(t, s, func(tx *Tx) error {
		if _, err := tx.PairByLocal(testSync, "1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("dissolved pair by local id: %v, want ErrNotFound", err)
		}
		if _, err := tx.PairByPeer(testSync, "10"); !errors.Is(err, ErrNotFound) {
			t.Errorf("dissolved pair by peer id: %v, want ErrNotFound", err)
		}
		if p, err := tx.PairByLocal(testSync, "2"); err != nil || p.PeerKey != "B-2" {
			t.Errorf("other pair: %+v, %v", p, err)
		}
		return nil
	})
	// The local id may be paired again (a new copy) once dissolved.
	update(t, s, func(tx *Tx) error {
		return tx.PairPut(IssuePair{SyncID: testSync, LocalID: "1", LocalKey: "A-1", PeerID: "11", PeerKey: "B-9"})
	})
}
