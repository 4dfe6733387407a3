// Package link is the reliable path between the sync engine of one bridge
// and its peer, for one sync: it batches the changes detection queued
// (store pending_changes) into sealed, sequenced envelopes in the outbox,
// hands them to a transport.Sender, and on the receiving side opens what a
// transport.Receiver delivers, stores it in the inbox by sequence number
// and releases the changes in order into the replay queue. Acks, resend
// requests for gaps and heartbeats make loss visible and repaired without a
// person; large attachments travel in verified chunks.
//
// # Sequenced and unsequenced envelopes
//
// Changes envelopes carry the next number of their direction (1, 2, ...),
// are kept in the outbox until the peer acks them (and then for the
// retention period), and are re-sent with the same sealed bytes when the
// peer asks. Control envelopes (ack, heartbeat, resend request, pruned
// notice) are NOT in that sequence: an ack that had to be acked would never
// let the link go quiet, and a lost resend request would need a resend
// request of its own. Control messages carry state, not events (the
// highest contiguous number held, the highest number sent, the numbers
// still missing), and every one is regenerated from the store until its
// purpose is met, so losing one costs only time. Each carries a control
// number from its own counter (Seq >= ControlSeqBase, so that its mail
// gets a Message-ID and file name of its own), and the receiver drops a
// control whose number is not above the highest it has seen: a replayed
// or overtaken control is counted and ignored. Even applied, a stale one
// would be harmless: acks only move forward (the store keeps the maximum),
// a resend request re-sends bytes the peer drops as duplicates, and a
// pruned notice states a permanent fact.
//
// # Store seams
//
// The link reads pending_changes (PendingList/Delete) and writes the outbox
// (OutboxNextSeq, OutboxAppend, MarkSent, Ack, Prune) in the same
// transaction per batch; it writes the inbox (InboxInsert, MarkReleased,
// Purge), the replay queue (ReplayEnqueue, one item per change, keyed by
// the origin issue id and change id, the bytes being json.Marshal of one
// wire.Change), link_state (LinkHeard, LinkAckSent, LinkHeartbeatSent),
// quarantine records, failure records (resend-pruned, chunk verification,
// undecodable pending changes) and two cursors per sync:
// "link/<sync>/control_out" and "link/<sync>/control_in".
//
// # Wiring
//
// One Link per sync per node, built after the handshake has written the
// sync row (SelfNode, PeerNode) and its keys (store.Keys: SigningKey our
// Ed25519 private key or seed, AgeIdentity our "AGE-SECRET-KEY-1...",
// PeerSigningKey the peer's 32-byte public key, PeerAgeRecipient its
// "age1..."):
//
//	snd, _ := smtpsend.New(...)
//	l, err := link.New(ctx, link.Options{
//		Store: st, SyncID: id, Metrics: m, Logger: log,
//		Sender:      transport.WithRetry(snd, transport.RetryOptions{MaxAttempts: 3}),
//		Receiver:    imapReceiver, // or a filedrop.Receiver
//		MaxMailSize: cfg.MaxMailSize,
//	})
//	go l.Run(ctx)
//
// Bound the retry decorator (MaxAttempts): the link has its own back-off
// and a sender that retries forever would hold its send lock. Detection
// calls l.Wake() after the transaction that added pending changes, so a
// change does not wait for the next tick. The replay workers read the
// replay queue as before. `status` shows l.Status, ops polls l.Silence.
// The link quarantines envelopes of other syncs (unknown_sync) and config
// or handshake envelopes (unhandled_kind): a process that shares one
// mailbox among several syncs, or carries config on it, routes each
// incoming envelope first (wire.PeekHeader is enough to route, Open still
// verifies) and hands the link's own to HandleIncoming.
package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
)

// ControlSeqBase is the lowest number a control envelope carries in its
// Seq. Numbers below it are the changes sequence.
const ControlSeqBase uint64 = 1 << 63

// Defaults; see Options for what each is.
//
// The batch size comes from BenchmarkBatchSize (a burst of 1,000 field
// updates of about 450 bytes of JSON each, over memlink, 2 shared cores,
// store without fsync): per 1,000 changes, N=1 made 1,000 mails, 623 wire
// bytes and 5.4 ms per change; N=10: 100 mails, 83 B, 0.57 ms; N=50: 20
// mails, 35 B, 0.28 ms; N=250: 4 mails, 25 B, 0.23 ms; N=500: 2 mails,
// 24 B, 0.28 ms; N=1000: 1 mail, 23 B, 0.24 ms. Beyond about 250 the cost
// per change is flat (release into the replay queue dominates) and the
// bytes are within a few percent of the best, so N=500 halves the mails
// of N=250 while a lost mail still costs only a ~12 KB resend. With fsync
// on (production) each transaction costs a disk flush, which favours big
// batches further. B=1 MiB of change JSON keeps a batch of long texts far
// below a 10 MB mail even when nothing compresses (1 MiB x 1.37 base64).
// Linger 500 ms plus the 100 ms tick makes a lone change leave within
// about 0.6 s while a burst that detection writes in one poll still lands
// in one batch.
const (
	DefaultMaxBatchChanges   = 500
	DefaultMaxBatchBytes     = 1 << 20
	DefaultLinger            = 500 * time.Millisecond
	DefaultAckDelay          = 5 * time.Second
	DefaultGapTimeout        = 2 * time.Minute
	DefaultHeartbeatInterval = 5 * time.Minute
	DefaultSilenceThreshold  = 20 * time.Minute
	DefaultRetention         = 7 * 24 * time.Hour
	DefaultMaxMailSize       = 10 << 20
	DefaultMaxResend         = 500
	DefaultTick              = 100 * time.Millisecond
	DefaultSendBackOff       = 5 * time.Second
	DefaultPermanentBackOff  = 5 * time.Minute
)

// mailOverhead is what the mail around an envelope adds beyond base64:
// headers, the text part, MIME boundaries.
const mailOverhead = 64 << 10

// Options configures a Link. Store and SyncID are required; Sender and
// Receiver are what the link runs over (a nil Receiver makes a send-only
// link). Zero values take the defaults.
type Options struct {
	Store  *store.Store
	SyncID string
	// SyncName is the human name put in mail subjects; default the sync's
	// name in the store.
	SyncName string
	Sender   transport.Sender
	Receiver transport.Receiver

	// Keyring overrides the store-backed keyring envelopes are opened
	// with (NewKeyring); for tests and for a process that routes several
	// syncs through one mailbox with its own keyring.
	Keyring wire.Keyring

	// Now is the clock; give the store the same one in tests.
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *metrics.Metrics

	// MaxBatchChanges (N) and MaxBatchBytes (B, of change JSON) bound one
	// changes envelope; Linger is how long a partial batch waits for more.
	MaxBatchChanges int
	MaxBatchBytes   int
	Linger          time.Duration
	// AckDelay is how long a new ack waits for an envelope to ride on
	// before it is sent alone.
	AckDelay time.Duration
	// GapTimeout is how long a gap stays open before the missing numbers
	// are asked for again (and how long between two requests).
	GapTimeout time.Duration
	// HeartbeatInterval: a heartbeat goes out when nothing was sent for
	// this long. SilenceThreshold: the peer is "silent" when nothing valid
	// was heard from it for this long.
	HeartbeatInterval time.Duration
	SilenceThreshold  time.Duration
	// Retention is how long acked envelopes (outbox) and released ones
	// (inbox) are kept.
	Retention time.Duration
	// MaxMailSize is the transport's limit on one mail; envelopes are
	// kept below it (base64 makes a mail about 1.37 times its payload)
	// and larger attachments are chunked.
	MaxMailSize int64
	// ChunkSize is the attachment payload per chunk envelope; default
	// derived from MaxMailSize. Attachments with more Data are chunked.
	ChunkSize int
	// MaxResend bounds the numbers in one resend request and the envelopes
	// re-sent for one.
	MaxResend int
	// Tick is how often Run steps when nothing wakes it.
	Tick time.Duration
	// SendBackOff is the first wait after a retryable send error (doubled
	// up to PermanentBackOff); PermanentBackOff the wait after a permanent
	// one.
	SendBackOff      time.Duration
	PermanentBackOff time.Duration
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "link", "sync", o.SyncID)
	setDefault(&o.MaxBatchChanges, DefaultMaxBatchChanges)
	setDefault(&o.MaxBatchBytes, DefaultMaxBatchBytes)
	setDefault(&o.Linger, DefaultLinger)
	setDefault(&o.AckDelay, DefaultAckDelay)
	setDefault(&o.GapTimeout, DefaultGapTimeout)
	setDefault(&o.HeartbeatInterval, DefaultHeartbeatInterval)
	setDefault(&o.SilenceThreshold, DefaultSilenceThreshold)
	setDefault(&o.Retention, DefaultRetention)
	setDefault(&o.MaxMailSize, DefaultMaxMailSize)
	setDefault(&o.MaxResend, DefaultMaxResend)
	setDefault(&o.Tick, DefaultTick)
	setDefault(&o.SendBackOff, DefaultSendBackOff)
	setDefault(&o.PermanentBackOff, DefaultPermanentBackOff)
	if o.ChunkSize <= 0 {
		// Worst case the chunk's bytes are incompressible and grow by
		// 4/3 as base64 inside the change JSON.
		o.ChunkSize = max(1024, int(sealedBudget(o.MaxMailSize))*3/4-(16<<10))
	}
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// sealedBudget is the largest sealed envelope that fits a mail of
// maxMail bytes.
func sealedBudget(maxMail int64) int64 {
	return max(4096, (maxMail-mailOverhead)*100/137)
}

// Poller is implemented by receivers that can say "nothing now" without
// blocking (memlink). Step reads from such a receiver; with any other
// receiver only Run reads (in its own goroutine).
type Poller interface {
	Poll(ctx context.Context) (*transport.Incoming, transport.AckFunc, error)
}

// Link runs one sync's link on one node. Its methods are safe for
// concurrent use, but one node must run one Link per sync. It does not own
// its Sender and Receiver: whoever built them closes them after Run
// returns.
type Link struct {
	o     Options
	st    *store.Store
	keys  *Keyring
	self  string
	peer  string
	name  string
	log   *slog.Logger
	wake  chan struct{}
	stepM sync.Mutex // one Step at a time
	sendM sync.Mutex // one Send at a time

	mu           sync.Mutex
	c            Counters
	lastSendAt   time.Time
	ackDueSince  time.Time
	peerHighest  uint64
	tailSince    time.Time
	lastResendAt time.Time
	sendWait     time.Time // no sends before this (back-off)
	sendBackOff  time.Duration
	retry        []incoming // envelopes whose keyring lookup failed
	lastPrune    time.Time
	started      time.Time
	releaseDirty bool // something was stored since the last release
}

type incoming struct {
	in  *transport.Incoming
	ack transport.AckFunc
}

// New builds the link of one sync. The sync must exist in the store with
// its self and peer node ids (the handshake is done); keys are read when
// used, so they may still change.
func New(ctx context.Context, o Options) (*Link, error) {
	if o.Store == nil || o.SyncID == "" {
		return nil, errors.New("new link: Options.Store and Options.SyncID are required")
	}
	if o.Sender == nil {
		return nil, errors.New("new link: Options.Sender is required")
	}
	o.defaults()
	if int64(o.MaxBatchBytes) > sealedBudget(o.MaxMailSize) {
		return nil, fmt.Errorf("new link: MaxBatchBytes %d does not fit a mail of MaxMailSize %d (at most %d)",
			o.MaxBatchBytes, o.MaxMailSize, sealedBudget(o.MaxMailSize))
	}
	var s store.Sync
	err := o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		s, err = tx.SyncGet(o.SyncID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("new link: read sync %s: %w", o.SyncID, err)
	}
	if s.SelfNode == "" || s.PeerNode == "" {
		return nil, fmt.Errorf("new link: sync %s does not name both nodes yet (self %q, peer %q): finish the handshake",
			o.SyncID, s.SelfNode, s.PeerNode)
	}
	name := o.SyncName
	if name == "" {
		name = s.Name
	}
	return &Link{
		o: o, st: o.Store, keys: NewKeyring(o.Store, o.SyncID), self: s.SelfNode, peer: s.PeerNode,
		name: name, log: o.Logger, wake: make(chan struct{}, 1), sendBackOff: o.SendBackOff,
		c: Counters{Quarantined: map[string]int64{}}, started: o.Now(), releaseDirty: true,
	}, nil
}

// Keyring returns the store-backed keyring the link opens envelopes with.
func (l *Link) Keyring() *Keyring { return l.keys }

// Wake makes Run step now instead of at its next tick; detection calls it
// after queueing changes.
func (l *Link) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Step runs one deterministic round: read what the receiver has (when it
// is a Poller), release contiguous envelopes to replay, seal due batches,
// ask for open gaps, send due acks and heartbeats, send unsent envelopes
// and prune. Tests drive links with Step and an injected clock.
func (l *Link) Step(ctx context.Context) error {
	return l.step(ctx, true)
}

func (l *Link) step(ctx context.Context, poll bool) error {
	l.stepM.Lock()
	defer l.stepM.Unlock()
	var errs []error
	if poll {
		if p, ok := l.o.Receiver.(Poller); ok && l.o.Receiver != nil {
			if err := l.drain(ctx, p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	l.retryKeyring(ctx)
	for _, f := range []func(context.Context) error{l.release, l.batch, l.checkGaps, l.sendUnsent, l.sendAckOrHeartbeat, l.prune, l.gauges} {
		if err := f(ctx); err != nil && !errors.Is(err, errBackingOff) {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

func (l *Link) drain(ctx context.Context, p Poller) error {
	for range 10000 {
		in, ack, err := p.Poll(ctx)
		if err != nil {
			return fmt.Errorf("link poll receiver: %w", err)
		}
		if in == nil {
			return nil
		}
		if err := l.HandleIncoming(ctx, in, ack); err != nil {
			return err
		}
	}
	return nil
}

// Run steps the link until ctx is done: every Tick, when woken, and after
// each incoming envelope, which a separate goroutine reads from the
// Receiver. It returns ctx.Err().
func (l *Link) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if l.o.Receiver != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.receiveLoop(ctx)
		}()
	}
	t := time.NewTicker(l.o.Tick)
	defer t.Stop()
	for {
		if err := l.step(ctx, false); err != nil && ctx.Err() == nil {
			l.log.Warn("link step failed", "error", err)
		}
		select {
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return ctx.Err()
		case <-t.C:
		case <-l.wake:
		}
	}
}

func (l *Link) receiveLoop(ctx context.Context) {
	wait := l.o.SendBackOff
	for ctx.Err() == nil {
		in, ack, err := l.o.Receiver.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Warn("link receive failed", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, l.o.PermanentBackOff)
			continue
		}
		wait = l.o.SendBackOff
		if err := l.HandleIncoming(ctx, in, ack); err != nil && ctx.Err() == nil {
			l.log.Warn("link handle incoming failed", "id", in.ID, "error", err)
		}
		l.Wake()
	}
}

// Counters are the link's own counts since it was built, for tests and
// status; the same events go to the Prometheus metrics.
type Counters struct {
	EnvelopesSealed   int64 // changes envelopes appended to the outbox
	ChangesSealed     int64 // changes sealed into them (chunks included)
	EnvelopesSent     int64 // first sends of outbox envelopes
	ControlsSent      int64 // control envelopes sent (acks, heartbeats, requests, notices)
	AcksSent          int64
	HeartbeatsSent    int64
	SendErrors        int64
	EnvelopesReceived int64 // changes envelopes newly stored
	ControlsReceived  int64 // fresh control envelopes handled
	Duplicates        int64 // changes envelopes with a seq already held
	StaleControls     int64 // control envelopes not newer than the last one (replayed, overtaken)
	Foreign           int64 // envelopes of another sync or sender
	Quarantined       map[string]int64
	KeyringRetries    int64
	GapsOpened        int64
	ResendAsked       int64 // resend requests we sent
	ResendNumbers     int64 // numbers asked for in them
	Resent            int64 // envelopes we re-sent for the peer
	ResendPruned      int64 // numbers we could not re-send (pruned)
	PrunedNotices     int64 // pruned notices that turned into failure records
	ChangesReleased   int64 // changes enqueued for replay
	ReplayDuplicates  int64 // changes the replay queue already had
	ChunksSent        int64
	Reassembled       int64 // chunked attachments released
	ChunkFailures     int64 // chunked attachments that failed verification
	BadPending        int64 // pending changes that did not decode or fit no mail

	kinds map[string]int // per change kind, within one transaction
}

func (c *Counters) kind(k string) {
	if c.kinds == nil {
		c.kinds = map[string]int{}
	}
	c.kinds[k]++
}

// Counters returns a copy of the counts.
func (l *Link) Counters() Counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.c
	c.Quarantined = make(map[string]int64, len(l.c.Quarantined))
	for k, v := range l.c.Quarantined {
		c.Quarantined[k] = v
	}
	return c
}

func (l *Link) count(f func(c *Counters)) {
	l.mu.Lock()
	f(&l.c)
	l.mu.Unlock()
}

func noCtx() context.Context { return context.Background() }
