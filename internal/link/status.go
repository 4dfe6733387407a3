package link

import (
	"context"
	"fmt"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// Status is what `jirabridge status` shows about one sync's link.
type Status struct {
	store.LinkStatus
	Self, Peer string
	// Outbound: the highest number assigned, sent at least once, and
	// acked by the peer (also in LinkStatus.Outbox).
	HighestAssigned, HighestSent, HighestAcked uint64
	// Inbound: the highest number the peer announced, the highest we
	// received, the contiguous prefix we hold and the ack we last sent.
	PeerHighest, HighestReceived, Contiguous, AckSent uint64
	// OpenGaps are the inbound runs of missing numbers (the unseen tail
	// the peer announced included).
	OpenGaps []store.Gap
	// OldestUnackedAge is the age of the oldest envelope the peer has not
	// acked; zero when none.
	OldestUnackedAge time.Duration
	// LastHeard is when a valid envelope last came from the peer; Silent
	// is true when that is longer ago than the silence threshold (or
	// never, once the link has run for that long).
	LastHeard time.Time
	Silent    bool
	SilentFor time.Duration
	Counters  Counters
}

// Status gathers the link's status from the store and its own counts.
func (l *Link) Status(ctx context.Context) (Status, error) {
	var s Status
	err := l.st.View(ctx, func(tx *store.Tx) error {
		var err error
		s.LinkStatus, err = tx.LinkStatus(l.o.SyncID)
		return err
	})
	if err != nil {
		return Status{}, fmt.Errorf("link status: %w", err)
	}
	now := l.o.Now()
	s.Self, s.Peer = l.self, l.peer
	s.HighestAssigned, s.HighestSent, s.HighestAcked = s.Outbox.HighestSeq, s.Outbox.HighestSent, s.Outbox.HighestAcked
	in := s.Inbound[l.peer]
	s.HighestReceived, s.Contiguous, s.AckSent = in.Cursor.HighestSeen, in.Cursor.Contiguous, s.LinkState.AckSent
	s.OpenGaps = append([]store.Gap(nil), in.Gaps...)
	l.mu.Lock()
	s.PeerHighest = max(l.peerHighest, s.HighestReceived)
	if top := max(in.Cursor.HighestSeen, in.Cursor.Contiguous); l.peerHighest > top && !l.tailSince.IsZero() {
		s.OpenGaps = append(s.OpenGaps, store.Gap{From: top + 1, To: l.peerHighest, FirstSeen: l.tailSince})
	}
	l.mu.Unlock()
	if !s.Outbox.OldestUnacked.IsZero() {
		s.OldestUnackedAge = now.Sub(s.Outbox.OldestUnacked)
	}
	s.LastHeard = s.LastHeardAt
	s.Silent, s.SilentFor = l.silence(now, s.LastHeardAt)
	s.Counters = l.Counters()
	return s, nil
}

// Silence reports whether the peer has been silent past the threshold,
// and for how long: the alert condition ops polls. A link that never
// heard from its peer counts the silence from when it was built.
func (l *Link) Silence(ctx context.Context) (silent bool, since time.Duration, err error) {
	var ls store.LinkState
	if err := l.st.View(ctx, func(tx *store.Tx) error {
		var err error
		ls, err = tx.LinkGet(l.o.SyncID)
		return err
	}); err != nil {
		return false, 0, fmt.Errorf("link silence: %w", err)
	}
	silent, since = l.silence(l.o.Now(), ls.LastHeardAt)
	return silent, since, nil
}

func (l *Link) silence(now, heard time.Time) (bool, time.Duration) {
	if heard.IsZero() {
		heard = l.started
	}
	d := now.Sub(heard)
	return d >= l.o.SilenceThreshold, d
}
