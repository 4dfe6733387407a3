package app

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// TestStatusListsWhatWasSkippedOnPurpose: `jirabridge status` prints the
// counts per kind and the newest entries with their reasons, --skipped
// prints them all, and --json carries them.
func TestStatusListsWhatWasSkippedOnPurpose(t *testing.T) {
	t.Parallel()
	master, _, root := fileSites(t)
	master.must("init", "--out", filepath.Join(root, "handshake.json"))
	if out := master.must("status"); !strings.Contains(out, "Skipped on purpose: none\n") {
		t.Errorf("status of a new sync lacks the empty section:\n%s", out)
	}
	syncID := master.status().ID

	ctx := context.Background()
	clk := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	st, err := store.Open(ctx, filepath.Join(master.env["JIRABRIDGE_DATA_DIR"], store.FileName),
		&store.Options{Now: func() time.Time { return clk }})
	if err != nil {
		t.Fatal(err)
	}
	record := func(s store.Skip) {
		t.Helper()
		s.SyncID = syncID
		if err := st.Update(ctx, func(tx *store.Tx) error { return tx.SkipRecord(s) }); err != nil {
			t.Fatal(err)
		}
		clk = clk.Add(time.Minute)
	}
	record(store.Skip{SkipKey: store.SkipKey{Direction: store.SkipIncoming, IssueID: "10001", Kind: store.SkipWatcher, Item: "dave@elsewhere.example"},
		IssueKey: "ABC-2", Reason: "peer user dave@elsewhere.example has no match here"})
	record(store.Skip{SkipKey: store.SkipKey{Direction: store.SkipOutgoing, IssueID: "10000", Kind: store.SkipLink, Item: "5001"},
		IssueKey: "ABC-1", Reason: "other end ABC-9 is not in the sync"})
	// More attachments than status shows without --skipped.
	for i := range statusSkippedNewest {
		record(store.Skip{SkipKey: store.SkipKey{Direction: store.SkipOutgoing, IssueID: "10003", Kind: store.SkipAttachment, Item: fmt.Sprint(700 + i)},
			IssueKey: "ABC-3", Reason: fmt.Sprintf("attachment a%d.iso (30.0 MB, application/octet-stream) is over attachments.max_size_mb 10", i)})
	}
	st.Close()
	total := statusSkippedNewest + 2

	out := master.must("status")
	for _, want := range []string{
		fmt.Sprintf("Skipped on purpose: 1 link, 1 watcher, %d attachments\n", statusSkippedNewest),
		fmt.Sprintf("  the newest %d (jirabridge status --skipped lists all %d):\n", statusSkippedNewest, total),
		"  - ABC-3 attachment 709 (not sent), last seen 2026-11-24T08:11:00Z\n      attachment a9.iso (30.0 MB, application/octet-stream) is over attachments.max_size_mb 10\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ABC-2") || strings.Contains(out, "ABC-1 link") {
		t.Errorf("status shows more than the newest %d:\n%s", statusSkippedNewest, out)
	}

	all := master.must("status", "--skipped")
	for _, want := range []string{
		"  - ABC-1 link 5001 (not sent), last seen 2026-11-24T08:01:00Z\n      other end ABC-9 is not in the sync\n",
		"  - ABC-2 watcher dave@elsewhere.example (not applied here), last seen 2026-11-24T08:00:00Z\n      peer user dave@elsewhere.example has no match here\n",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("status --skipped lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "--skipped lists all") || strings.Count(all, "\n  - ") != total {
		t.Errorf("status --skipped does not list all %d:\n%s", total, all)
	}

	r := master.status()
	if r.Skipped.Total != total || r.Skipped.Counts["link"] != 1 || r.Skipped.Counts["watcher"] != 1 || r.Skipped.Counts["comment"] != 0 ||
		len(r.Skipped.Items) != statusSkippedNewest || r.Skipped.Items[0].Item != "709" {
		t.Errorf("status --json skipped: %+v", r.Skipped)
	}
	var rall statusReport
	if err := json.Unmarshal([]byte(master.must("status", "--json", "--skipped")), &rall); err != nil {
		t.Fatal(err)
	}
	if n := len(rall.Skipped.Items); n != total {
		t.Errorf("status --json --skipped: %d items, want %d", n, total)
	}
	last := rall.Skipped.Items[total-1]
	if last.IssueKey != "ABC-2" || last.Direction != "incoming" || last.Kind != "watcher" || !last.FirstSeen.Equal(time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("oldest item: %+v", last)
	}
}
