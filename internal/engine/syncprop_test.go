package engine_test

import (
	"context"
	"testing"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
)

func syncState(t *testing.T, s *enginetest.Site, key string) apply.SyncState {
	t.Helper()
	var st apply.SyncState
	ok, err := s.Sync.IssueProperty(context.Background(), key, apply.SyncProperty, &st)
	if err != nil || !ok {
		t.Fatalf("%s: property %s of %s: found %v, %v", s.Name, apply.SyncProperty, key, ok, err)
	}
	return st
}

func openFailures(t *testing.T, b *bridge) []store.Failure {
	t.Helper()
	var fs []store.Failure
	if err := b.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 10, store.FailureOpen)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestSyncPropertyShowsParked: while a change of an issue is parked, the
// issue's jirabridge.sync property says "parked" with the messages id; a
// skip or a retry (made in the store, as `jirabridge messages` does from
// another process) sets it back to "synced".
func TestSyncPropertyShowsParked(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"skip", "retry"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			ctx := context.Background()
			alice := person(t, w.alpha, 0)
			one := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
			w.settle()
			betaKey := w.a.peerKey(t, one.Key)
			if got := syncState(t, w.beta, betaKey); got.State != apply.StateSynced {
				t.Fatalf("state after create = %q, want synced", got.State)
			}
			onScreen := []string{"summary", "description", "priority", "labels", "duedate", "assignee", "reporter",
				w.beta.Field["Estimate"], w.beta.Field["Impact"]}
			if err := w.beta.Sim.SetScreen("BETA", onScreen...); err != nil {
				t.Fatal(err)
			}
			if err := alice.EditIssue(ctx, one.Key, map[string]any{w.alpha.Field["Customer Ref"]: "C-9"}, nil, nil); err != nil {
				t.Fatal(err)
			}
			w.settle()
			fs := openFailures(t, w.b)
			if len(fs) != 1 {
				t.Fatalf("open failures on beta = %+v, want 1", fs)
			}
			got := syncState(t, w.beta, betaKey)
			if got.State != apply.StateParked || got.MessageID != fs[0].ID || got.Direction != engine.DirIncoming ||
				got.Reason != fs[0].ErrorClass || got.PeerIssueKey != one.Key || got.Note == "" {
				t.Errorf("parked property = %+v, want parked, message %d, incoming, reason %q, peer %s", got, fs[0].ID, fs[0].ErrorClass, one.Key)
			}
			// The original on alpha is not parked: its property stays.
			if a := syncState(t, w.alpha, one.Key); a.State != apply.StateSynced {
				t.Errorf("alpha's property = %q, want synced", a.State)
			}
			switch action {
			case "skip":
				if _, err := replay.Skip(ctx, w.b.st, fs[0].ID); err != nil {
					t.Fatal(err)
				}
			case "retry":
				if err := w.beta.Sim.SetScreen("BETA"); err != nil {
					t.Fatal(err)
				}
				if _, err := replay.Retry(ctx, w.b.st, fs[0].ID); err != nil {
					t.Fatal(err)
				}
			}
			w.settle()
			got = syncState(t, w.beta, betaKey)
			if got.State != apply.StateSynced || got.MessageID != 0 || got.Reason != "" || !got.ParkedSince.IsZero() {
				t.Errorf("property after %s = %+v, want synced without parked details", action, got)
			}
			if action == "retry" {
				mustNoDiff(t, w, one.Key)
			}
		})
	}
}

// TestSyncPropertyShowsOutgoingPark: a local change detection cannot
// translate for the peer (a select value the sync definition does not
// map) parks the issue's outgoing lane; the property shows it, and after a
// skip it is "synced" again.
func TestSyncPropertyShowsOutgoingPark(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	// Alpha's definition forgets S3.
	def := *w.alpha.Def
	def.Fields = append([]config.FieldMap(nil), def.Fields...)
	for i, f := range def.Fields {
		if f.Alias == "severity" {
			var vals config.AliasMap
			for _, v := range f.Values {
				if v.Local != "S3" {
					vals = append(vals, v)
				}
			}
			def.Fields[i].Values = vals
		}
	}
	fields, err := w.alpha.Sync.Fields(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(&def, fields, mapping.Options{Users: w.alpha.Sync})
	if err != nil {
		t.Fatal(err)
	}
	w.alpha.Def, w.alpha.Mapping = &def, m
	w.a.restart()

	alice := person(t, w.alpha, 0)
	one := createIssue(t, alice, w.alpha, "Task", map[string]any{"summary": "one"})
	w.settle()
	if err := alice.EditIssue(ctx, one.Key, map[string]any{w.alpha.Field["Severity"]: map[string]string{"value": "S3"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	fs := openFailures(t, w.a)
	if len(fs) != 1 {
		t.Fatalf("open failures on alpha = %+v, want 1 (outgoing)", fs)
	}
	got := syncState(t, w.alpha, one.Key)
	if got.State != apply.StateParked || got.Direction != engine.DirOutgoing || got.MessageID != fs[0].ID {
		t.Errorf("alpha property = %+v, want parked outgoing with message %d", got, fs[0].ID)
	}
	// The peer's changes still arrive, and applying them does not hide
	// the park of the other direction.
	if err := person(t, w.beta, 0).EditIssue(ctx, w.a.peerKey(t, one.Key), map[string]any{"summary": "from beta"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	is, err := w.alpha.Sync.GetIssue(ctx, one.Key, []string{"summary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	if _, err := is.Field("summary", &summary); err != nil || summary != "from beta" {
		t.Errorf("alpha summary %q (%v), want beta's change applied", summary, err)
	}
	if got := syncState(t, w.alpha, one.Key); got.State != apply.StateParked || got.MessageID != fs[0].ID || got.LastChangeID == "" {
		t.Errorf("alpha property after an applied change = %+v, want still parked (message %d) with the applied change", got, fs[0].ID)
	}
	if _, err := replay.Skip(ctx, w.a.st, fs[0].ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := syncState(t, w.alpha, one.Key); got.State != apply.StateSynced || got.MessageID != 0 {
		t.Errorf("alpha property after skip = %+v, want synced", got)
	}
}
