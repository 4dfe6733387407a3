package detect

import (
	"strconv"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// Element clocks of watchers and links.
//
// A watcher or an issue link carries no Jira time (adding a watcher does
// not even change the issue's updated time), so when people on both sides
// change the same one before seeing each other's change, the two changes
// cross. Each side therefore keeps, per element, the time of the last
// change of it the bridge knows of: a local person's change it sent, or a
// peer's change it applied. Detection stamps an outgoing change with
// NextStamp(now, element time), which is newer than every change of the
// element this side has seen whatever the two machines' clocks say
// (Lamport's rule); the applier applies an incoming change only when
// PeerWins. Both sides compare the same two times, so both keep the same
// change and converge.
//
// An element is a watcher's local username (KindWatcherClock) or a link
// of the issue as its outward end, LinkClockID(type alias, local id of the
// other issue) (KindLinkClock). The item id "" of either kind is the
// issue's floor: a time every element of the kind has at least, set by a
// resync snapshot, which covers elements the sender does not even know.
// Records written before clocks existed have none: no time known, so the
// peer's change applies, as it always did.
const (
	// KindWatcherClock: ItemID a local username ("" the floor), Version
	// the element time in ms (ClockVersion).
	KindWatcherClock = "watcher-at"
	// KindLinkClock: ItemID LinkClockID(alias, other issue) ("" the
	// floor), Version the element time in ms.
	KindLinkClock = "link-at"
)

// LinkClockID names a link element: the link type alias and the local id
// of the other issue (the issue holding the record is the outward end).
// Link ids are not used: a link removed and made again gets a new id but
// is the same element.
func LinkClockID(typeAlias, otherIssueID string) string { return typeAlias + "|" + otherIssueID }

// ClockVersion is the version of a clock record.
func ClockVersion(t time.Time) string { return MillisVersion(t) }

// ParseClock reads a clock record's version; zero (no time known) when it
// is empty or not a number.
func ParseClock(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// NextStamp is the time of a new change of an element whose last known
// change is at last: now, but at least a millisecond after last, so a
// change made after seeing the peer's is newer than it even when this
// machine's clock is behind the peer's.
func NextStamp(now, last time.Time) time.Time {
	now = now.UTC().Truncate(time.Millisecond)
	if !last.IsZero() && !now.After(last) {
		return last.UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	}
	return now
}

// PeerWins is the conflict rule of watchers and links: the peer's change
// of an element (at peerAt) is applied when no time of the element is
// known here, when it is newer than the element's time here, or when the
// times tie and the peer is the master.
func PeerWins(peerAt, localAt time.Time, peerIsMaster bool) bool {
	if localAt.IsZero() || peerAt.After(localAt) {
		return true
	}
	return peerAt.Equal(localAt) && peerIsMaster
}

// ElementTime is the time of an element given its own record and the
// floor of its kind (either may be missing: "").
func ElementTime(own, floor string) time.Time {
	t, f := ParseClock(own), ParseClock(floor)
	if f.After(t) {
		return f
	}
	return t
}

// IsClockKind reports whether sent items of kind are element clocks:
// they only ever move forward (see MergeClock).
func IsClockKind(kind string) bool { return kind == KindWatcherClock || kind == KindLinkClock }

// MergeClock writes a clock record unless the store already holds a newer
// time: a poll that read the records before the applier recorded a newer
// peer change must not move the element back.
func MergeClock(tx *store.Tx, s store.SentItem) error {
	prev, ok, err := tx.SentGet(s.SyncID, s.IssueID, s.ItemKind, s.ItemID)
	if err != nil {
		return err
	}
	if ok && !ParseClock(s.Version).After(ParseClock(prev)) {
		return nil
	}
	return tx.SentPut(s)
}

// clock returns an element's time as recorded when the issue was read.
func (in *Input) clock(kind, id string) time.Time {
	own, _ := in.SentVersion(kind, id)
	floor, _ := in.SentVersion(kind, "")
	return ElementTime(own, floor)
}

// stamper hands out the stamps of one collection's changes of one kind,
// so two changes of the same element in one poll (a link removed and made
// again) are ordered too.
type stamper struct {
	in   *Input
	kind string
	last map[string]time.Time
}

func (in *Input) stamper(kind string) *stamper {
	return &stamper{in: in, kind: kind, last: map[string]time.Time{}}
}

// next stamps a change of element id and returns the clock record that
// goes with it.
func (s *stamper) next(id string) (time.Time, store.SentItem) {
	last, ok := s.last[id]
	if !ok {
		last = s.in.clock(s.kind, id)
	}
	at := NextStamp(s.in.d.o.Now(), last)
	s.last[id] = at
	return at, s.in.SentItem(s.kind, id, ClockVersion(at))
}

// floor is a stamp newer than every element of the kind known on the
// issue, for a snapshot that covers them all (a resync).
func (in *Input) clockFloor(kind string) time.Time {
	var max time.Time
	for k, v := range in.sent {
		if k.kind == kind {
			if t := ParseClock(v); t.After(max) {
				max = t
			}
		}
	}
	return NextStamp(in.d.o.Now(), max)
}
