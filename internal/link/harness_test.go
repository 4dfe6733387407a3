package link

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/faulty"
	"github.com/jirabridge/jirabridge/transport/memlink"
)

const testSync = "sync-1"

// clock is a manual clock shared by both nodes and their stores.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// node is one bridge's side: a store, keys and (when started) a link.
type node struct {
	t      testing.TB
	name   string
	path   string
	clk    *clock
	st     *store.Store
	keys   wire.NodeKeys
	peer   *node
	link   *Link
	out    *memlink.Mailbox // what this node sends into
	in     *memlink.Mailbox // what this node reads from
	fault  *faulty.Sender
	sender transport.Sender // what the link sends with
	opts   Options          // template for the link's options
	// wrapRecv, when set, wraps each new receiver (to lose acks, ...).
	wrapRecv func(*memlink.Receiver) transport.Receiver
	// before holds the counters of links this node ran before a restart.
	before []Counters
}

func openStore(t testing.TB, path string, clk *clock) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path, &store.Options{Now: clk.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

// newPair builds two nodes with exchanged keys and mailboxes in between.
func newPair(t testing.TB, clk *clock) (*node, *node) {
	t.Helper()
	dir := t.TempDir()
	a := &node{t: t, name: "node-a", path: filepath.Join(dir, "a", store.FileName), clk: clk}
	b := &node{t: t, name: "node-b", path: filepath.Join(dir, "b", store.FileName), clk: clk}
	a.peer, b.peer = b, a
	for _, n := range []*node{a, b} {
		k, err := wire.GenerateNodeKeys()
		if err != nil {
			t.Fatal(err)
		}
		n.keys = k
	}
	a.out, b.out = memlink.Pair()
	a.in, b.in = b.out, a.out
	for _, n := range []*node{a, b} {
		n.st = openStore(t, n.path, clk)
		n.setupSync(t)
		n.sender = n.out.Sender()
	}
	t.Cleanup(func() {
		for _, n := range []*node{a, b} {
			if n.st != nil {
				n.st.Close()
			}
		}
	})
	return a, b
}

func (n *node) setupSync(t testing.TB) {
	t.Helper()
	err := n.st.Update(context.Background(), func(tx *store.Tx) error {
		if err := tx.SyncPut(store.Sync{ID: testSync, Name: "test sync", Role: store.RoleMaster, ProjectKey: "P",
			SyncUser: "sync", Transport: "mem", State: store.StateRunning, SelfNode: n.name, PeerNode: n.peer.name}); err != nil {
			return err
		}
		pub := n.peer.keys.Public()
		return tx.KeysPut(store.Keys{SyncID: testSync, SigningKey: n.keys.Signing, AgeIdentity: n.keys.Identity.String(),
			PeerSigningKey: pub.Signing, PeerAgeRecipient: pub.Recipient.String()})
	})
	if err != nil {
		t.Fatalf("set up sync on %s: %v", n.name, err)
	}
}

// testOptions are fast settings for the manual clock.
func testOptions() Options {
	return Options{
		MaxBatchChanges: 50, MaxBatchBytes: 64 << 10, Linger: 500 * time.Millisecond,
		AckDelay: time.Second, GapTimeout: 10 * time.Second, HeartbeatInterval: 30 * time.Second,
		SilenceThreshold: 2 * time.Minute, Retention: 24 * time.Hour,
		SendBackOff: time.Second, PermanentBackOff: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// start builds the node's link (again, after a restart).
func (n *node) start(o Options) {
	n.t.Helper()
	o.Store, o.SyncID, o.Now = n.st, testSync, n.clk.Now
	o.Sender = n.sender
	if n.fault != nil {
		o.Sender = n.fault
	}
	o.Receiver = n.in.NewReceiver()
	if n.wrapRecv != nil {
		o.Receiver = n.wrapRecv(o.Receiver.(*memlink.Receiver))
	}
	l, err := New(context.Background(), o)
	if err != nil {
		n.t.Fatalf("new link %s: %v", n.name, err)
	}
	n.link, n.opts = l, o
}

// restart closes the receiver and the store, reopens them and builds a
// new link: what a crashed and restarted bridge does.
func (n *node) restart() {
	n.t.Helper()
	n.before = append(n.before, n.link.Counters())
	n.link.o.Receiver.Close()
	if err := n.st.Close(); err != nil {
		n.t.Fatal(err)
	}
	n.st = openStore(n.t, n.path, n.clk)
	n.start(n.opts)
}

// change builds change number i of an issue of this node.
func (n *node) change(issue, i int) wire.Change {
	return wire.Change{
		ID: fmt.Sprintf("%s:%d:%d", n.name, issue, i), IssueID: strconv.Itoa(issue), IssueKey: fmt.Sprintf("P-%d", issue),
		Kind: wire.IssueUpdate, At: n.clk.Now(),
		Fields: map[string]wire.FieldChange{"summary": {Before: wire.StringValue("old"),
			After: wire.StringValue(fmt.Sprintf("summary %d of issue %d %s", i, issue, strings.Repeat("x", i%200)))}},
	}
}

// burst makes n changes over the given number of issues.
func (n *node) burst(count, issues int) []wire.Change {
	out := make([]wire.Change, count)
	for i := range out {
		out[i] = n.change(i%issues, i)
	}
	return out
}

// queue writes changes to pending_changes as detection does.
func (n *node) queue(changes ...wire.Change) {
	n.t.Helper()
	err := n.st.Update(context.Background(), func(tx *store.Tx) error {
		for _, c := range changes {
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if _, err := tx.PendingAdd(testSync, c.IssueID, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.t.Fatalf("queue on %s: %v", n.name, err)
	}
}

// replayed returns the node's replay queue in queue order.
func (n *node) replayed() []wire.Change {
	n.t.Helper()
	var items []store.ReplayItem
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		items, err = tx.ReplayByState(testSync, store.ReplayPending, 1_000_000)
		return err
	})
	if err != nil {
		n.t.Fatal(err)
	}
	out := make([]wire.Change, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it.Change, &out[i]); err != nil {
			n.t.Fatalf("replay item %d: %v", it.ID, err)
		}
		if out[i].ID != it.ChangeID || out[i].IssueID != it.Issue {
			n.t.Fatalf("replay item %d keyed %s/%s holds %s/%s", it.ID, it.Issue, it.ChangeID, out[i].IssueID, out[i].ID)
		}
	}
	return out
}

func (n *node) status() Status {
	n.t.Helper()
	s, err := n.link.Status(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	return s
}

// step runs one round on both nodes and moves the clock on.
func step(t *testing.T, dt time.Duration, nodes ...*node) {
	t.Helper()
	ctx := context.Background()
	for _, n := range nodes {
		if err := n.link.Step(ctx); err != nil {
			t.Logf("step %s: %v", n.name, err)
		}
		if n.fault != nil {
			if err := n.fault.Tick(ctx); err != nil {
				t.Logf("tick %s: %v", n.name, err)
			}
		}
	}
	nodes[0].clk.Advance(dt)
}

// settled reports whether both directions are done: nothing pending or
// unacked, no gaps, and every number sent is released at the peer.
func settled(t *testing.T, nodes ...*node) bool {
	t.Helper()
	for _, n := range nodes {
		s := n.status()
		var pending store.PendingStats
		_ = n.st.View(context.Background(), func(tx *store.Tx) error {
			var err error
			pending, err = tx.PendingStats(testSync)
			return err
		})
		ps := n.peer.status()
		if pending.Count > 0 || s.Outbox.Depth > 0 || len(s.OpenGaps) > 0 ||
			ps.Contiguous != s.HighestAssigned || (n.fault != nil && n.fault.Held() > 0) {
			return false
		}
	}
	return true
}

// checkReplay asserts that got holds every change of want exactly once and
// each issue's changes in their original order.
func checkReplay(t *testing.T, who string, got, want []wire.Change) {
	t.Helper()
	seen := map[string]int{}
	for _, c := range got {
		seen[c.ID]++
	}
	missing, doubled := 0, 0
	for _, c := range want {
		switch seen[c.ID] {
		case 0:
			missing++
		case 1:
		default:
			doubled++
		}
	}
	if missing > 0 || doubled > 0 || len(got) != len(want) {
		t.Errorf("%s replay queue: %d changes, want %d; %d missing, %d doubled", who, len(got), len(want), missing, doubled)
	}
	pos := map[string]int{}
	for i, c := range want {
		pos[c.ID] = i
	}
	last := map[string]int{}
	bad := 0
	for _, c := range got {
		p, ok := pos[c.ID]
		if !ok {
			t.Errorf("%s replay queue holds unknown change %s", who, c.ID)
			continue
		}
		if l, ok := last[c.IssueID]; ok && p < l {
			bad++
		}
		last[c.IssueID] = p
	}
	if bad > 0 {
		t.Errorf("%s replay queue: %d changes out of their issue's order", who, bad)
	}
}
