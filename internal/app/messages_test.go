package app

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// seedDB creates a data directory with one sync, a parked change of issue
// ALPHA-1 (with a change waiting behind it) and an applied one.
func seedDB(t *testing.T) (dir string, failureID int64) {
	t.Helper()
	dir = t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.SyncPut(store.Sync{ID: "partner", Name: "partner", Role: store.RoleSlave, State: store.StateRunning}); err != nil {
			return err
		}
		for _, id := range []string{"c1", "c2"} {
			b, _ := json.Marshal(wire.Change{ID: id, IssueID: "10", IssueKey: "ALPHA-1", Kind: wire.IssueUpdate, At: time.Unix(1, 0)})
			if _, _, err := tx.ReplayEnqueue("partner", "10", id, b); err != nil {
				return err
			}
		}
		it, err := tx.ReplayGetByChange("partner", "c1")
		if err != nil {
			return err
		}
		if err := tx.ReplaySetState(it.ID, store.ReplayParked, "jira PUT issue: 400 field customfield_10001 not on screen", time.Time{}, true); err != nil {
			return err
		}
		failureID, err = tx.FailureRecord(store.Failure{SyncID: "partner", ChangeID: "c1", IssueKey: "ALPHA-1", Kind: "issue.update",
			ErrorClass: "jira_rejected", ErrorText: "jira PUT issue: 400 field customfield_10001 not on screen"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, failureID
}

func runCLI(dir string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "JIRABRIDGE_DATA_DIR" {
			return dir
		}
		return ""
	}})
	return code, out.String(), errb.String()
}

func laneStates(t *testing.T, dir string) map[string]store.ReplayState {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, store.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string]store.ReplayState{}
	_ = st.View(context.Background(), func(tx *store.Tx) error {
		for _, id := range []string{"c1", "c2"} {
			it, err := tx.ReplayGetByChange("partner", id)
			if err != nil {
				return err
			}
			out[id] = it.State
		}
		return nil
	})
	return out
}

func TestMessagesListShowRetrySkip(t *testing.T) {
	t.Parallel()
	dir, id := seedDB(t)
	code, out, errs := runCLI(dir, "messages", "list")
	if code != ExitOK || !strings.Contains(out, "ALPHA-1") || !strings.Contains(out, "open") || !strings.Contains(out, "not on screen") {
		t.Fatalf("list: %d\n%s%s", code, out, errs)
	}
	if !strings.HasPrefix(out, "ID ") {
		t.Errorf("list has no header: %q", out)
	}
	code, out, _ = runCLI(dir, "messages", "show", "1")
	for _, want := range []string{"Change:      c1", "Issue:       ALPHA-1", "customfield_10001", "Lane state:  parked", `"issue_key": "ALPHA-1"`} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("show: %d, missing %q in\n%s", code, want, out)
		}
	}
	code, out, errs = runCLI(dir, "messages", "retry", "1")
	if code != ExitOK || !strings.Contains(out, "retrying") {
		t.Fatalf("retry: %d %s %s", code, out, errs)
	}
	if got := laneStates(t, dir); got["c1"] != store.ReplayPending {
		t.Errorf("after retry the change is %s, want pending", got["c1"])
	}
	code, out, _ = runCLI(dir, "messages", "list")
	if code != ExitOK || !strings.Contains(out, "retrying") {
		t.Errorf("list after retry: %s", out)
	}
	code, out, errs = runCLI(dir, "messages", "skip", "1")
	if code != ExitOK || !strings.Contains(out, "skipped") {
		t.Fatalf("skip: %d %s %s", code, out, errs)
	}
	if got := laneStates(t, dir); got["c1"] != store.ReplaySkipped || got["c2"] != store.ReplayPending {
		t.Errorf("after skip lane = %v, want c1 skipped, c2 pending", got)
	}
	if code, out, _ = runCLI(dir, "messages", "list"); code != ExitOK || !strings.Contains(out, "No parked messages") {
		t.Errorf("list after skip: %s", out)
	}
	if code, out, _ = runCLI(dir, "messages", "list", "--all"); code != ExitOK || !strings.Contains(out, "skipped") {
		t.Errorf("list --all: %s", out)
	}
	if code, _, errs = runCLI(dir, "messages", "retry", "1"); code != ExitFailure || !strings.Contains(errs, "skipped") {
		t.Errorf("retry of a skipped message: %d %s", code, errs)
	}
	_ = id
}

func TestMessagesExitCodes(t *testing.T) {
	t.Parallel()
	dir, _ := seedDB(t)
	cases := []struct {
		args []string
		dir  string
		want int
	}{
		{[]string{"messages"}, dir, ExitUsage},
		{[]string{"messages", "frob"}, dir, ExitUsage},
		{[]string{"messages", "retry"}, dir, ExitUsage},
		{[]string{"messages", "retry", "x"}, dir, ExitUsage},
		{[]string{"messages", "show", "1", "2"}, dir, ExitUsage},
		{[]string{"messages", "list", "extra"}, dir, ExitUsage},
		{[]string{"messages", "list", "--bogus"}, dir, ExitUsage},
		{[]string{"messages", "show", "99"}, dir, ExitFailure},
		{[]string{"messages", "skip", "99"}, dir, ExitFailure},
		{[]string{"messages", "list", "--sync", "nope"}, dir, ExitFailure},
		{[]string{"messages", "list"}, filepath.Join(dir, "missing"), ExitFailure},
		{[]string{"resync", "stray"}, dir, ExitUsage},
		{[]string{"resync", "--sync", "nope"}, dir, ExitFailure},
		{[]string{"resync"}, filepath.Join(dir, "missing"), ExitFailure},
	}
	for _, c := range cases {
		if code, out, errs := runCLI(c.dir, c.args...); code != c.want {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args, code, c.want, out, errs)
		}
	}
}

func TestResyncRecordsRequest(t *testing.T) {
	t.Parallel()
	dir, _ := seedDB(t)
	code, out, errs := runCLI(dir, "resync", "--jql", "key = ALPHA-1")
	if code != ExitOK || !strings.Contains(out, "key = ALPHA-1") {
		t.Fatalf("resync: %d %s %s", code, out, errs)
	}
	if code, _, errs = runCLI(dir, "resync", "--jql", "labels = x"); code != ExitOK {
		t.Fatalf("second resync: %s", errs)
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, store.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var v string
	_ = st.View(context.Background(), func(tx *store.Tx) error {
		v, _, err = tx.CursorGet(engine.ResyncCursor("partner"))
		return err
	})
	var req engine.ResyncRequest
	if err := json.Unmarshal([]byte(v), &req); err != nil {
		t.Fatalf("request %q: %v", v, err)
	}
	if req.JQL != "(key = ALPHA-1) OR (labels = x)" {
		t.Errorf("pending request JQL = %q, want both queries", req.JQL)
	}
}
