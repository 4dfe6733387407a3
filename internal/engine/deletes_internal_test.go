package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

type quietPoller struct{}

func (quietPoller) Poll(context.Context) (detect.Result, error) { return detect.Result{}, nil }

// TestSweepTrustsA404OnlyWithBrowse drives the delete sweep alone: an
// issue that is really gone is told to the peer; when the sync user lost
// Browse Projects (every issue looks gone) nothing is, and the error says
// what to grant.
func TestSweepTrustsA404OnlyWithBrowse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := enginetest.NewClock(time.Millisecond)
	_, beta := enginetest.NewPair(t, clk)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName), &store.Options{Now: clk.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	admin := beta.Client(t, "admin")
	var pairs []store.IssuePair
	for i, summary := range []string{"stays", "deleted"} {
		ref, err := admin.CreateIssue(ctx, map[string]any{"project": map[string]string{"key": beta.Project},
			"issuetype": map[string]string{"name": "Bug"}, "summary": summary}, nil)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, store.IssuePair{SyncID: "s", LocalID: ref.ID, LocalKey: ref.Key, PeerID: fmt.Sprint(900 + i), PeerKey: fmt.Sprint("ALPHA-", i+1)})
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.SyncPut(store.Sync{ID: "s", Name: "s", Role: store.RoleSlave, ProjectKey: beta.Project, SyncUser: enginetest.SyncUser,
			Transport: "loopback", State: store.StateRunning, SelfNode: "beta", PeerNode: "alpha"}); err != nil {
			return err
		}
		for _, p := range pairs {
			if err := tx.PairPut(p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(Config{Store: st, Jira: beta.Sync, Mapping: beta.Mapping, SyncID: "s", Node: "beta",
		SyncUser: enginetest.SyncUser, Location: time.UTC, Now: clk.Now, DeleteSweepEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	n.poller = quietPoller{}
	if err := admin.DeleteIssue(ctx, pairs[1].LocalKey); err != nil {
		t.Fatal(err)
	}
	pending := func() []wire.Change {
		t.Helper()
		var out []wire.Change
		if err := st.View(ctx, func(tx *store.Tx) error {
			ps, err := tx.PendingList("s", 100)
			for _, p := range ps {
				var c wire.Change
				if err := json.Unmarshal(p.Change, &c); err != nil {
					return err
				}
				out = append(out, c)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Without Browse Projects both issues would look gone: the sweep
	// fails (Jira refuses the project search, or the permission check
	// refuses the 404s) and nothing is deleted.
	if err := beta.Sim.SetPermission(beta.Project, "BROWSE_PROJECTS"); err != nil {
		t.Fatal(err)
	}
	k, err := n.sweepDeletes(ctx)
	if k != 0 || err == nil {
		t.Fatalf("sweep without browse: %d deletes, err %v; want 0 and an error", k, err)
	}
	if ps := pending(); len(ps) != 0 {
		t.Fatalf("pending after the refused sweep: %+v", ps)
	}
	if err := beta.Sim.SetPermission(beta.Project, "BROWSE_PROJECTS", "loggedin"); err != nil {
		t.Fatal(err)
	}
	// The failed sweep is tried again after a while, not at once.
	for n.steps+1 < n.sweepAt {
		if k, err := n.sweepDeletes(ctx); k != 0 || err != nil {
			t.Fatalf("sweep before it is due: %d, %v", k, err)
		}
	}
	k, err = n.sweepDeletes(ctx)
	if k != 1 || err != nil {
		t.Fatalf("sweep with browse: %d deletes, %v; want 1", k, err)
	}
	ps := pending()
	if len(ps) != 1 || ps[0].Kind != wire.IssueDelete || ps[0].IssueID != pairs[1].LocalID || ps[0].PeerIssueID != pairs[1].PeerID {
		t.Fatalf("pending = %+v, want the delete of %s", ps, pairs[1].LocalKey)
	}
	if err := st.View(ctx, func(tx *store.Tx) error {
		if _, err := tx.PairByLocal("s", pairs[1].LocalID); err == nil {
			t.Error("the deleted issue's pair is still there")
		}
		_, err := tx.PairByLocal("s", pairs[0].LocalID)
		return err
	}); err != nil {
		t.Fatalf("the other pair: %v", err)
	}
}
