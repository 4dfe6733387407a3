package link

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
)

// capture records what a link sends, then forwards it.
type capture struct {
	next transport.Sender
	sent []transport.Outgoing
}

func (c *capture) Send(ctx context.Context, o transport.Outgoing) error {
	c.sent = append(c.sent, transport.Outgoing{Meta: o.Meta, Sealed: append([]byte(nil), o.Sealed...)})
	return c.next.Send(ctx, o)
}
func (c *capture) Close() error { return c.next.Close() }

// A replayed or overtaken control envelope is dropped as stale and does
// not count as hearing from the peer; a replayed changes envelope is a
// duplicate.
func TestReplayedEnvelopesDropped(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	capA := &capture{next: a.sender}
	a.sender = capA
	o := testOptions()
	a.start(o)
	b.start(o)
	step(t, time.Second, a, b) // start-up heartbeats
	a.queue(a.change(1, 1))
	clk.Advance(o.Linger)
	step(t, time.Second, a, b)
	clk.Advance(o.HeartbeatInterval)
	step(t, time.Second, a, b) // a second heartbeat from a
	var ctl, data []transport.Outgoing
	for _, s := range capA.sent {
		if s.Kind == wire.KindControl {
			ctl = append(ctl, s)
		} else {
			data = append(data, s)
		}
	}
	if len(ctl) < 2 || len(data) != 1 {
		t.Fatalf("a sent %d controls and %d changes envelopes, want >= 2 and 1", len(ctl), len(data))
	}
	if ctl[0].Seq <= ControlSeqBase || ctl[1].Seq <= ctl[0].Seq {
		t.Fatalf("control numbers %d, %d: want above %d and increasing", ctl[0].Seq, ctl[1].Seq, ControlSeqBase)
	}
	clk.Advance(o.SilenceThreshold + time.Minute)
	before := b.link.Counters()
	a.out.Put(ctl[0].Meta, ctl[0].Sealed)
	a.out.Put(data[0].Meta, data[0].Sealed)
	step(t, time.Second, b)
	c := b.link.Counters()
	if c.StaleControls-before.StaleControls != 1 || c.Duplicates-before.Duplicates != 1 {
		t.Errorf("stale controls +%d, duplicates +%d; want +1 and +1",
			c.StaleControls-before.StaleControls, c.Duplicates-before.Duplicates)
	}
	if c.ChangesReleased != 1 {
		t.Errorf("released %d changes, want 1", c.ChangesReleased)
	}
	if silent, _, _ := b.link.Silence(context.Background()); !silent {
		t.Errorf("a replayed control made the silent peer look alive")
	}
}

// The store-backed keyring knows only its sync and its peer, and picks up
// new peer keys after a re-keying.
func TestKeyring(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	a.start(testOptions())
	kr := a.link.Keyring()
	if _, ok, err := kr.Identity("other"); ok || err != nil {
		t.Errorf("identity of another sync: ok=%v err=%v", ok, err)
	}
	if _, ok, err := kr.Identity(testSync); !ok || err != nil {
		t.Errorf("identity of the sync: ok=%v err=%v", ok, err)
	}
	if k, ok, err := kr.SenderKey(testSync, b.name); !ok || err != nil || !k.Equal(b.keys.Public().Signing) {
		t.Errorf("peer key: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := kr.SenderKey(testSync, a.name); ok {
		t.Errorf("our own node must not be a sender")
	}
	// b re-keys; a's store learns the new public keys (the handshake's
	// job) while a's keyring still holds the old ones.
	nk, _ := wire.GenerateNodeKeys()
	b.keys = nk
	b.setupSync(t)
	a.setupSync(t)
	b.start(testOptions())
	b.queue(b.change(1, 1))
	clk.Advance(time.Second)
	step(t, time.Second, b, a)
	if c := a.link.Counters(); c.ChangesReleased != 1 || len(c.Quarantined) != 0 {
		t.Errorf("after re-keying: released %d, quarantined %v", c.ChangesReleased, c.Quarantined)
	}
}

// Run drives the link in real time with the blocking Receive; the test
// waits on a condition with a deadline, not a fixed sleep.
func TestRun(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.Linger, o.AckDelay, o.Tick = 10*time.Millisecond, 10*time.Millisecond, 5*time.Millisecond
	for _, n := range []*node{a, b} {
		n.start(o)
		n.link.o.Now = time.Now
		n.link.o.Receiver = &blockingOnly{n.link.o.Receiver}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, n := range []*node{a, b} {
		go func() { done <- n.link.Run(ctx) }()
	}
	want := []wire.Change{a.change(1, 1), a.change(1, 2), a.change(2, 3)}
	a.queue(want...)
	a.link.Wake()
	heard := func() bool {
		var ls store.LinkState
		_ = a.st.View(context.Background(), func(tx *store.Tx) error {
			var err error
			ls, err = tx.LinkGet(testSync)
			return err
		})
		return !ls.LastHeardAt.IsZero() && ls.PeerAcked == 1
	}
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	for (len(b.replayed()) < len(want) || !heard()) && time.Now().Before(deadline) {
		<-tick.C
	}
	tick.Stop()
	cancel()
	for range 2 {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}
	checkReplay(t, "b", b.replayed(), want)
	if !heard() {
		t.Errorf("a never heard from b, or b's ack never arrived")
	}
}

// blockingOnly hides Poll, so the link reads as it does from IMAP.
type blockingOnly struct{ r transport.Receiver }

func (b *blockingOnly) Receive(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	return b.r.Receive(ctx)
}
func (b *blockingOnly) Close() error { return b.r.Close() }

// failingKeyring fails while fail is set, as a busy store would.
type failingKeyring struct {
	wire.Keyring
	fail bool
}

func (f *failingKeyring) Identity(sync string) (age.Identity, bool, error) {
	if f.fail {
		return nil, false, errors.New("database is locked")
	}
	return f.Keyring.Identity(sync)
}

func (f *failingKeyring) SenderKey(sync, sender string) (ed25519.PublicKey, bool, error) {
	if f.fail {
		return nil, false, errors.New("database is locked")
	}
	return f.Keyring.SenderKey(sync, sender)
}

// A keyring failure leaves the mail unacked and is retried; nothing is
// quarantined.
func TestKeyringFailureRetried(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	a.start(o)
	fk := &failingKeyring{Keyring: NewKeyring(b.st, testSync), fail: true}
	ob := o
	ob.Keyring = fk
	b.start(ob)
	a.queue(a.change(1, 1))
	clk.Advance(o.Linger)
	step(t, time.Second, a, b)
	c := b.link.Counters()
	if c.KeyringRetries == 0 || len(c.Quarantined) != 0 || c.EnvelopesReceived != 0 {
		t.Fatalf("keyring down: retries %d, quarantined %v, received %d", c.KeyringRetries, c.Quarantined, c.EnvelopesReceived)
	}
	if a.out.Len() == 0 {
		t.Fatalf("the mail left the mailbox without being stored")
	}
	fk.fail = false
	step(t, time.Second, b)
	if c := b.link.Counters(); c.EnvelopesReceived != 1 || c.ChangesReleased != 1 || len(c.Quarantined) != 0 {
		t.Errorf("keyring back: received %d, released %d, quarantined %v", c.EnvelopesReceived, c.ChangesReleased, c.Quarantined)
	}
}

// Status shows gaps, the oldest unacked envelope and both directions.
func TestStatus(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.MaxBatchChanges = 1
	a.sender = &dropSeqs{next: a.sender, drop: map[uint64]bool{2: true}}
	a.start(o)
	b.start(o)
	a.queue(a.change(1, 1), a.change(1, 2), a.change(1, 3))
	step(t, time.Second, a, b)
	step(t, time.Second, a, b)
	sa, sb := a.status(), b.status()
	if sa.HighestAssigned != 3 || sa.HighestSent != 3 || sa.HighestAcked != 1 || sa.OldestUnackedAge <= 0 {
		t.Errorf("a outbound: assigned %d sent %d acked %d oldest unacked %v; want 3, 3, 1, > 0",
			sa.HighestAssigned, sa.HighestSent, sa.HighestAcked, sa.OldestUnackedAge)
	}
	if sb.Contiguous != 1 || sb.HighestReceived != 3 || len(sb.OpenGaps) != 1 || sb.OpenGaps[0].From != 2 || sb.OpenGaps[0].To != 2 {
		t.Errorf("b inbound: contiguous %d received %d gaps %+v; want 1, 3, [2-2]", sb.Contiguous, sb.HighestReceived, sb.OpenGaps)
	}
	if sb.Silent || sb.LastHeard.IsZero() || sb.Peer != a.name {
		t.Errorf("b: silent %v, last heard %v, peer %s", sb.Silent, sb.LastHeard, sb.Peer)
	}
}

// A change no mail can carry is parked as a failure and does not block
// the changes after it; one that does not decode likewise.
func TestOversizedAndBadPendingParked(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.MaxMailSize = 200 << 10
	o.MaxBatchBytes = 32 << 10
	a.start(o)
	b.start(o)
	big := a.change(1, 1)
	big.Fields["description"] = wire.FieldChange{After: wire.StringValue(randomText(400 << 10))}
	ok := a.change(1, 2)
	a.queue(big, ok)
	if err := a.st.Update(context.Background(), func(tx *store.Tx) error {
		_, err := tx.PendingAdd(testSync, "1", []byte(`{"not":"a change"}`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	run(t, 100, time.Second, a, b)
	checkReplay(t, "b", b.replayed(), []wire.Change{ok})
	var fails []store.Failure
	_ = a.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		fails, err = tx.FailureList(testSync, 10)
		return err
	})
	if len(fails) != 2 || fails[0].ErrorClass != "too_large" || fails[1].Kind != "pending-undecodable" {
		t.Errorf("failures %+v, want too_large and pending-undecodable", fails)
	}
}

// randomText is incompressible text of n bytes.
func randomText(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}

func TestJoinChecks(t *testing.T) {
	t.Parallel()
	data := []byte("hello, attachment")
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	change := func(size int64, hash string) wire.Change {
		return wire.Change{ID: "c", Attachment: &wire.Attachment{ID: "a", ChunkRef: "c", SHA256: hash, Size: size}}
	}
	for _, tc := range []struct {
		name string
		c    wire.Change
		a    *assembly
		bad  string
	}{
		{"ok", change(int64(len(data)), sum(data)), &assembly{parts: [][]byte{data[:5], data[5:]}}, ""},
		{"no chunks", change(0, sum(data)), nil, "its chunks are missing"},
		{"missing chunk", change(0, sum(data)), &assembly{parts: [][]byte{data[:5], nil}}, "chunk 1 of 2 is missing"},
		{"bad chunk", change(0, sum(data)), &assembly{parts: [][]byte{data}, bad: "chunk 0 fails its SHA-256 check"}, "chunk 0 fails its SHA-256 check"},
		{"bad whole", change(0, sum([]byte("other"))), &assembly{parts: [][]byte{data}}, "the joined content fails its SHA-256 check"},
		{"bad size", change(3, sum(data)), &assembly{parts: [][]byte{data}}, "the joined content has 17 bytes, the change says 3"},
	} {
		got, bad := join(tc.c, tc.a)
		if bad != tc.bad {
			t.Errorf("%s: %q, want %q", tc.name, bad, tc.bad)
		}
		if bad == "" && (string(got.Attachment.Data) != string(data) || got.Attachment.ChunkRef != "") {
			t.Errorf("%s: joined %q ref %q", tc.name, got.Attachment.Data, got.Attachment.ChunkRef)
		}
	}
}
