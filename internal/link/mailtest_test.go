package link

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/imappoll"
	"github.com/jirabridge/jirabridge/transport/mailtest"
	"github.com/jirabridge/jirabridge/transport/memlink"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
)

// overMail points both nodes at an in-process SMTP + IMAP server: each
// sends to the peer's INBOX with smtpsend (wrapped in WithRetry) and
// reads its own INBOX with imappoll (IDLE).
func overMail(tb testing.TB, srv *mailtest.Server, o Options, nodes ...*node) {
	tb.Helper()
	split := func(addr string) (string, int) {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			tb.Fatal(err)
		}
		n, _ := strconv.Atoi(p)
		return h, n
	}
	shost, sport := split(srv.SMTPAddr())
	ihost, iport := split(srv.IMAPAddr())
	for _, n := range nodes {
		if err := srv.AddUser(n.name, n.name+"-pw"); err != nil {
			tb.Fatal(err)
		}
	}
	for _, n := range nodes {
		s, err := smtpsend.New(smtpsend.Options{Host: shost, Port: sport, TLSMode: smtpsend.TLSPlain, HELO: "localhost",
			Username: n.name, Password: n.name + "-pw", AuthMechanism: smtpsend.AuthPlain,
			From: n.name + "@" + srv.Domain(), To: []string{srv.Address(n.peer.name, "")}})
		if err != nil {
			tb.Fatal(err)
		}
		r, err := imappoll.New(imappoll.Options{Host: ihost, Port: iport, TLSMode: imappoll.TLSPlain,
			Username: n.name, Password: n.name + "-pw", ProcessedFolder: "processed", QuarantineFolder: "quarantine",
			State: imappoll.NewMemoryState(), BackOff: func(int) time.Duration { return 10 * time.Millisecond }})
		if err != nil {
			tb.Fatal(err)
		}
		n.sender = transport.WithRetry(s, transport.RetryOptions{MaxAttempts: 3, Initial: time.Millisecond})
		n.in = memlink.New() // unused: the receiver is IMAP
		n.start(o)
		n.link.o.Receiver = r
		n.link.o.Now = time.Now
	}
}

// runUntil runs both links until cond holds or the deadline passes.
func runUntil(tb testing.TB, d time.Duration, cond func() bool, nodes ...*node) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { done <- n.link.Run(ctx) }()
	}
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	for !cond() && time.Now().Before(deadline) {
		<-tick.C
	}
	tick.Stop()
	cancel()
	for range nodes {
		if err := <-done; !errors.Is(err, context.Canceled) {
			tb.Errorf("Run returned %v", err)
		}
	}
}

// Two links over SMTP and IMAP (in process), with the server failing one
// mail with a 4xx and dropping the IMAP sessions once.
func TestRunOverMailtest(t *testing.T) {
	t.Parallel()
	srv, err := mailtest.Start(mailtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.FailNth(3, 451, "try again later")
	clk := newClock()
	a, b := newPair(t, clk)
	o := testOptions()
	o.Linger, o.AckDelay, o.Tick, o.HeartbeatInterval = 20*time.Millisecond, 20*time.Millisecond, 10*time.Millisecond, 100*time.Millisecond
	o.MaxBatchChanges = 5
	overMail(t, srv, o, a, b)
	fromA, fromB := a.burst(60, 6), b.burst(60, 4)
	a.queue(fromA...)
	b.queue(fromB...)
	dropped := false
	runUntil(t, 60*time.Second, func() bool {
		if !dropped && len(b.replayed()) > 10 {
			srv.DropIMAPConnections()
			dropped = true
		}
		for _, n := range []*node{a, b} {
			if s := n.status(); s.HighestAcked != s.HighestAssigned || s.HighestAssigned == 0 {
				return false
			}
		}
		return len(a.replayed()) >= len(fromB) && len(b.replayed()) >= len(fromA)
	}, a, b)
	checkReplay(t, "b", b.replayed(), fromA)
	checkReplay(t, "a", a.replayed(), fromB)
	for _, n := range []*node{a, b} {
		if c := n.link.Counters(); len(c.Quarantined) != 0 {
			t.Errorf("%s quarantined %v", n.name, c.Quarantined)
		}
	}
}

// BenchmarkMailtest sends bursts of changes one way through the real
// codec, SMTP and IMAP (in process) with the default batch settings and
// reports changes per second, mails per change and bytes per change.
func BenchmarkMailtest(b *testing.B) {
	const changes = 2000
	for range b.N {
		b.StopTimer()
		srv, err := mailtest.Start(mailtest.Options{})
		if err != nil {
			b.Fatal(err)
		}
		clk := newClock()
		x, y := newPair(b, clk)
		o := testOptions()
		o.MaxBatchChanges, o.MaxBatchBytes, o.Linger, o.Tick = DefaultMaxBatchChanges, DefaultMaxBatchBytes, DefaultLinger, DefaultTick
		overMail(b, srv, o, x, y)
		rec := &recorder{next: x.sender}
		x.sender = rec
		x.link.o.Sender = rec
		burst := x.burst(changes, 100)
		for i := range burst {
			burst[i].Fields["description"] = wire.FieldChange{After: wire.StringValue(
				"A description that reads like text people write in Jira, change " + strconv.Itoa(i))}
		}
		b.StartTimer()
		start := time.Now()
		x.queue(burst...)
		x.link.Wake()
		runUntil(b, 5*time.Minute, func() bool { return len(y.replayed()) >= changes }, x, y)
		el := time.Since(start)
		b.StopTimer()
		var bytes int
		for _, s := range rec.sizes {
			bytes += s
		}
		b.ReportMetric(changes/el.Seconds(), "changes/s")
		b.ReportMetric(float64(x.link.Counters().EnvelopesSealed)/changes, "mails/change")
		b.ReportMetric(float64(bytes)/changes, "sealedbytes/change")
		srv.Close()
	}
}
