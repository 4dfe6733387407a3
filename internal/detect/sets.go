package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// A resync sends an issue's whole watcher set and link set (wire.WatcherSet,
// wire.LinkSet), so it repairs sets that came apart whatever happened to
// them. A set is stamped newer than every element of its kind known here
// and sets the kind's floor clock (see clock.go): the peer takes it for
// every element unless a person there changed that one more recently.

// Resync sends the issue's whole watcher set (the resyncer of watchers).
func (c *watcherCollector) Resync(ctx context.Context, in *Input, stamp string) ([]Found, error) {
	return oneSet(c.resyncSet(ctx, in, stamp))
}

// Resync sends the issue's whole outward link set (the resyncer of links).
func (c *linkCollector) Resync(ctx context.Context, in *Input, stamp string) ([]Found, error) {
	return oneSet(c.resyncSet(ctx, in, stamp))
}

func oneSet(f Found, ok bool, err error) ([]Found, error) {
	if err != nil || !ok {
		return nil, err
	}
	return []Found{f}, nil
}

func (c *watcherCollector) resyncSet(ctx context.Context, in *Input, stamp string) (Found, bool, error) {
	is := in.Issue
	if busy, err := in.busy(ctx, KindWatchers); err != nil || busy {
		if busy {
			in.d.log.Warn("resync leaves the watchers alone: the peer's watcher change is being applied", "issue", is.Key)
		}
		return Found{}, false, err
	}
	ws, err := in.Jira.Watchers(ctx, is.ID)
	if err != nil {
		return Found{}, false, fmt.Errorf("read watchers: %w", err)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].Name < ws[j].Name })
	prev, _ := in.SentVersion(KindWatchers, "")
	seq, prevNames := ParseWatcherRecord(prev)
	var names []string
	var users []wire.User
	var skips []store.Skip
	var unskips []store.SkipKey
	cur := map[string]bool{}
	for _, u := range ws {
		if in.IsSyncUser(&u) || u.Name == "" {
			continue
		}
		names = append(names, u.Name)
		cur[u.Name] = true
		if wu := in.Author(&u); wu != nil {
			users = append(users, *wu)
		} else if !slices.Contains(prevNames, u.Name) {
			// Left out, as a poll would: counted and listed once (the
			// record below keeps the poll from seeing them as new).
			c.stats.UnmappableWatchers.Add(1)
			skips = append(skips, in.Skip(store.SkipWatcher, u.Name, unmappableWatcherReason(&u, in.Mapping.Def().Users)))
		}
	}
	for _, n := range prevNames {
		if !cur[n] {
			unskips = append(unskips, in.SkipKey(store.SkipWatcher, n)) // gone: no longer skipped
		}
	}
	// The peer's own people this side cannot name stay there.
	users = append(users, in.peerWatchers()...)
	at := in.clockFloor(KindWatcherClock)
	return Found{At: is.Updated(),
		Change: wire.Change{ID: in.ChangeID(ResyncItem(stamp, "w"+is.ID)), IssueID: is.ID, IssueKey: is.Key, Kind: wire.WatcherSet, At: at, Watchers: users},
		Sent:   []store.SentItem{in.SentItem(KindWatchers, "", WatcherRecord(seq, names)), in.SentItem(KindWatcherClock, "", ClockVersion(at))},
		Skips:  skips, Unskips: unskips,
	}, true, nil
}

func (c *linkCollector) resyncSet(ctx context.Context, in *Input, stamp string) (Found, bool, error) {
	is := in.Issue
	if busy, err := in.busy(ctx, KindLink); err != nil || busy {
		if busy {
			in.d.log.Warn("resync leaves the links alone: the peer's link change is being applied", "issue", is.Key)
		}
		return Found{}, false, err
	}
	var ls []jira.IssueLink
	if _, err := is.Field("issuelinks", &ls); err != nil {
		return Found{}, false, err
	}
	var set []wire.Link
	var sent []store.SentItem
	var unskips []store.SkipKey
	present := map[string]bool{}
	for _, l := range ls {
		if l.OutwardIssue == nil || l.ID == "" {
			continue // in the other issue's set
		}
		present[l.ID] = true
		alias, ok := in.Mapping.LinkTypeAlias(l.Type.Name)
		if !ok {
			continue // not synced; the poll records and counts it
		}
		synced, _, err := in.synced(ctx, l.OutwardIssue.ID)
		if err != nil {
			return Found{}, false, err
		}
		if !synced {
			continue
		}
		set = append(set, wire.Link{ID: l.ID, Type: alias, OtherIssueID: l.OutwardIssue.ID, Direction: "outward"})
		sent = append(sent, in.SentItem(KindLink, l.ID, LinkVersion(LinkActive, alias, l.OutwardIssue.ID)))
		unskips = append(unskips, in.SkipKey(store.SkipLink, l.ID))
	}
	// Links recorded as made that are gone: the set says so.
	for _, id := range in.sentIDs(KindLink) {
		v, _ := in.SentVersion(KindLink, id)
		if state, alias, other := ParseLinkVersion(v); !present[id] && state == LinkActive {
			sent = append(sent, in.SentItem(KindLink, id, LinkVersion(LinkRemoved, alias, other)))
		}
	}
	at := in.clockFloor(KindLinkClock)
	sent = append(sent, in.SentItem(KindLinkClock, "", ClockVersion(at)))
	return Found{At: is.Updated(),
		Change:  wire.Change{ID: in.ChangeID(ResyncItem(stamp, "l"+is.ID)), IssueID: is.ID, IssueKey: is.Key, Kind: wire.LinkSet, At: at, Links: set},
		Sent:    sent,
		Unskips: unskips,
	}, true, nil
}

// KindPeerWatcher: the peer's watcher (ItemID PeerWatcherID of the wire
// user) maps to nobody here; Version "1" while they watch, "0" after. A
// resync names them in its watcher set, so the peer, where they exist,
// keeps them instead of removing everyone this side cannot name.
const KindPeerWatcher = "watcher-peer"

// PeerWatcherID is the item id of a KindPeerWatcher record: the wire user
// as JSON (struct order: the same user, the same id).
func PeerWatcherID(u wire.User) string {
	b, _ := json.Marshal(u) // strings only: cannot fail
	return string(b)
}

// peerWatchers lists the peer's watchers recorded as watching there.
func (in *Input) peerWatchers() []wire.User {
	var out []wire.User
	for _, id := range in.sentIDs(KindPeerWatcher) {
		if v, _ := in.SentVersion(KindPeerWatcher, id); v != "1" {
			continue
		}
		var u wire.User
		if json.Unmarshal([]byte(id), &u) == nil {
			out = append(out, u)
		}
	}
	return out
}
