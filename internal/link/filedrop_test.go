package link

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/filedrop"
	"github.com/jirabridge/jirabridge/transport/memlink"
)

// Two links run (real time, Run) over the file drop, the sender wrapped in
// the transport's retry decorator: both ways arrive exactly once and in
// order, control envelopes included (their numbers above 2^63 must survive
// the mail codec and the file names).
func TestRunOverFiledrop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := newClock()
	a, b := newPair(t, clk)
	ab, ba := filepath.Join(dir, "a-to-b"), filepath.Join(dir, "b-to-a")
	for _, d := range []string{ab, ba} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	o := testOptions()
	o.Linger, o.AckDelay, o.Tick, o.HeartbeatInterval = 20*time.Millisecond, 20*time.Millisecond, 10*time.Millisecond, 50*time.Millisecond
	start := func(n *node, out, in string) {
		s, err := filedrop.NewSender(out, filedrop.SenderOptions{From: n.name + "@example.invalid", To: []string{n.peer.name + "@example.invalid"}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := filedrop.NewReceiver(in, filedrop.ReceiverOptions{PollInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n.sender = transport.WithRetry(s, transport.RetryOptions{MaxAttempts: 3, Initial: time.Millisecond})
		n.in = memlink.New() // unused: the receiver is the file drop
		n.start(o)
		n.link.o.Receiver = r
		n.link.o.Now = time.Now
	}
	start(a, ab, ba)
	start(b, ba, ab)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, n := range []*node{a, b} {
		go func() { done <- n.link.Run(ctx) }()
	}
	var fromA, fromB = a.burst(40, 5), b.burst(40, 7)
	a.queue(fromA...)
	b.queue(fromB...)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	done2 := func() bool {
		for _, n := range []*node{a, b} {
			s := n.status()
			if s.Counters.ControlsReceived == 0 || s.HighestAcked != s.HighestAssigned {
				return false
			}
		}
		return len(a.replayed()) >= len(fromB) && len(b.replayed()) >= len(fromA)
	}
	for !done2() && time.Now().Before(deadline) {
		<-tick.C
	}
	tick.Stop()
	cancel()
	for range 2 {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	}
	checkReplay(t, "b", b.replayed(), fromA)
	checkReplay(t, "a", a.replayed(), fromB)
	for _, n := range []*node{a, b} {
		if c := n.link.Counters(); len(c.Quarantined) != 0 || c.ControlsReceived == 0 {
			t.Errorf("%s: quarantined %v, controls received %d", n.name, c.Quarantined, c.ControlsReceived)
		}
	}
	if q, _ := os.ReadDir(filepath.Join(ab, filedrop.QuarantineDir)); len(q) != 0 {
		t.Errorf("%d files quarantined", len(q))
	}
}
