package imappoll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/mailtest"
)

func envelopeMail(t testing.TB, seq uint64) []byte {
	t.Helper()
	raw, err := transport.EncodeMail(transport.Outgoing{
		Meta:   transport.Meta{Sync: "s1", SyncName: "Test", Sender: "node-a", Seq: seq, Kind: transport.KindChanges},
		Sealed: []byte(fmt.Sprintf("sealed envelope %d", seq)),
	}, transport.MailHeader{From: "bridge-a@jirabridge.test", To: []string{"bridge-b@jirabridge.test"}, Date: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

const unrelated = "From: boss@example.com\r\nTo: bridge-b@jirabridge.test\r\nSubject: lunch?\r\n\r\nare you in?\r\n"

func startServer(t *testing.T, opts mailtest.Options) *mailtest.Server {
	t.Helper()
	s, err := mailtest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddUser("bridge-b", "pw"); err != nil {
		t.Fatal(err)
	}
	return s
}

type quarantineLog struct {
	mu      sync.Mutex
	reasons []string
}

func (q *quarantineLog) add(_, reason string) {
	q.mu.Lock()
	q.reasons = append(q.reasons, reason)
	q.mu.Unlock()
}

func (q *quarantineLog) get() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.reasons...)
}

func newReceiver(t *testing.T, s *mailtest.Server, mod func(*Options)) (*Receiver, *quarantineLog) {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.IMAPAddr())
	p, _ := strconv.Atoi(port)
	q := &quarantineLog{}
	opts := Options{
		Host: host, Port: p, TLSMode: TLSPlain, Username: "bridge-b", Password: "pw",
		OnQuarantine: q.add,
		BackOff:      func(int) time.Duration { return 0 },
	}
	if mod != nil {
		mod(&opts)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, q
}

// receive calls Receive until it returns an envelope, retrying retryable
// errors as the contract says.
func receive(ctx context.Context, t *testing.T, r *Receiver) (*transport.Incoming, transport.AckFunc) {
	t.Helper()
	for {
		in, ack, err := r.Receive(ctx)
		if err == nil {
			return in, ack
		}
		if !errclass.IsRetryable(err) {
			t.Fatalf("Receive: %v", err)
		}
	}
}

// folder counts the mails in a folder of bridge-b over a separate session.
func folder(t *testing.T, s *mailtest.Server, name string) int {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bridge-b", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return -1
	}
	return int(*st.NumMessages)
}

func TestReceiveAckMovesAndQuarantines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts mailtest.Options
		mod  func(*Options)
	}{
		{"idle and move", mailtest.Options{}, nil},
		{"poll and copy+expunge", mailtest.Options{NoIdle: true, NoMove: true}, func(o *Options) { o.PollInterval = 10 * time.Millisecond }},
		{"delete after store", mailtest.Options{}, func(o *Options) { o.AfterStore = AfterStoreDelete }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, tc.opts)
			r, q := newReceiver(t, s, tc.mod)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The unrelated mail comes first: it is quarantined before the
			// first envelope is returned.
			if err := s.Deliver("bridge-b", []byte(unrelated)); err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= 3; seq++ {
				if err := s.Deliver("bridge-b", envelopeMail(t, seq)); err != nil {
					t.Fatal(err)
				}
			}
			var got []uint64
			for len(got) < 3 {
				in, ack := receive(ctx, t, r)
				got = append(got, in.Meta.Seq)
				if want := fmt.Sprintf("sealed envelope %d", in.Meta.Seq); string(in.Sealed) != want {
					t.Errorf("sealed = %q, want %q", in.Sealed, want)
				}
				d := transport.Stored
				if in.Meta.Seq == 2 {
					d = transport.Quarantined("bad signature")
				}
				if err := ack(ctx, d); err != nil {
					t.Fatalf("ack: %v", err)
				}
			}
			if err := r.Close(); err != nil { // moves what is still to move
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[1 2 3]" {
				t.Errorf("received %v, want [1 2 3]", got)
			}
			if got := q.get(); len(got) != 1 || got[0] == "" {
				t.Errorf("OnQuarantine reasons = %v, want one", got)
			}
			wantProcessed := 2
			if tc.mod != nil && strings.Contains(tc.name, "delete") {
				wantProcessed = 0
			}
			if n := folder(t, s, "INBOX"); n != 0 {
				t.Errorf("INBOX holds %d mails, want 0", n)
			}
			if n := folder(t, s, "jirabridge-quarantine"); n != 2 {
				t.Errorf("quarantine holds %d mails, want 2", n)
			}
			if n := folder(t, s, "jirabridge-processed"); n != wantProcessed && !(wantProcessed == 0 && n == -1) {
				t.Errorf("processed holds %d mails, want %d", n, wantProcessed)
			}
		})
	}
}

func TestIdleWakesWithoutPoll(t *testing.T) {
	t.Parallel()
	s := startServer(t, mailtest.Options{})
	r, _ := newReceiver(t, s, func(o *Options) { o.PollInterval = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	got := make(chan uint64, 1)
	go func() {
		in, _, err := r.Receive(ctx)
		if err == nil {
			got <- in.Meta.Seq
		}
		close(got)
	}()
	// Deliver once the receiver is in IDLE, so that only IDLE can wake it
	// (the hour-long poll would not).
	if _, err := s.WaitSessions(ctx, func(ss mailtest.Sessions) bool { return ss.Idling > 0 }); err != nil {
		t.Fatalf("the receiver never entered IDLE: %v", err)
	}
	if err := s.Deliver("bridge-b", envelopeMail(t, 7)); err != nil {
		t.Fatal(err)
	}
	if seq, ok := <-got; !ok || seq != 7 {
		t.Fatalf("Receive got %d, %v; want 7 before the 3 s deadline", seq, ok)
	}
}

func TestIdleRestartsOnTimer(t *testing.T) {
	t.Parallel()
	s := startServer(t, mailtest.Options{})
	ticks := make(chan time.Time)
	var mu sync.Mutex
	var asked []time.Duration
	r, _ := newReceiver(t, s, func(o *Options) {
		o.IdleRestart = 20 * time.Minute
		o.PollInterval = time.Hour
		o.After = func(d time.Duration) <-chan time.Time {
			mu.Lock()
			asked = append(asked, d)
			mu.Unlock()
			return ticks
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan *transport.Incoming, 1)
	go func() {
		in, _ := receive(ctx, t, r)
		done <- in
	}()
	// Two IDLE restarts, then a mail.
	ticks <- time.Now()
	ticks <- time.Now()
	if err := s.Deliver("bridge-b", envelopeMail(t, 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-done:
		if in.Meta.Seq != 1 {
			t.Errorf("seq = %d, want 1", in.Meta.Seq)
		}
	case <-ctx.Done():
		t.Fatal("no mail after IDLE restarts")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) < 2 || asked[0] != 20*time.Minute || asked[1] != 20*time.Minute {
		t.Errorf("After called with %v, want 20m for each IDLE", asked)
	}
}

func TestReconnectReadsNothingTwice(t *testing.T) {
	t.Parallel()
	s := startServer(t, mailtest.Options{})
	r, _ := newReceiver(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 20
	for seq := uint64(1); seq <= n; seq++ {
		if err := s.Deliver("bridge-b", envelopeMail(t, seq)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]int{}
	var unacked []transport.AckFunc
	for i := 0; i < n; i++ {
		in, ack := receive(ctx, t, r)
		seen[in.Meta.Seq]++
		switch {
		case i%5 == 2:
			// Drop the session between receive and ack: the ack must still
			// take effect and the mail must not come back.
			s.DropIMAPConnections()
			if err := ack(ctx, transport.Stored); err != nil {
				t.Logf("ack after drop: %v (allowed)", err)
			}
		case i%7 == 3:
			unacked = append(unacked, ack) // acked later, out of order
		default:
			if err := ack(ctx, transport.Stored); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
	}
	for _, ack := range unacked {
		if err := ack(ctx, transport.Stored); err != nil {
			t.Fatalf("late ack: %v", err)
		}
	}
	for seq := uint64(1); seq <= n; seq++ {
		if seen[seq] != 1 {
			t.Errorf("seq %d received %d times, want 1", seq, seen[seq])
		}
	}
	// One more round finishes pending moves; nothing more arrives.
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	for {
		in, _, err := r.Receive(short)
		if err == nil {
			t.Errorf("extra mail %s after all were acked", in.ID)
			break
		}
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if !errclass.IsRetryable(err) {
			t.Fatalf("Receive after all acks: %v", err)
		}
	}
	if got := folder(t, s, "jirabridge-processed"); got != n {
		t.Errorf("processed holds %d, want %d", got, n)
	}
}

func TestPermanentErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, mailtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		mod    func(*Options)
		reason string
	}{
		{"wrong password", func(o *Options) { o.Password = "wrong" }, "imap_auth"},
		{"missing mailbox", func(o *Options) { o.Mailbox = "Nope" }, "imap_mailbox"},
		{"tls against plain server", func(o *Options) { o.TLSMode = TLSImplicit }, "imap_tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newReceiver(t, s, tt.mod)
			_, _, err := r.Receive(ctx)
			if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != tt.reason {
				t.Errorf("Receive err = %v (%v %s), want permanent %s", err, errclass.Of(err), errclass.ReasonOf(err), tt.reason)
			}
		})
	}
}

func TestCancelEndsIdleCleanly(t *testing.T) {
	t.Parallel()
	s := startServer(t, mailtest.Options{})
	r, _ := newReceiver(t, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Receive(ctx)
		done <- err
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if _, err := s.WaitSessions(wctx, func(ss mailtest.Sessions) bool { return ss.Idling > 0 }); err != nil {
		t.Fatalf("the receiver never entered IDLE: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Receive err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not return after cancel")
	}
	if got, err := s.WaitSessions(wctx, func(ss mailtest.Sessions) bool { return ss.Connections == 0 }); err != nil {
		t.Errorf("%d IMAP connections 5 s after cancel, want 0 (logged out)", got.Connections)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	base := Options{Host: "127.0.0.1", Username: "u"}
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"plain to remote", func(o *Options) { o.Host, o.TLSMode = "imap.example.com", TLSPlain }, "loopback"},
		{"idle too long", func(o *Options) { o.IdleRestart = 29 * time.Minute }, "29 minutes"},
		{"bad after-store", func(o *Options) { o.AfterStore = "archive" }, "after-store"},
		{"quarantine is the mailbox", func(o *Options) { o.QuarantineFolder = "INBOX" }, "must differ"},
		{"missing CA", func(o *Options) { o.CAFile = "/nonexistent.pem" }, CAFileVar},
	}
	for _, tt := range tests {
		o := base
		tt.mod(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New err = %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestIdleEndsAtPollIntervalAsSafetyNet(t *testing.T) {
	t.Parallel()
	s := startServer(t, mailtest.Options{})
	asked := make(chan time.Duration, 8)
	r, _ := newReceiver(t, s, func(o *Options) {
		o.PollInterval = 3 * time.Minute
		o.After = func(d time.Duration) <-chan time.Time {
			asked <- d
			return nil
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Receive(ctx); close(done) }()
	if d := <-asked; d != 3*time.Minute {
		t.Errorf("IDLE timer = %v, want the 3m poll interval (shorter than IdleRestart)", d)
	}
	cancel()
	<-done
}
