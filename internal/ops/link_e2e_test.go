package ops

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/link"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/memlink"
)

// linkNode is one bridge's link over an in-memory mailbox (internal/link
// with transport/memlink), for the link's alert conditions.
type linkNode struct {
	name   string
	st     *store.Store
	keys   wire.NodeKeys
	out    *memlink.Mailbox
	in     *memlink.Mailbox
	sender transport.Sender
	link   *link.Link
	peer   *linkNode
}

func newLinkPair(t *testing.T, c *clock) (a, b *linkNode) {
	t.Helper()
	dir := t.TempDir()
	a, b = &linkNode{name: "node-a"}, &linkNode{name: "node-b"}
	a.peer, b.peer = b, a
	a.out, b.out = memlink.Pair()
	a.in, b.in = b.out, a.out
	for _, n := range []*linkNode{a, b} {
		k, err := wire.GenerateNodeKeys()
		if err != nil {
			t.Fatal(err)
		}
		n.keys = k
	}
	for _, n := range []*linkNode{a, b} {
		st, err := store.Open(context.Background(), filepath.Join(dir, n.name, store.FileName), &store.Options{Now: c.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		n.st = st
		pub := n.peer.keys.Public()
		if err := st.Update(context.Background(), func(tx *store.Tx) error {
			if err := tx.SyncPut(store.Sync{ID: testSync, Name: "ops-demo", Role: store.RoleMaster, ProjectKey: "OPS",
				SyncUser: "bridge", Transport: "mem", State: store.StateRunning, SelfNode: n.name, PeerNode: n.peer.name}); err != nil {
				return err
			}
			return tx.KeysPut(store.Keys{SyncID: testSync, SigningKey: n.keys.Signing, AgeIdentity: n.keys.Identity.String(),
				PeerSigningKey: pub.Signing, PeerAgeRecipient: pub.Recipient.String()})
		}); err != nil {
			t.Fatal(err)
		}
		n.sender = n.out.Sender()
	}
	return a, b
}

func (n *linkNode) start(t *testing.T, c *clock, gapTimeout time.Duration) {
	t.Helper()
	l, err := link.New(context.Background(), link.Options{Store: n.st, SyncID: testSync, Sender: n.sender, Receiver: n.in.NewReceiver(),
		Now: c.Now, Logger: slog.New(slog.DiscardHandler), MaxBatchChanges: 1, Linger: time.Millisecond,
		AckDelay: time.Second, GapTimeout: gapTimeout, HeartbeatInterval: 30 * time.Second, SilenceThreshold: 2 * time.Minute,
		SendBackOff: time.Second, PermanentBackOff: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.link = l
}

func (n *linkNode) queue(t *testing.T, c *clock, count int) {
	t.Helper()
	if err := n.st.Update(context.Background(), func(tx *store.Tx) error {
		for i := range count {
			b, _ := json.Marshal(wire.Change{ID: n.name + ":" + string(rune('a'+i)), IssueID: "1", IssueKey: "OPS-1", Kind: wire.IssueUpdate, At: c.Now()})
			if _, err := tx.PendingAdd(testSync, "1", b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// linkSteps steps the nodes n times, moving the clock dt after each round.
func linkSteps(t *testing.T, c *clock, n int, dt time.Duration, nodes ...*linkNode) {
	t.Helper()
	for range n {
		for _, nd := range nodes {
			if err := nd.link.Step(context.Background()); err != nil {
				t.Logf("step %s: %v", nd.name, err)
			}
		}
		c.Add(dt)
	}
}

// dropOnce swallows the first send of one changes envelope.
type dropOnce struct {
	transport.Sender
	seq     uint64
	dropped bool
}

func (d *dropOnce) Send(ctx context.Context, o transport.Outgoing) error {
	if o.Kind == wire.KindChanges && o.Seq == d.seq && !d.dropped {
		d.dropped = true
		return nil
	}
	return d.Sender.Send(ctx, o)
}

// TestLinkAlerts makes the link's conditions happen in two real links: a
// dropped envelope with resend disabled leaves a gap, a forged envelope is
// quarantined, and a peer that stops leaves silence. Each alert arrives in
// the ops mailbox and at the webhook once and resolves when fixed.
func TestLinkAlerts(t *testing.T) {
	t.Parallel()
	c := newClock()
	a, b := newLinkPair(t, c)
	drop := &dropOnce{Sender: a.sender, seq: 2}
	a.sender = drop
	const noResend = 1000 * time.Hour
	a.start(t, c, noResend)
	b.start(t, c, noResend)

	me := newMailEnv(t)
	hk := newHook(t)
	mn, _ := NewMailNotifier(MailOptions{Mailer: me.mailer, To: []string{me.to}, MinInterval: -1, Now: c.Now})
	wn, _ := NewWebhookNotifier(WebhookOptions{URL: hk.srv.URL})
	ev, err := NewEvaluator(Options{Store: b.st, Now: c.Now, Notifiers: []Notifier{mn, wn}, GapAlertAfter: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ev.SetLink(testSync, b.link)
	r := &rig{c: c, st: b.st, ev: ev, mail: me, hook: hk}

	// A dropped envelope, never asked for again: a gap that stays open.
	a.queue(t, c, 3)
	linkSteps(t, c, 20, time.Second, a, b)
	if !drop.dropped {
		t.Fatal("envelope 2 was not sent")
	}
	r.eval(t)
	r.expectNothing(t, 0)
	linkSteps(t, c, 12, 30*time.Second, a, b)
	r.eval(t)
	text := unfold(r.expectOne(t, 0, AlertGapOpen, StatusFiring))
	if !strings.Contains(text, "envelopes 2 to 2 from the peer are still missing") {
		t.Errorf("gap mail:\n%s", text)
	}
	linkSteps(t, c, 4, 30*time.Second, a, b)
	r.eval(t)
	r.expectNothing(t, 1)

	// A forged envelope: signed with a key that is not the peer's.
	mallory, _ := wire.GenerateNodeKeys()
	body, _ := wire.EncodeChanges([]wire.Change{{ID: "forged", IssueID: "1", IssueKey: "OPS-1", Kind: wire.IssueUpdate, At: c.Now()}})
	forged, err := wire.Seal(wire.Envelope{Header: wire.Header{Sync: testSync, Sender: "node-a", Seq: 99, Kind: wire.KindChanges, Created: c.Now()}, Body: body},
		mallory.Signing, b.keys.Public().Recipient)
	if err != nil {
		t.Fatal(err)
	}
	a.out.Put(transport.Meta{Sync: testSync, Sender: "node-a", Seq: 99, Kind: wire.KindChanges}, forged)
	linkSteps(t, c, 1, time.Second, b)
	r.eval(t)
	text = unfold(r.expectOne(t, 1, AlertMailQuarantined, StatusFiring))
	if !strings.Contains(text, "quarantined as bad_signature") {
		t.Errorf("quarantine mail:\n%s", text)
	}

	// The gap is repaired once resend is on again (restart with it).
	b.start(t, c, 10*time.Second)
	ev.SetLink(testSync, b.link)
	linkSteps(t, c, 20, 5*time.Second, a, b)
	r.eval(t)
	r.expectOne(t, 2, AlertGapOpen, StatusResolved)

	// The operator deals with the quarantined mail.
	r.update(t, func(tx *store.Tx) error {
		qs, err := tx.QuarantineList(10)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if err := tx.QuarantineDelete(q.ID); err != nil {
				return err
			}
		}
		return nil
	})
	r.eval(t)
	r.expectOne(t, 3, AlertMailQuarantined, StatusResolved)

	// The peer stops: silence past the link's threshold.
	linkSteps(t, c, 10, 20*time.Second, b)
	r.eval(t)
	text = unfold(r.expectOne(t, 4, AlertPeerSilent, StatusFiring))
	if !strings.Contains(text, "nothing was heard from the peer") {
		t.Errorf("silence mail:\n%s", text)
	}
	linkSteps(t, c, 4, 20*time.Second, a, b) // the peer is back: heartbeats
	r.eval(t)
	r.expectOne(t, 5, AlertPeerSilent, StatusResolved)
}
