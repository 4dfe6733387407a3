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

	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
)

// Reasons for quarantining beyond wire.Reason's.
const (
	ReasonForeign = "foreign"        // opened, but for another sync or from another node
	ReasonBadSeq  = "bad_seq"        // a sequence number outside its kind's range
	ReasonKind    = "unhandled_kind" // config/handshake envelopes reach the link
)

// kindPruned marks an inbox placeholder for a number the peer pruned
// before we held it: it lets the sequence go on after the failure record.
const kindPruned = "pruned"

// HandleIncoming opens one envelope from the transport and stores it, or
// quarantines it, then calls ack exactly once, except when the keyring or
// the store could not answer (wire.ErrKeyring, a store error): then the
// envelope is kept in memory, unacked, and tried again at the next Step
// (the mail stays in the mailbox, so a crash meanwhile only delivers it
// again). Run and Step call it; callers with their own receive loop may
// too.
func (l *Link) HandleIncoming(ctx context.Context, in *transport.Incoming, ack transport.AckFunc) error {
	var kr wire.Keyring = l.keys
	if l.o.Keyring != nil {
		kr = l.o.Keyring
	}
	env, err := l.keys.open(in.Sealed, kr)
	if errors.Is(err, wire.ErrKeyring) {
		l.count(func(c *Counters) { c.KeyringRetries++ })
		l.keep(in, ack)
		l.log.Warn("keyring lookup failed, will retry", "id", in.ID, "error", err)
		return nil
	}
	if err != nil {
		return l.quarantine(ctx, in, ack, wire.Reason(err), err)
	}
	if env.Sync != l.o.SyncID || env.Sender != l.peer {
		l.count(func(c *Counters) { c.Foreign++ })
		return l.quarantine(ctx, in, ack, ReasonForeign, fmt.Errorf("envelope of sync %s from %s", env.Sync, env.Sender))
	}
	l.o.Metrics.Inc(metrics.EnvelopesReceived, env.Kind)
	switch env.Kind {
	case wire.KindChanges:
		if env.Seq == 0 || env.Seq >= ControlSeqBase {
			return l.quarantine(ctx, in, ack, ReasonBadSeq, fmt.Errorf("changes envelope with number %d", env.Seq))
		}
		return l.storeChanges(ctx, in, ack, env)
	case wire.KindControl:
		if env.Seq <= ControlSeqBase {
			return l.quarantine(ctx, in, ack, ReasonBadSeq, fmt.Errorf("control envelope with number %d", env.Seq))
		}
		return l.handleControl(ctx, in, ack, env)
	default:
		return l.quarantine(ctx, in, ack, ReasonKind, fmt.Errorf("%s envelope is not the link's to handle", env.Kind))
	}
}

// keep holds an envelope that could not be handled for a reason of ours
// (keyring, store) to try again at the next Step, unacked.
func (l *Link) keep(in *transport.Incoming, ack transport.AckFunc) {
	l.mu.Lock()
	l.retry = append(l.retry, incoming{in, ack})
	l.mu.Unlock()
}

func (l *Link) retryKeyring(ctx context.Context) {
	l.mu.Lock()
	list := l.retry
	l.retry = nil
	l.mu.Unlock()
	for _, r := range list {
		if err := l.HandleIncoming(ctx, r.in, r.ack); err != nil {
			l.log.Warn("handle incoming failed", "id", r.in.ID, "error", err)
		}
	}
}

func (l *Link) quarantine(ctx context.Context, in *transport.Incoming, ack transport.AckFunc, reason string, cause error) error {
	claimed := ""
	if h, err := wire.PeekHeader(in.Sealed); err == nil {
		claimed = h.Sync // untrusted: a label only
	}
	if err := l.st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.QuarantineAdd(store.Quarantined{SyncID: claimed, TransportRef: in.ID, Reason: reason, Raw: in.Raw})
		return err
	}); err != nil {
		// Not acked: kept to try again; the transport keeps the mail.
		l.keep(in, ack)
		return fmt.Errorf("link quarantine %s (kept to retry): %w", in.ID, err)
	}
	l.count(func(c *Counters) { c.Quarantined[reason]++ })
	l.o.Metrics.Inc(metrics.Quarantined, reason)
	l.log.Warn("envelope quarantined", "id", in.ID, "reason", reason, "error", cause)
	if err := ack(ctx, transport.Quarantined(reason)); err != nil {
		l.log.Warn("ack of quarantined envelope failed", "id", in.ID, "error", err)
	}
	return nil
}

// storeChanges stores a changes envelope by its number; a number already
// held is a duplicate (counted; the mail is acked so it leaves the
// mailbox). The peer's piggybacked ack is applied in the same transaction.
func (l *Link) storeChanges(ctx context.Context, in *transport.Incoming, ack transport.AckFunc, env wire.Envelope) error {
	var dup, opened bool
	var cur store.InboxCursor
	err := l.st.Update(ctx, func(tx *store.Tx) error {
		before, err := tx.InboxCursor(l.o.SyncID, l.peer)
		if err != nil {
			return err
		}
		dup, err = tx.InboxInsert(store.InboxEntry{SyncID: l.o.SyncID, Sender: l.peer, Seq: env.Seq, Kind: env.Kind, Sealed: in.Sealed})
		if err != nil {
			return err
		}
		if err := l.applyPeerAck(tx, env.Ack); err != nil {
			return err
		}
		if dup {
			return nil
		}
		opened = env.Seq > before.Contiguous+1 && env.Seq > before.HighestSeen+1
		if cur, err = tx.InboxCursor(l.o.SyncID, l.peer); err != nil {
			return err
		}
		return tx.LinkHeard(l.o.SyncID)
	})
	if err != nil {
		l.keep(in, ack)
		return fmt.Errorf("link store envelope %d (kept to retry): %w", env.Seq, err)
	}
	if dup {
		l.count(func(c *Counters) { c.Duplicates++ })
		l.o.Metrics.Counter(metrics.Duplicates, 1)
	} else {
		l.count(func(c *Counters) {
			c.EnvelopesReceived++
			if opened {
				c.GapsOpened++
			}
		})
		if opened {
			l.o.Metrics.Counter(metrics.GapsOpened, 1)
		}
		l.notePeerHighest(env.Seq, max(cur.HighestSeen, cur.Contiguous))
		l.markDirty()
	}
	if err := ack(ctx, transport.Stored); err != nil {
		l.log.Warn("ack of stored envelope failed", "id", in.ID, "seq", env.Seq, "error", err)
	}
	return nil
}

// applyPeerAck applies an ack from the peer, capped at what we have
// assigned (a signed ack beyond it is a peer bug, not a reason to mark
// unsent envelopes acked).
func (l *Link) applyPeerAck(tx *store.Tx, ack uint64) error {
	if ack == 0 {
		return nil
	}
	next, err := tx.OutboxNextSeq(l.o.SyncID)
	if err != nil {
		return err
	}
	_, err = tx.OutboxAck(l.o.SyncID, min(ack, next-1))
	return err
}

// notePeerHighest records the highest number the peer says it sent, and
// starts or stops the clock of the tail gap (numbers above everything we
// hold, which no later envelope reveals).
func (l *Link) notePeerHighest(highest, top uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if highest > l.peerHighest {
		l.peerHighest = highest
	}
	switch {
	case l.peerHighest <= top:
		l.tailSince = time.Time{}
	case l.tailSince.IsZero():
		l.tailSince = l.o.Now()
		l.c.GapsOpened++
		l.o.Metrics.Counter(metrics.GapsOpened, 1)
	}
}

// handleControl applies a fresh control envelope and drops a stale one.
func (l *Link) handleControl(ctx context.Context, in *transport.Incoming, ack transport.AckFunc, env wire.Envelope) error {
	ctl, err := wire.DecodeControl(env.Body)
	var payload Control
	if err == nil {
		err = ctl.Decode(&payload)
	}
	if err != nil {
		return l.quarantine(ctx, in, ack, wire.Reason(err), err)
	}
	var stale bool
	var cur store.InboxCursor
	var inserted [][2]uint64
	err = l.st.Update(ctx, func(tx *store.Tx) error {
		name := "link/" + l.o.SyncID + "/control_in"
		v, _, err := tx.CursorGet(name)
		if err != nil {
			return err
		}
		last, _ := strconv.ParseUint(v, 10, 64)
		if env.Seq <= last {
			stale = true
			return nil
		}
		if err := tx.CursorSet(name, strconv.FormatUint(env.Seq, 10)); err != nil {
			return err
		}
		if err := l.applyPeerAck(tx, env.Ack); err != nil {
			return err
		}
		if err := tx.LinkHeard(l.o.SyncID); err != nil {
			return err
		}
		if ctl.Type == CtlPruned {
			if inserted, err = l.acceptPruned(tx, payload.Ranges); err != nil {
				return err
			}
		}
		cur, err = tx.InboxCursor(l.o.SyncID, l.peer)
		return err
	})
	if err != nil {
		l.keep(in, ack)
		return fmt.Errorf("link handle %s control (kept to retry): %w", ctl.Type, err)
	}
	if err := ack(ctx, transport.Stored); err != nil {
		l.log.Warn("ack of control envelope failed", "id", in.ID, "error", err)
	}
	if stale {
		l.count(func(c *Counters) { c.StaleControls++ })
		l.o.Metrics.Counter(metrics.Duplicates, 1)
		return nil
	}
	l.count(func(c *Counters) { c.ControlsReceived++ })
	l.notePeerHighest(payload.Highest, max(cur.HighestSeen, cur.Contiguous))
	switch ctl.Type {
	case CtlResend:
		return l.answerResend(ctx, payload.Ranges)
	case CtlPruned:
		if len(inserted) > 0 {
			l.count(func(c *Counters) { c.PrunedNotices++ })
			l.markDirty()
		}
	case CtlAck, CtlHeartbeat:
	default:
		l.log.Warn("unknown control message ignored", "type", ctl.Type)
	}
	return nil
}

// acceptPruned turns the peer's "pruned" answer into placeholders for the
// numbers we still miss (so the sequence goes on) and one failure record
// per run telling the operator to resync. Numbers we already hold are left
// alone, so a replayed notice changes nothing.
func (l *Link) acceptPruned(tx *store.Tx, ranges [][2]uint64) ([][2]uint64, error) {
	var inserted [][2]uint64
	for _, r := range ranges {
		var run [][2]uint64
		for s := r[0]; s <= r[1] && s >= r[0] && s < ControlSeqBase && s-r[0] < 1_000_000; s++ {
			dup, err := tx.InboxInsert(store.InboxEntry{SyncID: l.o.SyncID, Sender: l.peer, Seq: s, Kind: kindPruned})
			if err != nil {
				return nil, err
			}
			if !dup {
				run = appendRange(run, s)
			}
		}
		for _, g := range run {
			inserted = append(inserted, g)
			if _, err := tx.FailureRecord(store.Failure{
				SyncID:     l.o.SyncID,
				ChangeID:   fmt.Sprintf("resend-pruned/%s/%d-%d", l.peer, g[0], g[1]),
				Kind:       "resend-pruned",
				ErrorClass: "pruned",
				ErrorText: fmt.Sprintf("the peer %s no longer has envelopes %d to %d (pruned after its retention period) "+
					"and this bridge never stored them: their changes are lost here. Run `jirabridge resync` for the issues "+
					"changed at the peer since the last change this bridge applied from it.", l.peer, g[0], g[1]),
			}); err != nil {
				return nil, err
			}
		}
	}
	return inserted, nil
}

// release moves the changes of contiguous, unreleased inbox envelopes into
// the replay queue in sequence order and marks the envelopes released,
// one transaction per round. Chunk envelopes are held until the attachment
// change that follows them is releasable too; then the attachment is
// joined, verified and enqueued whole.
func (l *Link) release(ctx context.Context) error {
	l.mu.Lock()
	dirty := l.releaseDirty
	l.releaseDirty = false
	l.mu.Unlock()
	if !dirty {
		return nil
	}
	for range 10000 {
		var n int
		var cnt Counters
		err := l.st.Update(ctx, func(tx *store.Tx) error {
			cnt = Counters{}
			var err error
			n, err = l.releaseRound(tx, &cnt)
			return err
		})
		if err != nil {
			l.markDirty()
			return fmt.Errorf("link release: %w", err)
		}
		l.count(func(c *Counters) {
			c.ChangesReleased += cnt.ChangesReleased
			c.ReplayDuplicates += cnt.ReplayDuplicates
			c.Reassembled += cnt.Reassembled
			c.ChunkFailures += cnt.ChunkFailures
		})
		for kind, n := range cnt.kinds {
			l.o.Metrics.Add(metrics.ChangesReceived, float64(n), kind)
		}
		if n == 0 {
			return nil
		}
	}
	return nil
}

// markDirty makes the next step look for releasable envelopes.
func (l *Link) markDirty() {
	l.mu.Lock()
	l.releaseDirty = true
	l.mu.Unlock()
}

type assembly struct {
	seqs  []uint64
	parts [][]byte
	bad   string
}

// releaseRound releases one round and returns how many envelopes it marked.
func (l *Link) releaseRound(tx *store.Tx, cnt *Counters) (int, error) {
	entries, err := tx.InboxReleasable(l.o.SyncID, l.peer, 200)
	if err != nil {
		return 0, err
	}
	var keys wire.Keyring = txKeyring{k: l.keys, tx: tx}
	if l.o.Keyring != nil {
		keys = l.o.Keyring
	}
	chunks := map[string]*assembly{}
	marked := 0
	for _, e := range entries {
		if e.Kind == kindPruned {
			if len(chunks) > 0 {
				// A chunk run interrupted by a pruned number cannot
				// complete: its attachment change is lost with it.
				for ref, a := range chunks {
					if err := markAll(tx, l, a.seqs); err != nil {
						return 0, err
					}
					marked += len(a.seqs)
					delete(chunks, ref)
				}
			}
			if err := tx.InboxMarkReleased(l.o.SyncID, l.peer, e.Seq); err != nil {
				return 0, err
			}
			marked++
			continue
		}
		env, err := l.keys.open(e.Sealed, keys)
		if err != nil {
			// It opened when it was stored: only the keyring can fail now.
			return 0, fmt.Errorf("reopen inbox envelope %d: %w", e.Seq, err)
		}
		changes, err := wire.DecodeChanges(env.Body)
		if err != nil {
			return 0, fmt.Errorf("decode inbox envelope %d: %w", e.Seq, err)
		}
		isChunk := false
		for _, c := range changes {
			switch {
			case c.Kind == wire.AttachmentChunk && c.Chunk != nil:
				isChunk = true
				a := chunks[c.Chunk.Ref]
				if a == nil {
					a = &assembly{parts: make([][]byte, max(0, min(c.Chunk.Count, 1_000_000)))}
					chunks[c.Chunk.Ref] = a
				}
				sum := sha256.Sum256(c.Chunk.Data)
				switch {
				case c.Chunk.Index < 0 || c.Chunk.Index >= len(a.parts):
					a.bad = fmt.Sprintf("chunk %d of %d out of range", c.Chunk.Index, len(a.parts))
				case hex.EncodeToString(sum[:]) != c.Chunk.SHA256:
					a.bad = fmt.Sprintf("chunk %d fails its SHA-256 check", c.Chunk.Index)
				default:
					a.parts[c.Chunk.Index] = c.Chunk.Data
				}
			case c.Attachment != nil && c.Attachment.ChunkRef != "" && len(c.Attachment.Data) == 0:
				a := chunks[c.Attachment.ChunkRef]
				delete(chunks, c.Attachment.ChunkRef)
				c, bad := join(c, a)
				if bad != "" {
					cnt.ChunkFailures++
					if _, err := tx.FailureRecord(store.Failure{SyncID: l.o.SyncID, ChangeID: c.ID, IssueKey: c.IssueKey,
						Kind: string(c.Kind), ErrorClass: "chunk_verify",
						ErrorText: "attachment " + c.Attachment.ID + " could not be reassembled: " + bad +
							". Run `jirabridge resync` for the issue to send it again."}); err != nil {
						return 0, err
					}
				} else {
					cnt.Reassembled++
					if err := l.enqueue(tx, c, cnt); err != nil {
						return 0, err
					}
				}
				if a != nil {
					if err := markAll(tx, l, a.seqs); err != nil {
						return 0, err
					}
					marked += len(a.seqs)
				}
			default:
				if err := l.enqueue(tx, c, cnt); err != nil {
					return 0, err
				}
			}
		}
		if isChunk {
			for _, c := range changes {
				if c.Chunk != nil {
					if a := chunks[c.Chunk.Ref]; a != nil {
						a.seqs = append(a.seqs, e.Seq)
					}
					break
				}
			}
			continue
		}
		if err := tx.InboxMarkReleased(l.o.SyncID, l.peer, e.Seq); err != nil {
			return 0, err
		}
		marked++
	}
	if marked == 0 && len(chunks) > 0 && len(entries) == 200 {
		return 0, errors.New("a chunked attachment spans more envelopes than one release round reads")
	}
	return marked, nil
}

func markAll(tx *store.Tx, l *Link, seqs []uint64) error {
	for _, s := range seqs {
		if err := tx.InboxMarkReleased(l.o.SyncID, l.peer, s); err != nil {
			return err
		}
	}
	return nil
}

// join puts an attachment's chunks back together and checks it.
func join(c wire.Change, a *assembly) (wire.Change, string) {
	if a == nil {
		return c, "its chunks are missing"
	}
	if a.bad != "" {
		return c, a.bad
	}
	var size int
	for i, p := range a.parts {
		if p == nil {
			return c, fmt.Sprintf("chunk %d of %d is missing", i, len(a.parts))
		}
		size += len(p)
	}
	data := make([]byte, 0, size)
	for _, p := range a.parts {
		data = append(data, p...)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != c.Attachment.SHA256 {
		return c, "the joined content fails its SHA-256 check"
	}
	if c.Attachment.Size != 0 && c.Attachment.Size != int64(len(data)) {
		return c, fmt.Sprintf("the joined content has %d bytes, the change says %d", len(data), c.Attachment.Size)
	}
	att := *c.Attachment
	att.Data, att.ChunkRef = data, ""
	c.Attachment = &att
	return c, ""
}

func (l *Link) enqueue(tx *store.Tx, c wire.Change, cnt *Counters) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode change %s for replay: %w", c.ID, err)
	}
	_, dup, err := tx.ReplayEnqueue(l.o.SyncID, c.IssueID, c.ID, b)
	if err != nil {
		return err
	}
	if dup {
		cnt.ReplayDuplicates++
	} else {
		cnt.ChangesReleased++
		cnt.kind(string(c.Kind))
	}
	return nil
}
