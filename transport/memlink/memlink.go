// Package memlink is an in-memory mailbox implementing transport.Sender and
// transport.Receiver, for tests and benchmarks of the link without a mail
// server. It keeps the transports' ack semantics: a mail stays in the
// mailbox until the receiver acks it, a mail handed to a receiver that is
// closed without acking is delivered again to the next receiver, and a
// quarantined mail is moved aside, never deleted.
package memlink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
)

// Quarantined is a mail the receiver's caller put aside, with its reason.
type Quarantined struct {
	Mail   transport.Incoming
	Reason string
}

// Mailbox is one direction's mailbox: what a Sender puts in, a Receiver
// takes out. It is safe for concurrent use.
type Mailbox struct {
	mu         sync.Mutex
	next       uint64 // mail id counter
	queue      []*mail
	quarantine []Quarantined
	wake       chan struct{} // closed and replaced when mail arrives
	sendErr    error         // when set, Send fails with it
	delivered  int
}

type mail struct {
	id       uint64
	in       transport.Incoming
	owner    *Receiver // receiver that holds it un-acked; nil when free
	finished bool
}

// New returns an empty mailbox.
func New() *Mailbox { return &Mailbox{wake: make(chan struct{})} }

// Pair returns two mailboxes, one per direction: a→b and b→a.
func Pair() (aToB, bToA *Mailbox) { return New(), New() }

// Sender returns a Sender that delivers into the mailbox.
func (m *Mailbox) Sender() *Sender { return &Sender{mb: m} }

// NewReceiver returns a Receiver reading from the mailbox. Mail handed to an
// earlier receiver that was closed without acking is delivered again.
func (m *Mailbox) NewReceiver() *Receiver { return &Receiver{mb: m} }

// Len returns how many mails are in the mailbox (not yet acked).
func (m *Mailbox) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// Delivered returns how many mails were ever put into the mailbox.
func (m *Mailbox) Delivered() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.delivered
}

// Quarantine returns the mails put aside so far.
func (m *Mailbox) Quarantine() []Quarantined {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Quarantined(nil), m.quarantine...)
}

// FailSends makes every Send fail with err until called with nil; for
// tests of the sender's error handling. Use errclass to make it temporary
// or permanent.
func (m *Mailbox) FailSends(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sendErr = err
}

// Put delivers raw envelope bytes as if a mail had arrived, for tests that
// inject foreign or forged mail.
func (m *Mailbox) Put(meta transport.Meta, sealed []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(meta, sealed)
}

func (m *Mailbox) put(meta transport.Meta, sealed []byte) {
	m.next++
	b := append([]byte(nil), sealed...)
	m.queue = append(m.queue, &mail{id: m.next, in: transport.Incoming{
		ID: "mem-" + strconv.FormatUint(m.next, 10), Meta: meta, Sealed: b, Raw: b,
	}})
	m.delivered++
	close(m.wake)
	m.wake = make(chan struct{})
}

// Sender puts envelopes into a Mailbox.
type Sender struct {
	mb     *Mailbox
	closed bool
}

// Send implements transport.Sender. The bytes are copied.
func (s *Sender) Send(ctx context.Context, o transport.Outgoing) error {
	if err := ctx.Err(); err != nil {
		return errclass.New(errclass.Temporary, "memlink_canceled", err)
	}
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	if s.closed {
		return errclass.New(errclass.Permanent, "memlink_closed", errors.New("memlink send: sender closed"))
	}
	if s.mb.sendErr != nil {
		return fmt.Errorf("memlink send seq %d: %w", o.Seq, s.mb.sendErr)
	}
	s.mb.put(o.Meta, o.Sealed)
	return nil
}

// Close implements transport.Sender.
func (s *Sender) Close() error {
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	s.closed = true
	return nil
}

// Receiver takes envelopes out of a Mailbox.
type Receiver struct {
	mb     *Mailbox
	closed bool
}

// Poll returns the next mail not yet handed out, or nil (with a nil error)
// when there is none; it never blocks. The link's Step uses it.
func (r *Receiver) Poll(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	r.mb.mu.Lock()
	defer r.mb.mu.Unlock()
	in, ack, _ := r.take()
	return in, ack, nil
}

// take hands out the oldest free mail; the caller holds the lock.
func (r *Receiver) take() (*transport.Incoming, transport.AckFunc, <-chan struct{}) {
	if r.closed {
		return nil, nil, nil
	}
	for _, m := range r.mb.queue {
		if m.owner == nil || m.owner.closed {
			m.owner = r
			in := m.in
			in.Sealed = append([]byte(nil), m.in.Sealed...)
			return &in, r.ackFunc(m), nil
		}
	}
	return nil, nil, r.mb.wake
}

// Receive implements transport.Receiver: it blocks until a mail is there or
// ctx is done.
func (r *Receiver) Receive(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	for {
		r.mb.mu.Lock()
		if r.closed {
			r.mb.mu.Unlock()
			return nil, nil, errclass.New(errclass.Permanent, "memlink_closed", errors.New("memlink receive: receiver closed"))
		}
		in, ack, wake := r.take()
		r.mb.mu.Unlock()
		if in != nil {
			return in, ack, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-wake:
		}
	}
}

func (r *Receiver) ackFunc(m *mail) transport.AckFunc {
	return func(_ context.Context, d transport.Disposition) error {
		r.mb.mu.Lock()
		defer r.mb.mu.Unlock()
		if m.finished {
			return fmt.Errorf("memlink ack %s: already acked", m.in.ID)
		}
		if m.owner != r || r.closed {
			// A closed receiver's mail went back to the mailbox: the ack is
			// late and the mail will be delivered again (a duplicate).
			return fmt.Errorf("memlink ack %s: receiver no longer holds the mail", m.in.ID)
		}
		m.finished = true
		for i, q := range r.mb.queue {
			if q == m {
				r.mb.queue = append(r.mb.queue[:i], r.mb.queue[i+1:]...)
				break
			}
		}
		if d.Quarantine {
			r.mb.quarantine = append(r.mb.quarantine, Quarantined{Mail: m.in, Reason: d.Reason})
		}
		return nil
	}
}

// Close implements transport.Receiver. Mail it handed out and that was not
// acked becomes free for the next receiver.
func (r *Receiver) Close() error {
	r.mb.mu.Lock()
	defer r.mb.mu.Unlock()
	r.closed = true
	close(r.mb.wake)
	r.mb.wake = make(chan struct{})
	return nil
}
