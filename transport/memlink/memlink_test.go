package memlink

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
)

func out(seq uint64) transport.Outgoing {
	return transport.Outgoing{Meta: transport.Meta{Sync: "s", Sender: "a", Seq: seq, Kind: transport.KindChanges},
		Sealed: []byte{byte(seq)}}
}

func TestAckSemantics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mb := New()
	s := mb.Sender()
	for i := range 3 {
		if err := s.Send(ctx, out(uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	r1 := mb.NewReceiver()
	in1, ack1, err := r1.Poll(ctx)
	if err != nil || in1 == nil || in1.Meta.Seq != 1 {
		t.Fatalf("first poll: %v %v", in1, err)
	}
	in2, _, _ := r1.Poll(ctx) // taken, never acked
	if in2 == nil || in2.Meta.Seq != 2 {
		t.Fatalf("second poll: %v", in2)
	}
	if err := ack1(ctx, transport.Stored); err != nil {
		t.Fatal(err)
	}
	if err := ack1(ctx, transport.Stored); err == nil {
		t.Errorf("a second ack of the same mail succeeded")
	}
	in3, ack3, _ := r1.Poll(ctx)
	if err := ack3(ctx, transport.Quarantined("bad_signature")); err != nil || in3.Meta.Seq != 3 {
		t.Fatalf("quarantine ack: %v", err)
	}
	if in, _, _ := r1.Poll(ctx); in != nil {
		t.Errorf("poll of an empty mailbox returned %v", in.Meta)
	}
	if mb.Len() != 1 || len(mb.Quarantine()) != 1 || mb.Quarantine()[0].Reason != "bad_signature" {
		t.Errorf("len %d, quarantine %v", mb.Len(), mb.Quarantine())
	}
	// The un-acked mail goes to the next receiver.
	r1.Close()
	r2 := mb.NewReceiver()
	got, ack, err := r2.Receive(ctx)
	if err != nil || got.Meta.Seq != 2 {
		t.Fatalf("redelivery: %v %v", got, err)
	}
	if err := ack(ctx, transport.Stored); err != nil || mb.Len() != 0 {
		t.Errorf("ack after redelivery: %v, len %d", err, mb.Len())
	}
}

func TestReceiveBlocksUntilMail(t *testing.T) {
	t.Parallel()
	mb := New()
	r := mb.NewReceiver()
	got := make(chan uint64)
	go func() {
		in, _, err := r.Receive(context.Background())
		if err != nil {
			got <- 0
			return
		}
		got <- in.Meta.Seq
	}()
	if err := mb.Sender().Send(context.Background(), out(7)); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != 7 {
		t.Errorf("received %d, want 7", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := r.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("receive on empty mailbox: %v, want deadline exceeded", err)
	}
}

func TestFailSends(t *testing.T) {
	t.Parallel()
	mb := New()
	mb.FailSends(errclass.New(errclass.Temporary, "busy", errors.New("busy")))
	err := mb.Sender().Send(context.Background(), out(1))
	if !errclass.IsRetryable(err) {
		t.Errorf("send error %v is not retryable", err)
	}
	mb.FailSends(nil)
	if err := mb.Sender().Send(context.Background(), out(1)); err != nil || mb.Len() != 1 {
		t.Errorf("send after FailSends(nil): %v, len %d", err, mb.Len())
	}
}
