package link

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// ResendAsksCursor names the store cursor where the link keeps which
// numbers it asked the peer to send again and when (a JSON list of
// ResendAsk). Ops reads it to alert when an answer is overdue; the link
// keeps it in step with the gaps each time it asks.
func ResendAsksCursor(syncID string) string { return "link/" + syncID + "/resend-asks" }

// ResendAsk is a run of numbers the link asked the peer to send again.
// FirstAskedAt survives later asks of the same numbers (the link repeats
// a request every GapTimeout while the gap stays open), so "asked and not
// answered since" can be measured from the first request.
type ResendAsk struct {
	Sender       string    `json:"sender"`
	From         uint64    `json:"from"`
	To           uint64    `json:"to"`
	FirstAskedAt time.Time `json:"first_asked_at"`
	LastAskedAt  time.Time `json:"last_asked_at"`
	Asks         int       `json:"asks"`
}

// Missing reports whether a number of the ask has still not arrived,
// given its sender's inbox cursor and gaps.
func (a ResendAsk) Missing(cur store.InboxCursor, gaps []store.Gap) bool {
	if a.To <= cur.Contiguous {
		return false
	}
	if a.To > max(cur.HighestSeen, cur.Contiguous) {
		return true // above everything held: a tail that never came
	}
	for _, g := range gaps {
		if g.From <= a.To && a.From <= g.To {
			return true
		}
	}
	return false
}

// ResendAsks returns the recorded asks of a sync.
func ResendAsks(tx *store.Tx, syncID string) ([]ResendAsk, error) {
	raw, ok, err := tx.CursorGet(ResendAsksCursor(syncID))
	if err != nil || !ok || raw == "" {
		return nil, err
	}
	var asks []ResendAsk
	if err := json.Unmarshal([]byte(raw), &asks); err != nil {
		return nil, fmt.Errorf("read resend asks of sync %s: %w", syncID, err)
	}
	return asks, nil
}

// recordAsks merges a request just sent into the records, in one
// transaction: each asked range keeps the first ask time of the earlier
// records it overlaps, and records whose numbers all arrived are dropped.
func (l *Link) recordAsks(ctx context.Context, ranges [][2]uint64, now time.Time) error {
	err := l.st.Update(ctx, func(tx *store.Tx) error {
		old, err := ResendAsks(tx, l.o.SyncID)
		if err != nil {
			l.log.Warn("resend ask records unreadable; starting them afresh", "err", err)
			old = nil
		}
		cur, err := tx.InboxCursor(l.o.SyncID, l.peer)
		if err != nil {
			return err
		}
		gaps, err := tx.InboxGaps(l.o.SyncID, l.peer)
		if err != nil {
			return err
		}
		used := make([]bool, len(old))
		var out []ResendAsk
		for _, r := range ranges {
			a := ResendAsk{Sender: l.peer, From: r[0], To: r[1], FirstAskedAt: now, LastAskedAt: now, Asks: 1}
			for i, o := range old {
				if o.Sender != l.peer || o.To < r[0] || r[1] < o.From {
					continue
				}
				used[i] = true
				if o.FirstAskedAt.Before(a.FirstAskedAt) {
					a.FirstAskedAt = o.FirstAskedAt
				}
				a.Asks = max(a.Asks, o.Asks+1)
			}
			out = append(out, a)
		}
		for i, o := range old {
			// Not asked this time (the request's budget ran out), but
			// still missing: keep it, with its times.
			if !used[i] && (o.Sender != l.peer || o.Missing(cur, gaps)) {
				out = append(out, o)
			}
		}
		raw, err := json.Marshal(out)
		if err != nil {
			return err
		}
		return tx.CursorSet(ResendAsksCursor(l.o.SyncID), string(raw))
	})
	if err != nil {
		return fmt.Errorf("record resend request: %w", err)
	}
	return nil
}
