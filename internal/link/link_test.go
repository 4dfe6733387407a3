package link

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/faulty"
	"github.com/jirabridge/jirabridge/transport/memlink"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// run steps both nodes until they settle or rounds run out.
func run(t *testing.T, rounds int, dt time.Duration, a, b *node) int {
	t.Helper()
	for i := range rounds {
		step(t, dt, a, b)
		if i%4 == 3 && settled(t, a, b) {
			return i
		}
	}
	t.Fatalf("not settled after %d rounds: a %+v\nb %+v", rounds, summary(a.status()), summary(b.status()))
	return rounds
}

func summary(s Status) string {
	return strings.Join([]string{
		"assigned=" + u(s.HighestAssigned), "sent=" + u(s.HighestSent), "acked=" + u(s.HighestAcked),
		"contiguous=" + u(s.Contiguous), "received=" + u(s.HighestReceived), "peerHighest=" + u(s.PeerHighest),
		"gaps=" + itoa(len(s.OpenGaps)), "depth=" + itoa(s.Outbox.Depth),
	}, " ")
}

func TestDeliversInOrderBothWays(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	a.start(testOptions())
	b.start(testOptions())
	var fromA, fromB []wire.Change
	for i := range 30 {
		fromA = append(fromA, a.change(i%4, i))
		fromB = append(fromB, b.change(i%3, i))
	}
	a.queue(fromA...)
	b.queue(fromB...)
	run(t, 100, 200*time.Millisecond, a, b)
	checkReplay(t, "b", b.replayed(), fromA)
	checkReplay(t, "a", a.replayed(), fromB)
	for _, n := range []*node{a, b} {
		s := n.status()
		if s.HighestAcked != s.HighestAssigned || s.AckSent != s.Contiguous || s.Contiguous == 0 {
			t.Errorf("%s: %s, ack sent %d", n.name, summary(s), s.AckSent)
		}
		if c := n.link.Counters(); c.Duplicates != 0 || len(c.Quarantined) != 0 || c.GapsOpened != 0 {
			t.Errorf("%s counters on a clean link: %+v", n.name, c)
		}
	}
}

func TestBatching(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.MaxBatchChanges, o.MaxBatchBytes = DefaultMaxBatchChanges, DefaultMaxBatchBytes
	a.start(o)
	b.start(o)
	ctx := context.Background()

	// A single change waits for the linger time, then leaves.
	a.queue(a.change(1, 1))
	if err := a.link.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.link.Counters().EnvelopesSealed; got != 0 {
		t.Fatalf("sealed %d envelopes before the linger time, want 0", got)
	}
	clk.Advance(o.Linger)
	if err := a.link.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if c := a.link.Counters(); c.EnvelopesSealed != 1 || c.EnvelopesSent != 1 {
		t.Fatalf("after the linger time: sealed %d, sent %d, want 1 and 1", c.EnvelopesSealed, c.EnvelopesSent)
	}

	// A burst of 1,000 goes at once in a few envelopes.
	var burst []wire.Change
	for i := range 1000 {
		burst = append(burst, a.change(i%50, i+2))
	}
	a.queue(burst...)
	if err := a.link.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.link.Counters().EnvelopesSealed - 1; got < 2 || got > 3 {
		t.Errorf("a burst of 1000 changes made %d envelopes, want 2 or 3", got)
	}
	run(t, 50, 200*time.Millisecond, a, b)
	checkReplay(t, "b", b.replayed(), append([]wire.Change{a.change(1, 1)}, burst...))
}

func TestAckAloneAndHeartbeat(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	a.start(o)
	b.start(o)
	ctx := context.Background()
	// First steps send the start-up heartbeats.
	step(t, 0, a, b)
	a.queue(a.change(1, 1))
	clk.Advance(o.Linger)
	step(t, 0, a, b) // a seals and sends
	step(t, 0, b)    // b receives: the ack is due after AckDelay
	if got := b.link.Counters().AcksSent; got != 0 {
		t.Fatalf("b sent %d acks before the ack delay", got)
	}
	clk.Advance(o.AckDelay)
	step(t, 0, b, a)
	if got := b.link.Counters().AcksSent; got != 1 {
		t.Fatalf("b sent %d acks after the ack delay, want 1", got)
	}
	if s := a.status(); s.HighestAcked != 1 {
		t.Fatalf("a: peer acked %d, want 1", s.HighestAcked)
	}
	// Idle: one heartbeat per interval on each side, no acks.
	hb := a.link.Counters().HeartbeatsSent
	for range 3 {
		clk.Advance(o.HeartbeatInterval)
		step(t, 0, a, b)
	}
	if got := a.link.Counters().HeartbeatsSent - hb; got != 3 {
		t.Errorf("a sent %d heartbeats in 3 intervals, want 3", got)
	}
	if got := b.link.Counters().AcksSent; got != 1 {
		t.Errorf("b sent %d acks while idle, want still 1", got)
	}
	silent, _, err := a.link.Silence(ctx)
	if err != nil || silent {
		t.Errorf("a silent=%v (%v) while b heartbeats", silent, err)
	}
	// b goes quiet: a notices after the threshold.
	clk.Advance(o.SilenceThreshold)
	silent, since, err := a.link.Silence(ctx)
	if err != nil || !silent || since < o.SilenceThreshold {
		t.Errorf("a silent=%v since %v (%v), want silent past %v", silent, since, err, o.SilenceThreshold)
	}
}

// dropSeqs is a sender that swallows the first send of chosen numbers.
type dropSeqs struct {
	next    transport.Sender
	drop    map[uint64]bool
	dropped int
}

func (d *dropSeqs) Send(ctx context.Context, o transport.Outgoing) error {
	if o.Kind == wire.KindChanges && d.drop[o.Seq] {
		delete(d.drop, o.Seq)
		d.dropped++
		return nil
	}
	return d.next.Send(ctx, o)
}
func (d *dropSeqs) Close() error { return d.next.Close() }

func TestGapResendAndTail(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.MaxBatchChanges = 1
	drop := &dropSeqs{next: a.sender, drop: map[uint64]bool{2: true, 5: true}} // 5 is the last: a tail gap
	a.sender = drop
	a.start(o)
	b.start(o)
	var want []wire.Change
	for i := range 5 {
		want = append(want, a.change(1, i))
	}
	a.queue(want...)
	run(t, 200, time.Second, a, b)
	checkReplay(t, "b", b.replayed(), want)
	cb, ca := b.link.Counters(), a.link.Counters()
	if drop.dropped != 2 || cb.GapsOpened != 2 || cb.ResendAsked < 1 || ca.Resent < 2 {
		t.Errorf("dropped %d; b gaps %d, resend requests %d; a re-sent %d", drop.dropped, cb.GapsOpened, cb.ResendAsked, ca.Resent)
	}
}

// TestFaults is the acceptance run: every fault at 10% both ways, a few
// thousand changes on both sides, then the faults stop and both replay
// queues must hold every change of the peer exactly once, in issue order.
func TestFaults(t *testing.T) {
	t.Parallel()
	n, issues := 2000, 200 // per side
	if raceBuild {
		n = 1200
	}
	if os.Getenv("JIRABRIDGE_SOAK") == "1" {
		n, issues = 20000, 1000
	}
	clk := newClock()
	a, b := newPair(t, clk)
	for i, x := range []*node{a, b} {
		x.fault = faulty.New(x.sender, faulty.Options{Rates: faulty.All(0.1), Seed: uint64(42 + i),
			DelayFor: 15 * time.Second, Now: clk.Now})
	}
	o := testOptions()
	o.MaxBatchChanges = 15 // many envelopes, so every fault hits often
	a.start(o)
	b.start(o)
	reg := map[*node]*metrics.Metrics{a: metrics.New(nil), b: metrics.New(nil)}
	a.link.o.Metrics, b.link.o.Metrics = reg[a], reg[b]
	var fromA, fromB []wire.Change
	for round := 0; len(fromA) < n; round++ {
		var ba, bb []wire.Change
		for i := range 37 {
			k := round*37 + i
			ba = append(ba, a.change((k*7)%issues, k))
			bb = append(bb, b.change((k*11)%issues, k))
		}
		a.queue(ba...)
		b.queue(bb...)
		fromA, fromB = append(fromA, ba...), append(fromB, bb...)
		step(t, 300*time.Millisecond, a, b)
	}
	for range 40 { // faults go on while the gaps are repaired
		step(t, 300*time.Millisecond, a, b)
	}
	for _, x := range []*node{a, b} {
		x.fault.SetEnabled(false)
		if err := x.fault.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	rounds := run(t, 2000, time.Second, a, b)
	t.Logf("settled %d rounds after the faults stopped", rounds)
	checkReplay(t, "b", b.replayed(), fromA)
	checkReplay(t, "a", a.replayed(), fromB)
	for _, x := range []*node{a, b} {
		f := x.fault.Counts()
		c := x.peer.link.Counters()
		t.Logf("%s faults %v; %s counters: dup %d stale %d quarantined %v gaps %d asked %d; %s re-sent %d",
			x.name, f, x.peer.name, c.Duplicates, c.StaleControls, c.Quarantined, c.GapsOpened, c.ResendAsked,
			x.name, x.link.Counters().Resent)
		for _, name := range []string{faulty.Drop, faulty.Duplicate, faulty.Reorder, faulty.Delay, faulty.Corrupt, faulty.Replay} {
			if f[name] == 0 {
				t.Errorf("%s: fault %s never hit", x.name, name)
			}
		}
		if got := c.Quarantined["bad_signature"]; got != int64(f[faulty.Corrupt]) {
			t.Errorf("%s quarantined %d bad_signature, %s corrupted %d", x.peer.name, got, x.name, f[faulty.Corrupt])
		}
		if c.Duplicates+c.StaleControls < int64(f[faulty.Duplicate]) {
			t.Errorf("%s dropped %d duplicates and %d stale controls, %s duplicated %d",
				x.peer.name, c.Duplicates, c.StaleControls, x.name, f[faulty.Duplicate])
		}
		if c.GapsOpened == 0 || c.ResendAsked == 0 || x.link.Counters().Resent == 0 {
			t.Errorf("drops did not open gaps (%d) and resend requests (%d) answered by re-sends (%d)",
				c.GapsOpened, c.ResendAsked, x.link.Counters().Resent)
		}
		m := reg[x.peer]
		for _, tc := range []struct {
			name      string
			got, want float64
		}{
			{"quarantined bad_signature", testutil.ToFloat64(m.Quarantined.WithLabelValues("bad_signature")), float64(f[faulty.Corrupt])},
			{"duplicates", testutil.ToFloat64(m.Duplicates), float64(c.Duplicates + c.StaleControls)},
			{"gaps opened", testutil.ToFloat64(m.GapsOpened), float64(c.GapsOpened)},
			{"resend requests asked", testutil.ToFloat64(m.ResendRequests.WithLabelValues("asked")), float64(c.ResendAsked)},
			{"resend requests answered", testutil.ToFloat64(reg[x].ResendRequests.WithLabelValues("answered")), float64(x.link.Counters().Resent)},
		} {
			if tc.got != tc.want {
				t.Errorf("%s metric %s = %v, want %v", x.peer.name, tc.name, tc.got, tc.want)
			}
		}
		if len(c.Quarantined) != 1 {
			t.Errorf("%s quarantined for reasons %v, want only bad_signature", x.peer.name, c.Quarantined)
		}
	}
}

// TestCrashRestart closes and reopens both stores and links several times
// in the middle of a two-way stream, with faults on; nothing is lost or
// doubled.
func TestCrashRestart(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	for i, x := range []*node{a, b} {
		x.fault = faulty.New(x.sender, faulty.Options{Rates: faulty.Rates{Drop: 0.1, Duplicate: 0.1, Reorder: 0.1},
			Seed: uint64(7 + i), Now: clk.Now})
	}
	// A crash between storing an envelope and acking its mail: every
	// fifth ack is lost, so the mail comes back after the restart.
	lost := 0
	for _, x := range []*node{a, b} {
		x.wrapRecv = func(r *memlink.Receiver) transport.Receiver { return &loseAcks{Receiver: r, every: 5, lost: &lost} }
	}
	o := testOptions()
	a.start(o)
	b.start(o)
	var fromA, fromB []wire.Change
	for round := range 60 {
		var ba, bb []wire.Change
		for i := range 10 {
			k := round*10 + i
			ba = append(ba, a.change(k%13, k))
			bb = append(bb, b.change(k%17, k))
		}
		a.queue(ba...)
		b.queue(bb...)
		fromA, fromB = append(fromA, ba...), append(fromB, bb...)
		step(t, 400*time.Millisecond, a, b)
		switch round % 15 {
		case 5:
			a.restart()
		case 10:
			b.restart()
		case 14:
			a.restart()
			b.restart()
		}
	}
	for _, x := range []*node{a, b} {
		x.fault.SetEnabled(false)
		_ = x.fault.Flush(context.Background())
	}
	run(t, 1000, time.Second, a, b)
	checkReplay(t, "b", b.replayed(), fromA)
	checkReplay(t, "a", a.replayed(), fromB)
	dups := int64(0)
	for _, x := range []*node{a, b} {
		for _, c := range append(x.before, x.link.Counters()) {
			dups += c.Duplicates
		}
	}
	if lost == 0 || dups == 0 {
		t.Errorf("lost %d acks, yet no duplicates after restarts", lost)
	}
}

// loseAcks forgets every nth ack, as a crash after the inbox commit and
// before the mail is deleted would.
type loseAcks struct {
	*memlink.Receiver
	every, n int
	lost     *int
}

func (l *loseAcks) Poll(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	in, ack, err := l.Receiver.Poll(ctx)
	if in == nil || err != nil {
		return in, ack, err
	}
	l.n++
	if l.n%l.every == 0 {
		*l.lost++
		return in, func(context.Context, transport.Disposition) error { return nil }, nil
	}
	return in, ack, nil
}

// TestPrunedResend: b loses its store (restored from an old backup) after
// a pruned what b had acked; b asks for it, a answers "pruned", and b
// records a failure that tells the operator to resync, then goes on.
func TestPrunedResend(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.MaxBatchChanges = 2
	a.start(o)
	b.start(o)
	var first []wire.Change
	for i := range 6 {
		first = append(first, a.change(1, i))
	}
	a.queue(first...)
	run(t, 100, time.Second, a, b)
	// a prunes after the retention period.
	clk.Advance(o.Retention + time.Hour)
	step(t, time.Second, a, b)
	if s := a.status(); s.Outbox.PrunedThrough != 3 {
		t.Fatalf("a pruned through %d, want 3", s.Outbox.PrunedThrough)
	}
	// b's store is replaced by an empty one with the same keys.
	b.link.o.Receiver.Close()
	b.st.Close()
	if err := os.Remove(b.path); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(b.path + "-wal")
	_ = os.Remove(b.path + "-shm")
	b.st = openStore(t, b.path, clk)
	b.setupSync(t)
	b.start(o)
	later := []wire.Change{a.change(1, 100), a.change(2, 101)}
	a.queue(later...)
	run(t, 200, time.Second, a, b)
	checkReplay(t, "b", b.replayed(), later)
	if got := a.link.Counters().ResendPruned; got != 3 {
		t.Errorf("a answered %d numbers as pruned, want 3", got)
	}
	var fails []store.Failure
	_ = b.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		fails, err = tx.FailureList(testSync, 10)
		return err
	})
	if len(fails) != 1 || fails[0].Kind != "resend-pruned" || !strings.Contains(fails[0].ErrorText, "jirabridge resync") ||
		!strings.Contains(fails[0].ErrorText, "1 to 3") {
		t.Fatalf("b failures %+v, want one resend-pruned record for 1 to 3 naming jirabridge resync", fails)
	}
}

func TestChunkedAttachment(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.MaxMailSize = 400 << 10 // chunks of about 200 KiB
	o.MaxBatchBytes = 32 << 10
	rec := &recorder{next: a.sender}
	drop := &dropSeqs{next: rec, drop: map[uint64]bool{3: true}} // a chunk in the middle
	a.sender = drop
	a.start(o)
	b.start(o)
	data := make([]byte, 900<<10)
	for i := range data {
		data[i] = byte(i*7 + i/1000)
	}
	sum := sha256.Sum256(data)
	att := a.change(9, 1)
	att.Kind, att.Fields = wire.AttachmentAdd, nil
	att.Attachment = &wire.Attachment{ID: "att-1", Filename: "big.bin", MimeType: "application/octet-stream", Data: data}
	want := []wire.Change{a.change(9, 0), att, a.change(9, 2)}
	a.queue(want...)
	run(t, 200, time.Second, a, b)
	if ca := a.link.Counters(); ca.ChunksSent < 4 || drop.dropped != 1 {
		t.Fatalf("sent %d chunks, dropped %d; want at least 4 and 1", ca.ChunksSent, drop.dropped)
	}
	got := b.replayed()
	if len(got) != 3 {
		t.Fatalf("b replay queue has %d changes, want 3", len(got))
	}
	g := got[1].Attachment
	if g == nil || !bytes.Equal(g.Data, data) || g.SHA256 != hex.EncodeToString(sum[:]) || g.ChunkRef != "" || g.Filename != "big.bin" {
		t.Fatalf("reassembled attachment wrong: %v", g != nil && bytes.Equal(g.Data, data))
	}
	if c := b.link.Counters(); c.Reassembled != 1 || c.ChunkFailures != 0 {
		t.Errorf("b reassembled %d, failures %d", c.Reassembled, c.ChunkFailures)
	}
	checkReplay(t, "b", got, want)
	for _, s := range rec.sizes {
		if mail := float64(s)*1.37 + mailOverhead; mail > float64(o.MaxMailSize) {
			t.Errorf("an envelope of %d bytes makes a mail of about %.0f bytes, over %d", s, mail, o.MaxMailSize)
		}
	}
}

type recorder struct {
	next  transport.Sender
	sizes []int
}

func (r *recorder) Send(ctx context.Context, o transport.Outgoing) error {
	r.sizes = append(r.sizes, len(o.Sealed))
	return r.next.Send(ctx, o)
}
func (r *recorder) Close() error { return r.next.Close() }

func TestForeignAndForged(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	a.start(testOptions())
	b.start(testOptions())
	other, _ := wire.GenerateNodeKeys()
	seal := func(sync, sender string, signer wire.NodeKeys, seq uint64) []byte {
		body, _ := wire.EncodeChanges([]wire.Change{a.change(1, int(seq))})
		s, err := wire.Seal(wire.Envelope{Header: wire.Header{Sync: sync, Sender: sender, Seq: seq, Kind: wire.KindChanges,
			Created: clk.Now()}, Body: body}, signer.Signing, b.keys.Public().Recipient)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a.out.Put(transport.Meta{}, seal("sync-other", "node-a", a.keys, 1)) // another sync
	a.out.Put(transport.Meta{}, seal(testSync, "node-x", other, 1))      // another node
	a.out.Put(transport.Meta{}, seal(testSync, "node-a", other, 1))      // forged signature
	a.out.Put(transport.Meta{}, []byte("From: someone\r\n\r\nhello"))    // not ours at all
	a.out.Put(transport.Meta{}, seal(testSync, "node-a", a.keys, 1))     // genuine
	a.out.Put(transport.Meta{}, seal(testSync, "node-a", a.keys, 1))     // replayed
	step(t, time.Second, b)
	want := map[string]int64{"unknown_sync": 1, "unknown_sender": 1, "bad_signature": 1, "not_jirabridge": 1}
	c := b.link.Counters()
	for k, v := range want {
		if c.Quarantined[k] != v {
			t.Errorf("quarantined %s: %d, want %d (all: %v)", k, c.Quarantined[k], v, c.Quarantined)
		}
	}
	if c.EnvelopesReceived != 1 || c.Duplicates != 1 || c.ChangesReleased != 1 {
		t.Errorf("received %d, duplicates %d, released %d; want 1, 1, 1", c.EnvelopesReceived, c.Duplicates, c.ChangesReleased)
	}
	if got := len(a.out.Quarantine()); got != 4 || a.out.Len() != 0 {
		t.Errorf("mailbox quarantine has %d mails, %d left; want 4 and 0", got, a.out.Len())
	}
	var qs []store.Quarantined
	_ = b.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		qs, err = tx.QuarantineList(10)
		return err
	})
	if len(qs) != 4 {
		t.Errorf("store quarantine has %d records, want 4", len(qs))
	}
}

func TestSendErrorsBackOff(t *testing.T) {
	t.Parallel()
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	a.start(o)
	b.start(o)
	a.out.FailSends(errclass.New(errclass.Temporary, "test", errors.New("server busy")))
	a.queue(a.change(1, 1))
	clk.Advance(o.Linger)
	step(t, 0, a)
	if c := a.link.Counters(); c.SendErrors == 0 || c.EnvelopesSent != 0 {
		t.Fatalf("send errors %d, sent %d", c.SendErrors, c.EnvelopesSent)
	}
	errs := a.link.Counters().SendErrors
	step(t, 0, a) // still backing off: no new attempt
	if got := a.link.Counters().SendErrors; got != errs {
		t.Errorf("retried during back-off: %d errors, want %d", got, errs)
	}
	a.out.FailSends(nil)
	run(t, 100, time.Second, a, b)
	checkReplay(t, "b", b.replayed(), []wire.Change{a.change(1, 1)})
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }
func itoa(v int) string { return strconv.Itoa(v) }
