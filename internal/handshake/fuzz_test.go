package handshake

import (
	"context"
	"testing"

	"github.com/jirabridge/jirabridge/internal/store"
)

// FuzzParseFile: a handshake file is outside input; no input panics, and
// one that parses is complete.
func FuzzParseFile(f *testing.F) {
	st := openStore(f)
	good := initMaster(f, st, "fuzz")
	b, _ := good.Marshal()
	f.Add(b)
	f.Add([]byte(`{"kind":"jirabridge-handshake","version":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		fl, err := ParseFile(in)
		if err != nil {
			return
		}
		if fl.SyncID == "" || fl.MasterNode == "" || fl.MasterKeys.Signing == nil || fl.MasterKeys.Recipient == nil || fl.Secret == "" {
			t.Fatalf("ParseFile accepted an incomplete file: %+v", fl)
		}
	})
}

// FuzzReceive: whatever arrives, a master waiting for its slave never
// accepts a join it cannot verify, and never fails on the message itself.
func FuzzReceive(f *testing.F) {
	m := openStore(f)
	file := initMaster(f, m, "fuzz")
	s := openStore(f)
	if err := join(s, file); err != nil {
		f.Fatal(err)
	}
	var sealed []byte
	s.View(context.Background(), func(tx *store.Tx) error {
		es, _ := tx.OutboxNextUnsent(file.SyncID, 1)
		sealed = es[0].Sealed
		return nil
	})
	f.Add(sealed[:len(sealed)/2])
	f.Add(append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1))
	f.Add([]byte("JBX1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		err := m.Update(context.Background(), func(tx *store.Tx) error {
			r, err := Receive(tx, in, ReceiveOptions{})
			if err == nil && r.Event == EventAccepted {
				t.Fatalf("accepted a fuzzed join")
			}
			return errRollback
		})
		if err != errRollback && err != nil {
			t.Fatalf("Receive failed on the store, not the message: %v", err)
		}
	})
}

var errRollback = rollback{}

type rollback struct{}

func (rollback) Error() string { return "rollback" }
