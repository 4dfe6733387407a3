package link

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
)

// batch seals due pending changes into outbox envelopes. A batch is due
// when N changes or B bytes are pending or the oldest waited Linger. Each
// round is one transaction: sequence numbers are assigned, envelopes
// sealed and appended, and the pending rows deleted together, so a crash
// leaves either the pending changes or the envelopes, never both or none.
func (l *Link) batch(ctx context.Context) error {
	for range 1000 {
		var st store.PendingStats
		if err := l.st.View(ctx, func(tx *store.Tx) error {
			var err error
			st, err = tx.PendingStats(l.o.SyncID)
			return err
		}); err != nil {
			return fmt.Errorf("link batch: pending stats: %w", err)
		}
		if st.Count == 0 {
			return nil
		}
		due := st.Count >= l.o.MaxBatchChanges || st.Bytes >= int64(l.o.MaxBatchBytes) ||
			!l.o.Now().Before(st.Oldest.Add(l.o.Linger))
		if !due {
			return nil
		}
		if err := l.st.Update(ctx, l.sealRound); err != nil {
			return fmt.Errorf("link batch: %w", err)
		}
		l.Wake()
	}
	return nil
}

func (l *Link) sealRound(tx *store.Tx) error {
	keys, err := loadSealKeys(tx, l.o.SyncID)
	if err != nil {
		return err
	}
	list, err := tx.PendingList(l.o.SyncID, l.o.MaxBatchChanges)
	if err != nil {
		return err
	}
	cur, err := tx.InboxCursor(l.o.SyncID, l.peer)
	if err != nil {
		return err
	}
	var (
		batch []wire.Change
		ids   []int64
		size  int
		cnt   Counters
	)
	seal := func(changes []wire.Change, pendingIDs []int64) error {
		if len(changes) == 0 {
			return nil
		}
		seq, err := l.appendChanges(tx, keys, cur.Contiguous, changes)
		if errors.Is(err, errTooBig) && len(changes) == 1 {
			// One change too large for any mail (not an attachment, which
			// would be chunked): park it for the operator.
			cnt.BadPending++
			if _, err := tx.FailureRecord(store.Failure{SyncID: l.o.SyncID, ChangeID: changes[0].ID,
				IssueKey: changes[0].IssueKey, Kind: string(changes[0].Kind), ErrorClass: "too_large",
				ErrorText: err.Error()}); err != nil {
				return err
			}
			return tx.PendingDelete(pendingIDs...)
		}
		if err != nil {
			return err
		}
		if err := tx.PendingDelete(pendingIDs...); err != nil {
			return err
		}
		cnt.EnvelopesSealed++
		cnt.ChangesSealed += int64(len(changes))
		for _, c := range changes {
			cnt.kind(string(c.Kind))
		}
		l.log.Debug("envelope sealed", "seq", seq, "changes", len(changes))
		return nil
	}
	flush := func() error {
		err := seal(batch, ids)
		batch, ids, size = nil, nil, 0
		return err
	}
	for _, p := range list {
		var c wire.Change
		err := json.Unmarshal(p.Change, &c)
		if err == nil {
			err = c.Validate()
		}
		if err == nil && c.Kind == wire.AttachmentChunk {
			err = errors.New("chunk changes are made by the link, not queued")
		}
		if err == nil && c.Attachment != nil && len(c.Attachment.Data) > l.o.ChunkSize {
			if err = flush(); err != nil {
				return err
			}
			var final wire.Change
			final, err = l.sealChunks(tx, keys, cur.Contiguous, c, &cnt)
			if err == nil {
				batch, ids, size = []wire.Change{final}, []int64{p.ID}, 512
				continue
			}
			if !errors.Is(err, errBadAttachment) {
				return err
			}
		}
		if err != nil {
			// The engine queued something the wire cannot carry: park it
			// for the operator instead of blocking every later change.
			cnt.BadPending++
			if _, ferr := tx.FailureRecord(store.Failure{
				SyncID: l.o.SyncID, ChangeID: "pending/" + strconv.FormatInt(p.ID, 10), IssueKey: p.Issue,
				Kind: "pending-undecodable", ErrorClass: "invalid_change", ErrorText: err.Error(),
			}); ferr != nil {
				return ferr
			}
			if err := tx.PendingDelete(p.ID); err != nil {
				return err
			}
			continue
		}
		if len(batch) > 0 && size+len(p.Change) > l.o.MaxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, c)
		ids = append(ids, p.ID)
		size += len(p.Change)
	}
	if err := flush(); err != nil {
		return err
	}
	for kind, n := range cnt.kinds {
		l.o.Metrics.Add(metrics.ChangesSent, float64(n), kind)
	}
	l.count(func(c *Counters) {
		c.EnvelopesSealed += cnt.EnvelopesSealed
		c.ChangesSealed += cnt.ChangesSealed
		c.ChunksSent += cnt.ChunksSent
		c.BadPending += cnt.BadPending
	})
	return nil
}

// appendChanges seals changes under the next sequence number and appends
// the envelope to the outbox.
func (l *Link) appendChanges(tx *store.Tx, keys sealKeys, ack uint64, changes []wire.Change) (uint64, error) {
	seq, err := tx.OutboxNextSeq(l.o.SyncID)
	if err != nil {
		return 0, err
	}
	if seq >= ControlSeqBase {
		return 0, errors.New("outbox sequence exhausted")
	}
	body, err := wire.EncodeChanges(changes)
	if err != nil {
		return 0, fmt.Errorf("encode envelope %d: %w", seq, err)
	}
	sealed, err := wire.Seal(wire.Envelope{Header: wire.Header{
		Sync: l.o.SyncID, Sender: keys.self, Seq: seq, Ack: ack, Kind: wire.KindChanges, Created: l.o.Now(),
	}, Body: body}, keys.signer, keys.recipient)
	if err != nil {
		return 0, fmt.Errorf("seal envelope %d: %w", seq, err)
	}
	if int64(len(sealed)) > sealedBudget(l.o.MaxMailSize) {
		return 0, fmt.Errorf("envelope %d is %d bytes sealed, more than a mail of %d bytes carries: %w",
			seq, len(sealed), l.o.MaxMailSize, errTooBig)
	}
	got, err := tx.OutboxAppend(l.o.SyncID, wire.KindChanges, sealed)
	if err != nil {
		return 0, err
	}
	if got != seq {
		return 0, fmt.Errorf("outbox assigned %d, sealed as %d", got, seq)
	}
	return seq, nil
}

var (
	errBadAttachment = errors.New("bad attachment")
	errTooBig        = errors.New("too large for one mail")
)

// sealChunks splits a large attachment change into chunk envelopes (one
// chunk each, consecutive numbers) and returns the attachment change to
// send after them, its Data replaced by a reference.
func (l *Link) sealChunks(tx *store.Tx, keys sealKeys, ack uint64, c wire.Change, cnt *Counters) (wire.Change, error) {
	data := c.Attachment.Data
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	if c.Attachment.SHA256 != "" && c.Attachment.SHA256 != hexSum {
		return wire.Change{}, fmt.Errorf("attachment %s of change %s: SHA256 does not match its data: %w",
			c.Attachment.ID, c.ID, errBadAttachment)
	}
	n := (len(data) + l.o.ChunkSize - 1) / l.o.ChunkSize
	for i := range n {
		part := data[i*l.o.ChunkSize : min(len(data), (i+1)*l.o.ChunkSize)]
		ps := sha256.Sum256(part)
		ch := wire.Change{
			ID: c.ID + "/chunk/" + strconv.Itoa(i), IssueID: c.IssueID, IssueKey: c.IssueKey,
			Kind: wire.AttachmentChunk, At: c.At,
			Chunk: &wire.Chunk{Ref: c.ID, Index: i, Count: n, SHA256: hex.EncodeToString(ps[:]), Data: part},
		}
		if _, err := l.appendChanges(tx, keys, ack, []wire.Change{ch}); err != nil {
			return wire.Change{}, fmt.Errorf("chunk %d/%d of change %s: %w", i+1, n, c.ID, err)
		}
		cnt.EnvelopesSealed++
		cnt.ChangesSealed++
		cnt.ChunksSent++
	}
	final := c
	a := *c.Attachment
	a.Data, a.ChunkRef, a.SHA256, a.Size = nil, c.ID, hexSum, int64(len(data))
	final.Attachment = &a
	return final, nil
}

// sendUnsent hands never-sent outbox envelopes to the Sender, lowest first.
func (l *Link) sendUnsent(ctx context.Context) error {
	if l.o.Now().Before(l.waitUntil()) {
		return nil
	}
	for range 100 {
		var list []store.OutboxEntry
		if err := l.st.View(ctx, func(tx *store.Tx) error {
			var err error
			list, err = tx.OutboxNextUnsent(l.o.SyncID, 100)
			return err
		}); err != nil {
			return fmt.Errorf("link send: list unsent: %w", err)
		}
		if len(list) == 0 {
			return nil
		}
		for _, e := range list {
			if err := l.sendEntry(ctx, e); err != nil {
				return err
			}
			l.count(func(c *Counters) { c.EnvelopesSent++ })
		}
	}
	return nil
}

// errBackingOff: a control was not sent because the sender is backing
// off; the state that wanted it wants it again later.
var errBackingOff = errors.New("sender backing off")

// send serialises sends: the receive goroutine answers resend requests
// while Step sends, and transports need not be safe for concurrent use.
func (l *Link) send(ctx context.Context, o transport.Outgoing) error {
	l.sendM.Lock()
	defer l.sendM.Unlock()
	return l.o.Sender.Send(ctx, o)
}

func (l *Link) waitUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sendWait
}

// sendEntry sends one outbox envelope (first send or re-send) and records
// the result. A retryable error backs the sender off and is returned so
// the round stops; a permanent one is recorded as a failure too.
func (l *Link) sendEntry(ctx context.Context, e store.OutboxEntry) error {
	err := l.send(ctx, transport.Outgoing{Meta: l.meta(e.Seq, e.Kind), Sealed: e.Sealed})
	if err != nil {
		l.sendFailed(ctx, err)
		if uerr := l.st.Update(ctx, func(tx *store.Tx) error {
			if err := tx.OutboxMarkSendFailed(l.o.SyncID, e.Seq, err.Error()); err != nil {
				return err
			}
			if errclass.IsRetryable(err) {
				return nil
			}
			_, err := tx.FailureRecord(store.Failure{SyncID: l.o.SyncID, ChangeID: "send/" + strconv.FormatUint(e.Seq, 10),
				Kind: "send-failed", ErrorClass: errclass.Of(err).String(), ErrorText: err.Error()})
			return err
		}); uerr != nil {
			return errors.Join(err, uerr)
		}
		return fmt.Errorf("link send envelope %d: %w", e.Seq, err)
	}
	l.sendOK()
	ack := uint64(0)
	if h, err := wire.PeekHeader(e.Sealed); err == nil {
		ack = h.Ack // our own bytes: the header is what we sealed
	}
	if err := l.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.OutboxMarkSent(l.o.SyncID, e.Seq); err != nil {
			return err
		}
		if ack > 0 {
			return l.ackSent(tx, ack)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("link send envelope %d: record sent: %w", e.Seq, err)
	}
	l.o.Metrics.Inc(metrics.EnvelopesSent, e.Kind)
	return nil
}

// ackSent records an ack that went out, keeping the maximum.
func (l *Link) ackSent(tx *store.Tx, ack uint64) error {
	ls, err := tx.LinkGet(l.o.SyncID)
	if err != nil {
		return err
	}
	if ack > ls.AckSent {
		return tx.LinkAckSent(l.o.SyncID, ack)
	}
	return nil
}

func (l *Link) meta(seq uint64, kind string) transport.Meta {
	return transport.Meta{Sync: l.o.SyncID, SyncName: l.name, Sender: l.self, Seq: seq, Kind: kind}
}

func (l *Link) sendFailed(ctx context.Context, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c.SendErrors++
	l.o.Metrics.Inc(metrics.TransportErrors, "link", errclass.Of(err).String())
	wait := l.sendBackOff
	if !errclass.IsRetryable(err) {
		wait = l.o.PermanentBackOff
	} else if d := errclass.RetryAfter(err); d > wait {
		wait = d
	} else {
		l.sendBackOff = min(2*l.sendBackOff, l.o.PermanentBackOff)
	}
	l.sendWait = l.o.Now().Add(wait)
	l.log.Warn("send failed, backing off", "error", err, "wait", wait.String())
	_ = ctx
}

func (l *Link) sendOK() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sendBackOff = l.o.SendBackOff
	l.sendWait = time.Time{}
	l.lastSendAt = l.o.Now()
}

// Control message types and their payload.
const (
	CtlAck       = "ack"
	CtlHeartbeat = "heartbeat"
	CtlResend    = "resend"
	CtlPruned    = "pruned"
)

// Control is the payload of every control envelope. Highest is the highest
// number the sender has sent in its changes sequence, so a lost last
// envelope is noticed as a gap; Ranges are the numbers a resend request
// asks for or a pruned notice says are gone.
type Control struct {
	Highest uint64      `json:"highest"`
	Ranges  [][2]uint64 `json:"ranges,omitempty"`
}

// sendControl seals and sends one control envelope. It is not stored: if
// it is lost, the state that caused it causes it again.
func (l *Link) sendControl(ctx context.Context, typ string, ranges [][2]uint64) error {
	if l.o.Now().Before(l.waitUntil()) {
		return errBackingOff
	}
	var sealed []byte
	var seq, ack uint64
	err := l.st.Update(ctx, func(tx *store.Tx) error {
		keys, err := loadSealKeys(tx, l.o.SyncID)
		if err != nil {
			return err
		}
		name := "link/" + l.o.SyncID + "/control_out"
		v, _, err := tx.CursorGet(name)
		if err != nil {
			return err
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		n++
		if err := tx.CursorSet(name, strconv.FormatUint(n, 10)); err != nil {
			return err
		}
		seq = ControlSeqBase + n
		cur, err := tx.InboxCursor(l.o.SyncID, l.peer)
		if err != nil {
			return err
		}
		ack = cur.Contiguous
		st, err := tx.OutboxStats(l.o.SyncID)
		if err != nil {
			return err
		}
		body, err := wire.EncodeControl(typ, Control{Highest: st.HighestSent, Ranges: ranges})
		if err != nil {
			return err
		}
		sealed, err = wire.Seal(wire.Envelope{Header: wire.Header{
			Sync: l.o.SyncID, Sender: keys.self, Seq: seq, Ack: ack, Kind: wire.KindControl, Created: l.o.Now(),
		}, Body: body}, keys.signer, keys.recipient)
		return err
	})
	if err != nil {
		return fmt.Errorf("link seal %s control: %w", typ, err)
	}
	if err := l.send(ctx, transport.Outgoing{Meta: l.meta(seq, wire.KindControl), Sealed: sealed}); err != nil {
		l.sendFailed(ctx, err)
		return fmt.Errorf("link send %s control: %w", typ, err)
	}
	l.sendOK()
	l.o.Metrics.Inc(metrics.EnvelopesSent, wire.KindControl)
	l.count(func(c *Counters) {
		c.ControlsSent++
		switch typ {
		case CtlAck:
			c.AcksSent++
		case CtlHeartbeat:
			c.HeartbeatsSent++
		}
	})
	return l.st.Update(ctx, func(tx *store.Tx) error {
		if typ == CtlHeartbeat {
			if err := tx.LinkHeartbeatSent(l.o.SyncID); err != nil {
				return err
			}
		}
		return l.ackSent(tx, ack)
	})
}

// sendAckOrHeartbeat sends an ack alone when one has waited AckDelay for
// an envelope to ride on, and a heartbeat when nothing was sent for
// HeartbeatInterval.
func (l *Link) sendAckOrHeartbeat(ctx context.Context) error {
	var cur store.InboxCursor
	var ls store.LinkState
	if err := l.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if cur, err = tx.InboxCursor(l.o.SyncID, l.peer); err != nil {
			return err
		}
		ls, err = tx.LinkGet(l.o.SyncID)
		return err
	}); err != nil {
		return fmt.Errorf("link ack check: %w", err)
	}
	now := l.o.Now()
	l.mu.Lock()
	ackDue := false
	if cur.Contiguous > ls.AckSent {
		if l.ackDueSince.IsZero() {
			l.ackDueSince = now
		}
		ackDue = !now.Before(l.ackDueSince.Add(l.o.AckDelay))
	} else {
		l.ackDueSince = time.Time{}
	}
	hbDue := l.lastSendAt.IsZero() || !now.Before(l.lastSendAt.Add(l.o.HeartbeatInterval))
	l.mu.Unlock()
	switch {
	case hbDue:
		return l.sendControl(ctx, CtlHeartbeat, nil)
	case ackDue:
		return l.sendControl(ctx, CtlAck, nil)
	}
	return nil
}

// checkGaps asks the peer for the numbers of every gap open longer than
// GapTimeout, at most once per GapTimeout.
func (l *Link) checkGaps(ctx context.Context) error {
	now := l.o.Now()
	l.mu.Lock()
	recent := !l.lastResendAt.IsZero() && now.Before(l.lastResendAt.Add(l.o.GapTimeout))
	peerHighest, tailSince := l.peerHighest, l.tailSince
	l.mu.Unlock()
	if recent {
		return nil
	}
	var ranges [][2]uint64
	var numbers int64
	if err := l.st.View(ctx, func(tx *store.Tx) error {
		cur, err := tx.InboxCursor(l.o.SyncID, l.peer)
		if err != nil {
			return err
		}
		gaps, err := tx.InboxGaps(l.o.SyncID, l.peer)
		if err != nil {
			return err
		}
		top := max(cur.HighestSeen, cur.Contiguous)
		if peerHighest > top && !tailSince.IsZero() {
			gaps = append(gaps, store.Gap{From: top + 1, To: peerHighest, FirstSeen: tailSince})
		}
		for _, g := range gaps {
			if now.Before(g.FirstSeen.Add(l.o.GapTimeout)) {
				continue
			}
			to := g.To
			if left := uint64(l.o.MaxResend) - uint64(numbers); to-g.From+1 > left {
				to = g.From + left - 1
			}
			ranges = append(ranges, [2]uint64{g.From, to})
			numbers += int64(to - g.From + 1)
			if numbers >= int64(l.o.MaxResend) {
				break
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("link gap check: %w", err)
	}
	if len(ranges) == 0 {
		return nil
	}
	if err := l.sendControl(ctx, CtlResend, ranges); err != nil {
		return err
	}
	// When it was asked is durable, so ops can tell an answer overdue
	// (also across a restart) from a gap not asked for yet.
	if err := l.recordAsks(ctx, ranges, now); err != nil {
		l.log.Warn("resend request sent but not recorded", "err", err)
	}
	l.mu.Lock()
	l.lastResendAt = now
	l.c.ResendAsked++
	l.c.ResendNumbers += numbers
	l.mu.Unlock()
	l.o.Metrics.Inc(metrics.ResendRequests, "asked")
	l.log.Info("asked peer to resend", "ranges", fmt.Sprint(ranges), "numbers", numbers)
	return nil
}

// answerResend re-sends the requested envelopes from the outbox, the same
// sealed bytes, and answers numbers already pruned with a pruned notice.
func (l *Link) answerResend(ctx context.Context, ranges [][2]uint64) error {
	var pruned [][2]uint64
	budget := l.o.MaxResend
	var errs []error
	for _, r := range ranges {
		for s := r[0]; s <= r[1] && s >= r[0] && budget > 0; s++ {
			budget--
			var e store.OutboxEntry
			err := l.st.View(ctx, func(tx *store.Tx) error {
				var err error
				e, err = tx.OutboxGet(l.o.SyncID, s)
				return err
			})
			switch {
			case errors.Is(err, store.ErrPruned):
				pruned = appendRange(pruned, s)
				continue
			case errors.Is(err, store.ErrNotFound):
				continue // never assigned: the request is ahead of us
			case err != nil:
				errs = append(errs, err)
				continue
			}
			if err := l.sendEntry(ctx, e); err != nil {
				return errors.Join(append(errs, err)...)
			}
			l.count(func(c *Counters) { c.Resent++ })
			l.o.Metrics.Inc(metrics.ResendRequests, "answered")
		}
	}
	if len(pruned) > 0 {
		var n int64
		for _, r := range pruned {
			n += int64(r[1] - r[0] + 1)
		}
		l.count(func(c *Counters) { c.ResendPruned += n })
		l.o.Metrics.Inc(metrics.ResendRequests, "pruned")
		l.log.Warn("peer asked for pruned envelopes", "ranges", fmt.Sprint(pruned))
		if err := l.sendControl(ctx, CtlPruned, pruned); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func appendRange(rs [][2]uint64, s uint64) [][2]uint64 {
	if n := len(rs); n > 0 && rs[n-1][1]+1 == s {
		rs[n-1][1] = s
		return rs
	}
	return append(rs, [2]uint64{s, s})
}

// prune drops acked outbox envelopes and released inbox envelopes older
// than the retention period, at most once a minute.
func (l *Link) prune(ctx context.Context) error {
	now := l.o.Now()
	l.mu.Lock()
	due := l.lastPrune.IsZero() || !now.Before(l.lastPrune.Add(time.Minute))
	if due {
		l.lastPrune = now
	}
	l.mu.Unlock()
	if !due {
		return nil
	}
	return l.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.OutboxPrune(l.o.SyncID, now.Add(-l.o.Retention)); err != nil {
			return fmt.Errorf("link prune outbox: %w", err)
		}
		if _, err := tx.InboxPurge(now.Add(-l.o.Retention)); err != nil {
			return fmt.Errorf("link purge inbox: %w", err)
		}
		return nil
	})
}

// gauges refreshes the link's gauges.
func (l *Link) gauges(ctx context.Context) error {
	if l.o.Metrics == nil {
		return nil
	}
	return l.st.View(ctx, func(tx *store.Tx) error {
		st, err := tx.OutboxStats(l.o.SyncID)
		if err != nil {
			return err
		}
		l.o.Metrics.Set(metrics.OutboxDepth, float64(st.Depth))
		if !st.OldestUnacked.IsZero() {
			l.o.Metrics.Set(metrics.OutboxOldestAge, l.o.Now().Sub(st.OldestUnacked).Seconds())
		} else {
			l.o.Metrics.Set(metrics.OutboxOldestAge, 0)
		}
		ps, err := tx.PendingStats(l.o.SyncID)
		if err != nil {
			return err
		}
		l.o.Metrics.Set(metrics.PendingChanges, float64(ps.Count))
		held, err := tx.InboxUnreleased(l.o.SyncID)
		if err != nil {
			return err
		}
		l.o.Metrics.Set(metrics.InboxDepth, float64(held))
		ls, err := tx.LinkGet(l.o.SyncID)
		if err != nil {
			return err
		}
		if !ls.LastHeardAt.IsZero() {
			l.o.Metrics.Set(metrics.PeerLastHeard, float64(ls.LastHeardAt.Unix()))
		}
		return nil
	})
}
