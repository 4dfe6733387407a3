package imappoll_test

// Integration tests against the real Postfix + Dovecot stack that
// scripts/mailstack.sh starts (make test does, as root). They run one after
// the other: one of them restarts Dovecot.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/imappoll"
	"github.com/jirabridge/jirabridge/transport/mailstack"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
	"github.com/jirabridge/jirabridge/transport/transporttest"
)

func newPair(t *testing.T, h *harness) (*smtpsend.Sender, *imappoll.Receiver) {
	t.Helper()
	s := h.NewSender(t).(*smtpsend.Sender)
	r := h.NewReceiver(t).(*imappoll.Receiver)
	t.Cleanup(func() { s.Close(); r.Close() })
	return s, r
}

// sendAll sends envelopes first..last in a goroutine, retrying retryable
// errors as the retry decorator would; the returned channel yields the
// first permanent error or nil.
func sendAll(ctx context.Context, s transport.Sender, first, last uint64, size int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for seq := first; seq <= last; seq++ {
			for {
				err := s.Send(ctx, transporttest.Envelope(seq, size))
				if err == nil {
					break
				}
				if !errclass.IsRetryable(err) || ctx.Err() != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	return done
}

// receiveN receives until n new sequence numbers arrived, acks each
// envelope as stored, and fails when one mail (one UID) is read twice, when
// a sequence number comes twice except as a separate mail the server
// delivered twice, and when the bytes differ from what was sent.
//
// A second mail with the same envelope is the mail system's at-least-once
// delivery, not ours: when Dovecot dies after saving a mail but before
// answering Postfix over LMTP, Postfix delivers the mail again. The inbox
// drops such duplicates by sequence number. dupOK says whether they are
// expected (only across a Dovecot restart).
func receiveN(ctx context.Context, t *testing.T, r transport.Receiver, n int, seen map[uint64]bool, size int) {
	t.Helper()
	receiveNDup(ctx, t, r, n, seen, size, false)
}

// readIDs holds the mail ids each receiver has returned. The key holds the
// receiver itself, not its address: a printed pointer can be reused by a
// later test's receiver once the first is collected, and Dovecot may give
// two new folders the same UIDVALIDITY, which made an earlier version of
// this check report a mail "read twice" that two receivers each read once.
var readIDs sync.Map // readKey -> true

type readKey struct {
	r  transport.Receiver
	id string
}

func receiveNDup(ctx context.Context, t *testing.T, r transport.Receiver, n int, seen map[uint64]bool, size int, dupOK bool) {
	t.Helper()
	for got := 0; got < n; {
		in, ack := receiveRetrying(ctx, t, r)
		if _, dup := readIDs.LoadOrStore(readKey{r, in.ID}, true); dup {
			t.Fatalf("mail %s (seq %d) read twice", in.ID, in.Meta.Seq)
		}
		if seen[in.Meta.Seq] {
			if !dupOK {
				t.Fatalf("seq %d received twice", in.Meta.Seq)
			}
			t.Logf("seq %d arrived again as a separate mail %s (delivered twice by the mail servers)", in.Meta.Seq, in.ID)
		} else {
			got++
		}
		seen[in.Meta.Seq] = true
		if want := transporttest.Envelope(in.Meta.Seq, size); !bytes.Equal(in.Sealed, want.Sealed) {
			t.Fatalf("seq %d: sealed bytes differ", in.Meta.Seq)
		}
		if err := ack(ctx, transport.Stored); err != nil {
			t.Logf("ack seq %d: %v (the mail is stored; a re-delivery would be a duplicate)", in.Meta.Seq, err)
		}
	}
}

func TestStack500EnvelopesExactlyOnce(t *testing.T) {
	st := mailstack.Require(t)
	h := stackHarness(t, st, smtpsend.TLSStartTLS, imappoll.TLSImplicit)
	s, r := newPair(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n, size = 500, 2000
	sent := sendAll(ctx, s, 1, n, size)
	seen := map[uint64]bool{}
	receiveN(ctx, t, r, n, seen, size)
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	for seq := uint64(1); seq <= n; seq++ {
		if !seen[seq] {
			t.Errorf("seq %d never arrived", seq)
		}
	}
	// Nothing else is waiting: the next envelope is a fresh marker.
	if err := s.Send(ctx, transporttest.Envelope(n+1, 10)); err != nil {
		t.Fatal(err)
	}
	in, ack := receiveRetrying(ctx, t, r)
	if in.Meta.Seq != n+1 {
		t.Fatalf("after %d envelopes got seq %d, want the marker %d", n, in.Meta.Seq, n+1)
	}
	_ = ack(ctx, transport.Stored)
	if err := r.Close(); err != nil { // moves what is still to move
		t.Fatal(err)
	}
	c := h.login(t)
	defer c.Logout()
	if got := len(folderMails(t, c, h.recvOpts.ProcessedFolder)); got != n+1 {
		t.Errorf("processed folder holds %d mails, want %d", got, n+1)
	}
}

func TestStackTLSModes(t *testing.T) {
	st := mailstack.Require(t)
	for _, tc := range []struct{ smtp, imap string }{
		{smtpsend.TLSStartTLS, imappoll.TLSStartTLS},
		{smtpsend.TLSImplicit, imappoll.TLSImplicit},
		{smtpsend.TLSPlain, imappoll.TLSPlain},
	} {
		t.Run(tc.smtp+"+"+tc.imap, func(t *testing.T) {
			h := stackHarness(t, st, tc.smtp, tc.imap)
			s, r := newPair(t, h)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := <-sendAll(ctx, s, 1, 3, 500); err != nil {
				t.Fatalf("send: %v", err)
			}
			receiveN(ctx, t, r, 3, map[uint64]bool{}, 500)
		})
	}
}

func TestStackUnknownCertificateRefused(t *testing.T) {
	st := mailstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, mode := range []string{smtpsend.TLSStartTLS, smtpsend.TLSImplicit} {
		h := stackHarness(t, st, mode, imappoll.TLSImplicit)
		h.sendOpts.CAFile = "" // system roots only: the test CA is unknown
		s := h.NewSender(t)
		err := s.Send(ctx, transporttest.Envelope(1, 100))
		s.Close()
		if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != smtpsend.ReasonTLS || !strings.Contains(err.Error(), smtpsend.CAFileVar) {
			t.Errorf("smtp %s without the CA: err = %v, want permanent %s naming %s", mode, err, smtpsend.ReasonTLS, smtpsend.CAFileVar)
		}
	}
	for _, mode := range []string{imappoll.TLSStartTLS, imappoll.TLSImplicit} {
		h := stackHarness(t, st, smtpsend.TLSPlain, mode)
		h.recvOpts.CAFile = ""
		r := h.NewReceiver(t)
		_, _, err := r.Receive(ctx)
		r.Close()
		if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != "imap_tls" || !strings.Contains(err.Error(), imappoll.CAFileVar) {
			t.Errorf("imap %s without the CA: err = %v, want permanent imap_tls naming %s", mode, err, imappoll.CAFileVar)
		}
	}
	// A wrong password is permanent and says what to fix.
	h := stackHarness(t, st, smtpsend.TLSStartTLS, imappoll.TLSImplicit)
	h.recvOpts.Password = "wrong"
	r := h.NewReceiver(t)
	defer r.Close()
	if _, _, err := r.Receive(ctx); errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != "imap_auth" {
		t.Errorf("imap wrong password: err = %v, want permanent imap_auth", err)
	}
	h.sendOpts.Password = "wrong"
	s := h.NewSender(t)
	defer s.Close()
	if err := s.Send(ctx, transporttest.Envelope(1, 100)); errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != smtpsend.ReasonAuth {
		t.Errorf("smtp wrong password: err = %v, want permanent %s", err, smtpsend.ReasonAuth)
	}
}

func TestStackDovecotRestartLosesNothing(t *testing.T) {
	st := mailstack.Require(t)
	h := stackHarness(t, st, smtpsend.TLSPlain, imappoll.TLSImplicit)
	// Dovecot sometimes sends no IDLE notification for mail delivered just
	// after it restarted; the poll interval is the receiver's safety net.
	h.recvOpts.PollInterval = 2 * time.Second
	if os.Getenv("JB_DEBUG") != "" {
		h.recvOpts.Debug = os.Stderr
	}
	s, r := newPair(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n, size = 60, 1000
	if err := <-sendAll(ctx, s, 1, n/2, size); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	receiveN(ctx, t, r, n/4, seen, size)

	// One envelope received but not acked when Dovecot goes away; acked
	// after. Then more mail arrives while Dovecot is down or restarting.
	in, ack := receiveRetrying(ctx, t, r)
	seen[in.Meta.Seq] = true
	var wg sync.WaitGroup
	wg.Add(1)
	sent := make(chan error, 1)
	go func() {
		defer wg.Done()
		sent <- <-sendAll(ctx, s, n/2+1, n, size)
	}()
	if err := st.RestartIMAP(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ack(ctx, transport.Stored); err != nil {
		t.Logf("ack across the restart: %v (allowed: the receiver moves it after reconnecting)", err)
	}
	// Postfix may hold mail it deferred during the restart for a minute
	// or more (its retry timers); delay is allowed, loss is not. Flush its
	// queue now and then while waiting, as an operator would.
	flushCtx, stopFlush := context.WithCancel(ctx)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-flushCtx.Done():
				return
			case <-time.After(2 * time.Second):
				_ = st.FlushQueue(flushCtx)
			}
		}
	}()
	receiveNDup(ctx, t, r, n-len(seen), seen, size, true)
	stopFlush()
	<-flushed
	wg.Wait()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= n; seq++ {
		if !seen[seq] {
			t.Errorf("seq %d lost", seq)
		}
	}
	if err := s.Send(ctx, transporttest.Envelope(n+1, 10)); err != nil {
		t.Fatal(err)
	}
	// Until the marker: only second copies made by the servers, each a
	// new mail, never a mail read before.
	for {
		in, ack := receiveRetrying(ctx, t, r)
		if in.Meta.Seq == n+1 {
			break
		}
		if _, dup := readIDs.LoadOrStore(readKey{r, in.ID}, true); dup || !seen[in.Meta.Seq] {
			t.Fatalf("got seq %d (%s) before the marker %d: a mail came back", in.Meta.Seq, in.ID, n+1)
		}
		t.Logf("seq %d arrived again as a separate mail %s (delivered twice by the mail servers)", in.Meta.Seq, in.ID)
		_ = ack(ctx, transport.Stored)
	}
}

func TestStackQuarantine(t *testing.T) {
	st := mailstack.Require(t)
	h := stackHarness(t, st, smtpsend.TLSStartTLS, imappoll.TLSImplicit)
	s, r := newPair(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	orig := transporttest.Envelope(1, 900)
	raw, err := transport.EncodeMail(orig, transporttest.MailHeader())
	if err != nil {
		t.Fatal(err)
	}
	// A changed copy whose headers no longer match (the transport rejects
	// it), a copy whose sealed bytes were altered (the caller rejects it
	// after opening), and a mail that has nothing to do with jirabridge.
	headerChanged := bytes.Replace(raw, []byte("X-Jirabridge-Seq: 1"), []byte("X-Jirabridge-Seq: 9"), 1)
	if bytes.Equal(headerChanged, raw) {
		t.Fatal("test mail has no X-Jirabridge-Seq header to change")
	}
	tampered := transporttest.Envelope(1, 900)
	tampered.Sealed[10] ^= 0x20
	sealedChanged, err := transport.EncodeMail(tampered, transporttest.MailHeader())
	if err != nil {
		t.Fatal(err)
	}
	c := h.login(t)
	for _, m := range [][]byte{headerChanged, sealedChanged, transporttest.UnrelatedMail("lunch-xyz")} {
		appendMail(t, c, h.recvOpts.Mailbox, m)
	}
	c.Logout()
	if err := s.Send(ctx, transporttest.Envelope(2, 300)); err != nil {
		t.Fatal(err)
	}

	// The caller opens each envelope; a changed one fails to open.
	for done := false; !done; {
		in, ack := receiveRetrying(ctx, t, r)
		switch {
		case in.Meta.Seq == 2:
			done = true
			_ = ack(ctx, transport.Stored)
		case bytes.Equal(in.Sealed, tampered.Sealed):
			if err := ack(ctx, transport.Quarantined("bad_signature")); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected envelope seq %d", in.Meta.Seq)
		}
	}
	if err := r.Close(); err != nil { // moves what is still to move
		t.Fatal(err)
	}
	q := h.Quarantined(t)
	if len(q) != 3 {
		t.Errorf("quarantine holds %d mails, want 3", len(q))
	}
	var joined bytes.Buffer
	for _, m := range q {
		joined.Write(m)
	}
	for _, want := range []string{"X-Jirabridge-Seq: 9", "lunch-xyz"} {
		if !strings.Contains(joined.String(), want) {
			t.Errorf("quarantine lacks the mail with %q", want)
		}
	}
	if rep := h.Reported(t); len(rep) != 2 {
		t.Errorf("reported %q, want two reasons (changed headers, unrelated)", rep)
	}
}

func TestStackIdleWithoutPoll(t *testing.T) {
	st := mailstack.Require(t)
	h := stackHarness(t, st, smtpsend.TLSPlain, imappoll.TLSImplicit)
	h.recvOpts.PollInterval = 24 * time.Hour
	idling := &idleWatch{ch: make(chan struct{}, 16)}
	h.recvOpts.Debug = idling
	s, r := newPair(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A first envelope brings the session up; the second must arrive
	// through IDLE (Dovecot notifies after about 0.5 s).
	if err := s.Send(ctx, transporttest.Envelope(1, 100)); err != nil {
		t.Fatal(err)
	}
	_, ack := receiveRetrying(ctx, t, r)
	_ = ack(ctx, transport.Stored)

	for len(idling.ch) > 0 { // an IDLE before the first envelope does not count
		<-idling.ch
	}
	got := make(chan error, 1)
	idleCtx, cancelIdle := context.WithTimeout(ctx, 3*time.Second)
	defer cancelIdle()
	go func() {
		in, _, err := r.Receive(idleCtx)
		if err == nil && in.Meta.Seq != 2 {
			err = errors.New("wrong envelope")
		}
		got <- err
	}()
	// Send only once the server confirmed the IDLE: the mail must come
	// through IDLE, not through a search that happened to run after it.
	select {
	case <-idling.ch:
	case <-idleCtx.Done():
		t.Fatal("the receiver did not enter IDLE")
	}
	start := time.Now()
	if err := s.Send(ctx, transporttest.Envelope(2, 100)); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("IDLE did not deliver within 3 s (poll interval 24 h): %v", err)
	}
	t.Logf("send to receive through IDLE: %v", time.Since(start))
}

// idleWatch is an IMAP debug writer that signals each "+ idling"
// continuation, the server's confirmation that IDLE runs.
type idleWatch struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *idleWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte("+ idling")) {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}
