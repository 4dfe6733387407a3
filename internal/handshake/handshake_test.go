package handshake

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/store"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), store.FileName), &store.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func update(t testing.TB, st *store.Store, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// unsent takes every unsent outbox envelope of the sync and marks it sent:
// what the link does.
func unsent(t *testing.T, st *store.Store, syncID string) [][]byte {
	t.Helper()
	var out [][]byte
	update(t, st, func(tx *store.Tx) error {
		es, err := tx.OutboxNextUnsent(syncID, 100)
		if err != nil {
			return err
		}
		for _, e := range es {
			out = append(out, e.Sealed)
			if err := tx.OutboxMarkSent(syncID, e.Seq); err != nil {
				return err
			}
		}
		return nil
	})
	return out
}

func deliver(t *testing.T, st *store.Store, sealed []byte, local *Config) Result {
	t.Helper()
	var r Result
	update(t, st, func(tx *store.Tx) error {
		var err error
		r, err = Receive(tx, sealed, ReceiveOptions{Ref: "test", Local: local})
		return err
	})
	return r
}

func syncOf(t *testing.T, st *store.Store, id string) store.Sync {
	t.Helper()
	var s store.Sync
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		s, err = tx.SyncGet(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

type pair struct {
	m, s   *store.Store
	file   File
	syncID string
}

func initMaster(t testing.TB, st *store.Store, name string) File {
	t.Helper()
	var f File
	update(t, st, func(tx *store.Tx) error {
		var err error
		f, err = Init(tx, InitParams{Name: name, ProjectKey: "SUP", SyncUser: "sync-a", Transport: "file", FileDropNote: "share"})
		return err
	})
	return f
}

func join(st *store.Store, f File) error {
	return st.Update(context.Background(), func(tx *store.Tx) error {
		_, err := Join(tx, f, JoinParams{ProjectKey: "PART", SyncUser: "sync-b", Transport: "file"})
		return err
	})
}

// handshaken sets up a pair through init, join, accept, ping, pong.
func handshaken(t *testing.T) pair {
	t.Helper()
	p := pair{m: openStore(t), s: openStore(t)}
	p.file = initMaster(t, p.m, "partner")
	p.syncID = p.file.SyncID
	// The file goes through its text form, as a person carries it.
	b, err := p.file.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := join(p.s, f); err != nil {
		t.Fatal(err)
	}
	if got := syncOf(t, p.s, p.syncID).State; got != store.StateHandshake {
		t.Fatalf("slave after join: %s, want HANDSHAKE", got)
	}
	msgs := unsent(t, p.s, p.syncID)
	if len(msgs) != 1 {
		t.Fatalf("slave queued %d messages, want 1", len(msgs))
	}
	if r := deliver(t, p.m, msgs[0], nil); r.Event != EventAccepted {
		t.Fatalf("master: %+v, want accepted", r)
	}
	msgs = unsent(t, p.m, p.syncID)
	if len(msgs) != 1 {
		t.Fatalf("master queued %d messages, want 1 ping", len(msgs))
	}
	if r := deliver(t, p.s, msgs[0], nil); r.Event != EventPing || r.State != store.StateStopped {
		t.Fatalf("slave: %+v, want ping, STOPPED", r)
	}
	msgs = unsent(t, p.s, p.syncID)
	if r := deliver(t, p.m, msgs[0], nil); r.Event != EventPong || r.State != store.StateStopped {
		t.Fatalf("master: %+v, want pong, STOPPED", r)
	}
	return p
}

func TestFileHasNoPrivateKey(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	f := initMaster(t, st, "x")
	b, _ := f.Marshal()
	var keys store.Keys
	st.View(context.Background(), func(tx *store.Tx) error { keys, _ = tx.KeysGet(f.SyncID); return nil })
	seed := keys.SigningKey[:32]
	for _, secret := range []string{keys.AgeIdentity, base64.RawURLEncoding.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed)[:40], "AGE-SECRET-KEY", "SEED"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("handshake file contains private key material %q", secret[:10])
		}
	}
	if !strings.Contains(string(b), `"what": "jirabridge handshake file`) {
		t.Errorf("file does not say what it is:\n%s", b)
	}
	if string(keys.HandshakeSecretHash) == f.Secret || len(keys.HandshakeSecretHash) == 0 {
		t.Errorf("store keeps the secret itself or nothing")
	}
}

func TestHandshakeAndPublish(t *testing.T) {
	t.Parallel()
	p := handshaken(t)
	ms := syncOf(t, p.m, p.syncID)
	ss := syncOf(t, p.s, p.syncID)
	if ms.PeerNode != ss.SelfNode || ss.PeerNode != ms.SelfNode {
		t.Fatalf("nodes: master %+v slave %+v", ms, ss)
	}
	// The link can now open the peer's envelopes with the stored keys.
	var mk store.Keys
	p.m.View(context.Background(), func(tx *store.Tx) error { mk, _ = tx.KeysGet(p.syncID); return nil })
	if len(mk.HandshakeSecretHash) != 0 {
		t.Errorf("master kept the handshake secret after accepting")
	}

	master := &Config{IssueTypes: []string{"bug", "task"}, Statuses: []string{"done", "open"},
		Fields:   []FieldConfig{{Alias: "severity", Direction: "both", Values: []string{"sev1", "sev2"}}, {Alias: "summary", Direction: "outgoing"}},
		Features: Features{Comments: true}}
	var ver int
	update(t, p.m, func(tx *store.Tx) error {
		var err error
		ver, err = Publish(tx, p.syncID, master, "first")
		return err
	})
	if ver != 1 || syncOf(t, p.m, p.syncID).State != store.StateWaitingForSlave {
		t.Fatalf("publish: version %d state %s", ver, syncOf(t, p.m, p.syncID).State)
	}
	msgs := unsent(t, p.m, p.syncID)
	local := &Config{IssueTypes: []string{"bug"}, Statuses: []string{"done", "open", "triage"},
		Fields:   []FieldConfig{{Alias: "severity", Direction: "both", Values: []string{"sev1"}}, {Alias: "summary", Direction: "both"}},
		Features: Features{Comments: true, Watchers: true}}
	r := deliver(t, p.s, msgs[0], local)
	if r.Event != EventConfig || r.State != store.StateUpdateRequired {
		t.Fatalf("slave: %+v", r)
	}
	wantMissing := []string{"issue type task", "field severity value sev2"}
	if !slices.Equal(r.Missing, wantMissing) {
		t.Errorf("missing = %q, want %q", r.Missing, wantMissing)
	}
	var rec Reconciled
	update(t, p.s, func(tx *store.Tx) error { var err error; rec, err = Reconcile(tx, p.syncID, local); return err })
	wantWiden := []string{"status triage (the master does not define it)", "field summary direction both (the master's is outgoing; allowed here: incoming)", "feature watchers (the master has it off)"}
	if !slices.Equal(rec.Widening, wantWiden) {
		t.Errorf("widening = %q, want %q", rec.Widening, wantWiden)
	}
	// Start is refused with the list while UPDATE REQUIRED.
	err := p.s.Update(context.Background(), func(tx *store.Tx) error {
		_, err := Start(tx, p.syncID, Fixed{ProjectKey: "PART", SyncUser: "sync-b"}, local)
		return err
	})
	if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "issue type task") {
		t.Errorf("start in UPDATE REQUIRED: %v", err)
	}
	if n := len(unsent(t, p.s, p.syncID)); n != 0 {
		t.Fatalf("slave acked an incomplete configuration (%d messages)", n)
	}
	// The slave completes its definition: it adopts and acks.
	local = &Config{IssueTypes: []string{"bug", "task"}, Statuses: []string{"done", "open"},
		Fields:   []FieldConfig{{Alias: "severity", Direction: "both", Values: []string{"sev1", "sev2"}}, {Alias: "summary", Direction: "incoming"}},
		Features: Features{Comments: false}}
	update(t, p.s, func(tx *store.Tx) error { var err error; rec, err = Reconcile(tx, p.syncID, local); return err })
	if !rec.Adopted || rec.State != store.StateStopped {
		t.Fatalf("reconcile: %+v, want adopted and STOPPED", rec)
	}
	msgs = unsent(t, p.s, p.syncID)
	if len(msgs) != 1 {
		t.Fatalf("slave queued %d messages, want 1 ack", len(msgs))
	}
	if r := deliver(t, p.m, msgs[0], nil); r.Event != EventConfigAck || r.State != store.StateStopped {
		t.Fatalf("master: %+v, want config_ack, STOPPED", r)
	}
	// Start on the master; a changed definition must be published first.
	changed := *master
	changed.Statuses = []string{"done"}
	err = p.m.Update(context.Background(), func(tx *store.Tx) error {
		_, err := Start(tx, p.syncID, Fixed{ProjectKey: "SUP", SyncUser: "sync-a"}, &changed)
		return err
	})
	if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "publish") {
		t.Errorf("start with changed definition: %v", err)
	}
	update(t, p.m, func(tx *store.Tx) error {
		st, err := Start(tx, p.syncID, Fixed{ProjectKey: "SUP", SyncUser: "sync-a"}, master)
		if st != store.StateRunning {
			t.Errorf("master start: %s", st)
		}
		return err
	})
	// Republishing while running returns to RUNNING after the ack.
	update(t, p.m, func(tx *store.Tx) error { _, err := Publish(tx, p.syncID, master, "again"); return err })
	update(t, p.s, func(tx *store.Tx) error {
		_, err := Start(tx, p.syncID, Fixed{ProjectKey: "PART", SyncUser: "sync-b"}, local)
		return err
	})
	msgs = unsent(t, p.m, p.syncID)
	if r := deliver(t, p.s, msgs[0], local); r.State != store.StateRunning {
		t.Fatalf("slave adopting v2: %+v", r)
	}
	msgs = unsent(t, p.s, p.syncID)
	if r := deliver(t, p.m, msgs[0], nil); r.State != store.StateRunning {
		t.Fatalf("master after v2 ack: %+v, want RUNNING", r)
	}
	// The slave's definition is edited and loses an alias: UPDATE
	// REQUIRED until it maps it again, then RUNNING (and acked again).
	narrowed := *local
	narrowed.IssueTypes = []string{"bug"}
	update(t, p.s, func(tx *store.Tx) error { var err error; rec, err = Reconcile(tx, p.syncID, &narrowed); return err })
	if rec.Adopted || rec.State != store.StateUpdateRequired || !slices.Equal(rec.Missing, []string{"issue type task"}) {
		t.Fatalf("after losing an alias: %+v", rec)
	}
	update(t, p.s, func(tx *store.Tx) error { var err error; rec, err = Reconcile(tx, p.syncID, local); return err })
	if !rec.Adopted || rec.State != store.StateRunning {
		t.Fatalf("after mapping it again: %+v", rec)
	}
	if n := len(unsent(t, p.s, p.syncID)); n != 1 {
		t.Errorf("re-adoption queued %d acks, want 1", n)
	}
	// A duplicate (the same mail again) is dropped.
	if r := deliver(t, p.m, msgs[0], nil); r.Event != EventDuplicate {
		t.Errorf("duplicate: %+v", r)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	p := handshaken(t)

	// A second join with the same file on the same bridge.
	if err := join(p.s, p.file); !errors.Is(err, ErrAlreadyJoined) {
		t.Errorf("second join on the slave: %v, want ErrAlreadyJoined", err)
	}
	// A second slave with the same file: refused at the master.
	other := openStore(t)
	if err := join(other, p.file); err != nil {
		t.Fatal(err)
	}
	msgs := unsent(t, other, p.syncID)
	if r := deliver(t, p.m, msgs[0], nil); r.Event != EventRefused || r.Reason != ReasonSecondJoin {
		t.Errorf("second slave: %+v", r)
	}

	// A forged handshake: the file with another secret.
	m2 := openStore(t)
	f2 := initMaster(t, m2, "second")
	forged := f2
	forged.Secret = p.file.Secret
	s3 := openStore(t)
	if err := join(s3, forged); err != nil {
		t.Fatal(err)
	}
	msgs = unsent(t, s3, f2.SyncID)
	if r := deliver(t, m2, msgs[0], nil); r.Event != EventRefused || r.Reason != ReasonForged {
		t.Errorf("forged: %+v", r)
	}
	if st := syncOf(t, m2, f2.SyncID); st.State != store.StateCreated || st.PeerNode != "" {
		t.Errorf("master after forged handshake: %+v", st)
	}
	// A handshake for another sync.
	if r := deliver(t, p.m, msgs[0], nil); r.Event != EventRefused || r.Reason != ReasonUnknownSync {
		t.Errorf("other sync: %+v", r)
	}
	// The genuine slave still joins m2 afterwards.
	s4 := openStore(t)
	if err := join(s4, f2); err != nil {
		t.Fatal(err)
	}
	msgs = unsent(t, s4, f2.SyncID)
	if r := deliver(t, m2, msgs[0], nil); r.Event != EventAccepted {
		t.Errorf("genuine after forged: %+v", r)
	}
	var n int
	m2.View(context.Background(), func(tx *store.Tx) error { q, _ := tx.QuarantineList(10); n = len(q); return nil })
	if n != 1 {
		t.Errorf("master 2 quarantine has %d records, want 1", n)
	}

	// Fixed project and sync user.
	err := p.m.Update(context.Background(), func(tx *store.Tx) error {
		_, err := Start(tx, p.syncID, Fixed{ProjectKey: "OTHER", SyncUser: "someone"}, nil)
		return err
	})
	if !errors.Is(err, ErrFixed) || !strings.Contains(err.Error(), "tells its own writes apart") || !strings.Contains(err.Error(), "project") {
		t.Errorf("fixed: %v", err)
	}
	// Start before publish.
	err = p.m.Update(context.Background(), func(tx *store.Tx) error {
		_, err := Start(tx, p.syncID, Fixed{}, nil)
		return err
	})
	if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "publish") {
		t.Errorf("start before publish: %v", err)
	}
	// Publish on the slave.
	err = p.s.Update(context.Background(), func(tx *store.Tx) error { _, err := Publish(tx, p.syncID, &Config{}, ""); return err })
	if !errors.Is(err, ErrState) {
		t.Errorf("publish on slave: %v", err)
	}
}

func TestParseFileErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "{}", `{"kind":"jirabridge-handshake","version":9}`, `{"kind":"jirabridge-handshake","version":1}`} {
		if _, err := ParseFile([]byte(in)); !errors.Is(err, ErrBadFile) {
			t.Errorf("ParseFile(%q) = %v, want ErrBadFile", in, err)
		}
	}
}
