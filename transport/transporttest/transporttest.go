// Package transporttest is the behaviour suite every transport must pass:
// the file drop, the in-process mail server and the real Postfix + Dovecot
// stack all run the same tests, so "works with files" and "works with mail"
// mean the same thing.
//
// A transport's test calls Run with a function that builds a fresh Harness
// (an empty mailbox or directory pair) for each sub-test.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/transport"
)

// Harness gives the suite access to one transport instance: one outgoing
// side and one incoming side that are connected (what the sender sends, the
// receiver reads), starting empty.
type Harness interface {
	// NewSender returns a Sender that delivers to the receiving side. The
	// suite closes it.
	NewSender(t *testing.T) transport.Sender
	// NewReceiver returns a Receiver on the receiving side, as a restarted
	// bridge would create it: it sees the same mailbox or directory and
	// whatever state earlier receivers persisted. The suite closes it, and
	// never uses two receivers at the same time.
	NewReceiver(t *testing.T) transport.Receiver
	// InjectRaw puts a raw mail straight into the receiving side (an IMAP
	// APPEND, a file in the incoming directory), bypassing the sender. It
	// must be visible to the receiver before any envelope sent after the
	// call returns (IMAP: a lower UID; file drop: a name that sorts first).
	InjectRaw(t *testing.T, raw []byte)
	// Quarantined returns the raw content of every mail or file now in
	// the quarantine of the receiving side (mail servers may have added
	// header fields).
	Quarantined(t *testing.T) [][]byte
	// Reported returns the reasons the receiver reported, through its
	// options, for the mails it quarantined by itself (not the ones the
	// caller quarantined through AckFunc), in order.
	Reported(t *testing.T) []string
}

// Options tunes the suite for slower transports.
type Options struct {
	// Envelopes is how many envelopes the delivery test sends; 0 means 20.
	Envelopes int
	// Timeout bounds each Receive call and the wait for a cancelled
	// Receive to return; 0 means 15 seconds.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Envelopes <= 0 {
		o.Envelopes = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	return o
}

// Sync and sender ids the suite's envelopes carry.
const (
	SuiteSync   = "suite-sync"
	SuiteSender = "suite-node"
)

// Envelope returns a deterministic envelope for seq: size pseudo-random
// bytes (binary, every byte value likely), seeded by seq.
func Envelope(seq uint64, size int) transport.Outgoing {
	r := rand.New(rand.NewPCG(seq, 0x6a697261))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return transport.Outgoing{
		Meta:   transport.Meta{Sync: SuiteSync, SyncName: "Suite sync", Sender: SuiteSender, Seq: seq, Kind: transport.KindChanges},
		Sealed: b,
	}
}

// MailHeader is the addressing the suite uses when it encodes mails itself.
func MailHeader() transport.MailHeader {
	return transport.MailHeader{
		From: "Bridge A <bridge-a@a.example.com>",
		To:   []string{"Bridge B <bridge-b@b.example.org>"},
		Date: time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC),
	}
}

// UnrelatedMail returns a plain text mail that is not a jirabridge mail;
// marker appears in its body.
func UnrelatedMail(marker string) []byte {
	return []byte("From: Alice <alice@example.org>\r\n" +
		"To: bridge-b@b.example.org\r\n" +
		"Subject: lunch on Friday?\r\n" +
		"Date: Tue, 24 Nov 2026 04:00:00 +0000\r\n" +
		"Message-ID: <" + marker + "@example.org>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n" +
		"\r\n" +
		"Are you coming? " + marker + "\r\n")
}

// Run runs the suite with default options.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	RunWithOptions(t, newHarness, Options{})
}

// RunWithOptions runs every behaviour test as a sub-test, each with a fresh
// Harness.
func RunWithOptions(t *testing.T, newHarness func(t *testing.T) Harness, o Options) {
	o = o.withDefaults()
	tests := []struct {
		name string
		fn   func(*testing.T, Harness, Options)
	}{
		{"DeliversEachEnvelopeOnceByteExact", testDeliversOnce},
		{"StoredAckRemovesFromInbox", testStoredAckRemoves},
		{"UnackedIsRedelivered", testUnackedRedelivered},
		{"QuarantineAckKeepsItOut", testQuarantineAck},
		{"UnrelatedMailIsQuarantinedAndReported", testUnrelatedMail},
		{"ModifiedEnvelopeArrivesByteExact", testModifiedEnvelope},
		{"CancelEndsReceive", testCancel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newHarness(t), o)
		})
	}
}

func send(t *testing.T, s transport.Sender, o Options, m transport.Outgoing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	if err := s.Send(ctx, m); err != nil {
		t.Fatalf("Send seq %d: %v", m.Seq, err)
	}
}

func receive(t *testing.T, r transport.Receiver, o Options) (*transport.Incoming, transport.AckFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	in, ack, err := r.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if in == nil || ack == nil {
		t.Fatalf("Receive returned a nil envelope or ack without an error")
	}
	return in, ack
}

func ack(t *testing.T, a transport.AckFunc, o Options, d transport.Disposition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	if err := a(ctx, d); err != nil {
		t.Fatalf("ack %+v: %v", d, err)
	}
}

func closeAll(t *testing.T, cs ...interface{ Close() error }) {
	t.Helper()
	for _, c := range cs {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

// checkSame fails unless in carries exactly m.
func checkSame(t *testing.T, in *transport.Incoming, m transport.Outgoing) {
	t.Helper()
	if in.Meta.Sync != m.Sync || in.Meta.Sender != m.Sender || in.Meta.Seq != m.Seq || in.Meta.Kind != m.Kind {
		t.Errorf("meta = %+v, want %+v", in.Meta, m.Meta)
	}
	if !bytes.Equal(in.Sealed, m.Sealed) {
		t.Errorf("seq %d: sealed bytes differ (got %d bytes, want %d)", m.Seq, len(in.Sealed), len(m.Sealed))
	}
	if len(in.Raw) == 0 {
		t.Errorf("seq %d: Incoming.Raw is empty", m.Seq)
	}
	if in.ID == "" {
		t.Errorf("seq %d: Incoming.ID is empty", m.Seq)
	}
}

// expectNext sends a fresh marker envelope and checks that it is the next
// thing the receiver returns: nothing acked or quarantined before came back
// in between. Waiting for a marker instead of waiting for silence keeps the
// suite free of sleeps.
func expectNext(t *testing.T, s transport.Sender, r transport.Receiver, o Options, seq uint64) {
	t.Helper()
	m := Envelope(seq, 300)
	send(t, s, o, m)
	in, a := receive(t, r, o)
	if in.Meta.Seq != seq {
		t.Fatalf("next envelope is seq %d, want the marker seq %d (an earlier envelope came back)", in.Meta.Seq, seq)
	}
	checkSame(t, in, m)
	ack(t, a, o, transport.Stored)
}

func testDeliversOnce(t *testing.T, h Harness, o Options) {
	s := h.NewSender(t)
	want := make(map[uint64]transport.Outgoing, o.Envelopes)
	for i := 1; i <= o.Envelopes; i++ {
		// Sizes from tiny to several base64 lines, not multiples of 3.
		m := Envelope(uint64(i), 1+(i*997)%5000)
		want[m.Seq] = m
		send(t, s, o, m)
	}
	r := h.NewReceiver(t)
	got := make(map[uint64]bool, o.Envelopes)
	for range o.Envelopes {
		in, a := receive(t, r, o)
		m, ok := want[in.Meta.Seq]
		if !ok {
			t.Fatalf("received seq %d that was never sent", in.Meta.Seq)
		}
		if got[in.Meta.Seq] {
			t.Fatalf("seq %d received twice", in.Meta.Seq)
		}
		got[in.Meta.Seq] = true
		checkSame(t, in, m)
		ack(t, a, o, transport.Stored)
	}
	expectNext(t, s, r, o, uint64(o.Envelopes)+1)
	closeAll(t, r)
	r2 := h.NewReceiver(t)
	expectNext(t, s, r2, o, uint64(o.Envelopes)+2)
	closeAll(t, r2, s)
	if q := h.Quarantined(t); len(q) != 0 {
		t.Errorf("%d mails in quarantine, want none", len(q))
	}
}

func testStoredAckRemoves(t *testing.T, h Harness, o Options) {
	s := h.NewSender(t)
	sent := map[uint64]transport.Outgoing{1: Envelope(1, 100), 2: Envelope(2, 200)}
	send(t, s, o, sent[1])
	send(t, s, o, sent[2])

	r1 := h.NewReceiver(t)
	first, a := receive(t, r1, o)
	checkSame(t, first, sent[first.Meta.Seq])
	ack(t, a, o, transport.Stored)
	closeAll(t, r1)

	r2 := h.NewReceiver(t)
	second, a := receive(t, r2, o)
	if second.Meta.Seq == first.Meta.Seq {
		t.Fatalf("seq %d came back after its Stored ack", first.Meta.Seq)
	}
	checkSame(t, second, sent[second.Meta.Seq])
	ack(t, a, o, transport.Stored)
	expectNext(t, s, r2, o, 3)
	closeAll(t, r2, s)
}

func testUnackedRedelivered(t *testing.T, h Harness, o Options) {
	s := h.NewSender(t)
	m := Envelope(1, 1000)
	send(t, s, o, m)

	r1 := h.NewReceiver(t)
	in, _ := receive(t, r1, o)
	checkSame(t, in, m)
	closeAll(t, r1) // a crash before the ack

	r2 := h.NewReceiver(t)
	again, a := receive(t, r2, o)
	checkSame(t, again, m)
	ack(t, a, o, transport.Stored)
	expectNext(t, s, r2, o, 2)
	closeAll(t, r2, s)
}

// quarantinedWith reports whether one quarantined mail decodes to sealed.
func quarantinedWith(q [][]byte, sealed []byte) bool {
	for _, raw := range q {
		if _, got, err := transport.DecodeMail(raw); err == nil && bytes.Equal(got, sealed) {
			return true
		}
	}
	return false
}

func testQuarantineAck(t *testing.T, h Harness, o Options) {
	s := h.NewSender(t)
	m := Envelope(1, 700)
	send(t, s, o, m)
	r := h.NewReceiver(t)
	in, a := receive(t, r, o)
	checkSame(t, in, m)
	ack(t, a, o, transport.Quarantined("bad_signature"))
	expectNext(t, s, r, o, 2)
	closeAll(t, r)

	r2 := h.NewReceiver(t)
	expectNext(t, s, r2, o, 3)
	closeAll(t, r2, s)
	if q := h.Quarantined(t); !quarantinedWith(q, m.Sealed) {
		t.Errorf("the envelope acked as quarantined is not in quarantine (%d mails there)", len(q))
	}
}

func testUnrelatedMail(t *testing.T, h Harness, o Options) {
	plain := fmt.Sprintf("unrelated-%d", time.Now().UnixNano())
	h.InjectRaw(t, UnrelatedMail(plain))
	other := fmt.Sprintf("unrelated-pdf-%d", time.Now().UnixNano())
	h.InjectRaw(t, []byte("From: Alice <alice@example.org>\r\nTo: bridge-b@b.example.org\r\nSubject: report "+other+"\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"+
		"--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--zz--\r\n"))

	s := h.NewSender(t)
	r := h.NewReceiver(t)
	m := Envelope(1, 500)
	send(t, s, o, m)
	in, a := receive(t, r, o)
	if in.Meta.Seq != m.Seq || !bytes.Equal(in.Sealed, m.Sealed) {
		t.Fatalf("Receive returned %+v, want the envelope seq %d (unrelated mail must never be returned)", in.Meta, m.Seq)
	}
	ack(t, a, o, transport.Stored)
	closeAll(t, r, s)

	if rep := h.Reported(t); len(rep) != 2 {
		t.Errorf("reported %d quarantined mails (%q), want 2", len(rep), rep)
	}
	q := h.Quarantined(t)
	for _, marker := range []string{plain, other} {
		found := false
		for _, raw := range q {
			if strings.Contains(string(raw), marker) {
				found = true
			}
		}
		if !found {
			t.Errorf("unrelated mail %s is not in quarantine (%d mails there)", marker, len(q))
		}
	}
}

func testModifiedEnvelope(t *testing.T, h Harness, o Options) {
	m := Envelope(1, 800)
	m.Sealed[100] ^= 0x01 // what a forger or a broken relay does
	raw, err := transport.EncodeMail(m, MailHeader())
	if err != nil {
		t.Fatal(err)
	}
	h.InjectRaw(t, raw)

	r := h.NewReceiver(t)
	in, a := receive(t, r, o)
	checkSame(t, in, m)
	ack(t, a, o, transport.Quarantined("bad_signature"))
	closeAll(t, r)

	s := h.NewSender(t)
	r2 := h.NewReceiver(t)
	expectNext(t, s, r2, o, 2)
	closeAll(t, r2, s)
	if q := h.Quarantined(t); !quarantinedWith(q, m.Sealed) {
		t.Errorf("the modified envelope is not in quarantine (%d mails there)", len(q))
	}
}

func testCancel(t *testing.T, h Harness, o Options) {
	r := h.NewReceiver(t)
	defer closeAll(t, r)

	pre, cancelPre := context.WithCancel(context.Background())
	cancelPre()
	if _, _, err := r.Receive(pre); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive with a cancelled context: err = %v, want context.Canceled", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Receive(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Receive after cancel: err = %v, want context.Canceled", err)
		}
	case <-time.After(o.Timeout):
		t.Fatalf("Receive did not return within %v after its context was cancelled", o.Timeout)
	}
}
