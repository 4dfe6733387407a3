package app

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// statusSkippedNewest is how many skipped items `jirabridge status` shows
// without --skipped.
const statusSkippedNewest = 10

// skippedReport is the "Skipped on purpose" part of status: what the
// bridge leaves out of the sync by design (links to issues that are not
// synced, watchers the user policy cannot map, filtered attachments,
// restricted comments), per kind and item, from the store.
type skippedReport struct {
	Total  int            `json:"total"`
	Counts map[string]int `json:"counts"` // per kind, both directions
	// Items are the most recently seen first: the newest
	// statusSkippedNewest, or all with --skipped.
	Items []skippedItem `json:"items,omitempty"`
}

type skippedItem struct {
	IssueKey  string    `json:"issue_key"`
	IssueID   string    `json:"issue_id"`
	Direction string    `json:"direction"` // outgoing: not sent; incoming: not applied here
	Kind      string    `json:"kind"`
	Item      string    `json:"item"`
	Reason    string    `json:"reason"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// gatherSkipped reads the counts and the newest limit items (all when
// limit < 0) in tx.
func gatherSkipped(tx *store.Tx, syncID string, limit int) (skippedReport, error) {
	r := skippedReport{Counts: map[string]int{}}
	counts, err := tx.SkipCounts(syncID)
	if err != nil {
		return r, err
	}
	for _, k := range store.SkipKinds {
		r.Counts[string(k)] = counts[k]
		r.Total += counts[k]
	}
	const page = 1000
	for off := 0; limit < 0 || off < limit; off += page {
		n := page
		if limit >= 0 {
			n = min(page, limit-off)
		}
		ss, err := tx.SkipList(syncID, store.SkipQuery{Offset: off, Limit: n})
		if err != nil {
			return r, err
		}
		for _, s := range ss {
			r.Items = append(r.Items, skippedItem{IssueKey: s.IssueKey, IssueID: s.IssueID, Direction: string(s.Direction),
				Kind: string(s.Kind), Item: s.Item, Reason: s.Reason, FirstSeen: s.FirstSeenAt.UTC(), LastSeen: s.LastSeenAt.UTC()})
		}
		if len(ss) < n {
			break
		}
	}
	return r, nil
}

// contentSkippedOf is the daemon's /status content_skipped object, from
// the store: it counts both directions, and survives restarts.
func contentSkippedOf(r skippedReport) *contentSkipped {
	return &contentSkipped{
		SkippedLinks: int64(r.Counts[string(store.SkipLink)]), UnmappableWatchers: int64(r.Counts[string(store.SkipWatcher)]),
		FilteredAttachments: int64(r.Counts[string(store.SkipAttachment)]), RestrictedComments: int64(r.Counts[string(store.SkipComment)]),
		Total: int64(r.Total),
	}
}

// printSkipped prints the "Skipped on purpose" section; all says whether
// r holds every item (--skipped).
func printSkipped(w io.Writer, r skippedReport, all bool) {
	if r.Total == 0 {
		fmt.Fprintln(w, "Skipped on purpose: none")
		return
	}
	var parts []string
	for _, k := range store.SkipKinds {
		if n := r.Counts[string(k)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, plural(string(k), n)))
		}
	}
	fmt.Fprintf(w, "Skipped on purpose: %s\n", strings.Join(parts, ", "))
	if !all && r.Total > len(r.Items) {
		fmt.Fprintf(w, "  the newest %d (jirabridge status --skipped lists all %d):\n", len(r.Items), r.Total)
	}
	for _, it := range r.Items {
		key := it.IssueKey
		if key == "" {
			key = "issue " + it.IssueID
		}
		what := "not sent"
		if it.Direction == string(store.SkipIncoming) {
			what = "not applied here"
		}
		fmt.Fprintf(w, "  - %s %s %s (%s), last seen %s\n", key, it.Kind, it.Item, what, it.LastSeen.Format(time.RFC3339))
		fmt.Fprintf(w, "      %s\n", it.Reason)
	}
}

func plural(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
