package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/transport"
)

// TestRunningMasterRefusesForgedHandshake: a Handshake message made without
// the file's secret arrives in the running master's mailbox; it is
// quarantined and counted, and the genuine slave still joins afterwards.
func TestRunningMasterRefusesForgedHandshake(t *testing.T) {
	t.Parallel()
	envOf, srv := mailtestServer(t)
	master, slave, root := fileSites(t)
	for _, s := range []*site{master, slave} {
		name := "alpha"
		if s == slave {
			name = "beta"
		}
		delete(s.env, "JIRABRIDGE_FILEDROP_OUTGOING_DIR")
		delete(s.env, "JIRABRIDGE_FILEDROP_INCOMING_DIR")
		for k, v := range envOf(name) {
			s.env[k] = v
		}
	}
	hs := filepath.Join(root, "hs.json")
	master.must("init", "--out", hs)
	md := startDaemon(t, master)

	// A forger who knows the public parts of the file but not its secret.
	f, err := handshake.ReadFile(hs)
	if err != nil {
		t.Fatal(err)
	}
	f.Secret = strings.Repeat("A", 43)
	st, err := store.Open(context.Background(), filepath.Join(root, "forger", store.FileName), &store.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var e store.OutboxEntry
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		s, err := handshake.Join(tx, f, handshake.JoinParams{ProjectKey: "X", SyncUser: "x", Transport: "smtp+imap"})
		if err != nil {
			return err
		}
		e, err = tx.OutboxGet(s.ID, 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := transport.EncodeMail(transport.Outgoing{
		Meta:   transport.Meta{Sync: f.SyncID, SyncName: f.SyncName, Sender: "node-forger", Seq: 1, Kind: e.Kind},
		Sealed: e.Sealed,
	}, transport.MailHeader{From: "forger@example.invalid", To: []string{srv.Address("alpha", "")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Deliver("alpha", raw); err != nil {
		t.Fatal(err)
	}
	md.waitStatus(t, "the forged handshake in quarantine", 30*time.Second, func(st daemonStatus) bool {
		return st.Quarantined == 1
	})
	if st := master.status(); st.State != "CREATED" || st.PeerNode != "" {
		t.Fatalf("master after a forged handshake: %+v", st)
	}

	// The genuine slave joins.
	slave.must("join", hs)
	sd := startDaemon(t, slave)
	md.waitStatus(t, "the genuine handshake (master)", 30*time.Second, func(st daemonStatus) bool { return st.State == "STOPPED" }, sd)
	sd.waitStatus(t, "the genuine handshake (slave)", 30*time.Second, func(st daemonStatus) bool { return st.State == "STOPPED" }, md)
	_ = os.Remove(hs)
}
