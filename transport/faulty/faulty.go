// Package faulty is a seeded fault-injecting decorator for any
// transport.Sender: it drops, duplicates, reorders, delays and corrupts
// envelopes and replays old ones, at per-fault rates, so that tests can
// show the link repairs what real mail servers do. Every fault is counted
// (Counts, and metrics.Faults by fault name) so a test can check that each
// one landed on the right counter on the receiving side.
//
// At most one fault hits each envelope, so every effect on the receiving
// side is attributable to one fault. It is deterministic for a given seed
// and sequence of calls.
package faulty

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/transport"
)

// Fault names, as counted in Counts and metrics.Faults.
const (
	Drop      = "drop"      // the envelope is never sent
	Duplicate = "duplicate" // sent twice
	Reorder   = "reorder"   // held back and sent after the next envelope
	Delay     = "delay"     // held back for Options.DelayFor
	Corrupt   = "corrupt"   // one byte of its signature is flipped (the original is not sent)
	Replay    = "replay"    // sent, followed by a copy of an older envelope
)

// Rates are the probabilities (0..1) of each fault per envelope; their sum
// must be at most 1.
type Rates struct {
	Drop, Duplicate, Reorder, Delay, Corrupt, Replay float64
}

// All returns rates with every fault at r.
func All(r float64) Rates { return Rates{r, r, r, r, r, r} }

// Options configures a Sender.
type Options struct {
	Rates Rates
	// Seed makes the faults reproducible.
	Seed uint64
	// DelayFor is how long a delayed envelope is held. Default one minute.
	DelayFor time.Duration
	// Now is the clock for delays. Default time.Now.
	Now func() time.Time
	// History is how many past envelopes Replay chooses from. Default 64.
	History int
	// Metrics, when set, counts faults in metrics.Faults.
	Metrics *metrics.Metrics
}

type held struct {
	o     transport.Outgoing
	until time.Time // delay: due time; zero for reorder
}

// Sender is the decorator.
type Sender struct {
	next transport.Sender
	o    Options

	mu       sync.Mutex
	rng      *rand.Rand
	enabled  bool
	reorder  []transport.Outgoing
	delayed  []held
	history  []transport.Outgoing
	counts   map[string]int
	sends    int
	forwards int
}

// New wraps next. Faults are enabled from the start.
func New(next transport.Sender, o Options) *Sender {
	if o.DelayFor <= 0 {
		o.DelayFor = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.History <= 0 {
		o.History = 64
	}
	return &Sender{next: next, o: o, enabled: true, counts: map[string]int{},
		rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
}

// SetEnabled turns fault injection on or off. Envelopes already held back
// stay held until they are due or Flush is called.
func (s *Sender) SetEnabled(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = on
}

// Counts returns how often each fault hit, by fault name.
func (s *Sender) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Forwarded returns how many envelopes were passed to the wrapped sender.
func (s *Sender) Forwarded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forwards
}

func (s *Sender) hit(fault string) {
	s.counts[fault]++
	s.o.Metrics.Inc(metrics.Faults, fault)
}

func (s *Sender) pick() string {
	if !s.enabled {
		return ""
	}
	x := s.rng.Float64()
	r := s.o.Rates
	for _, f := range []struct {
		name string
		rate float64
	}{{Drop, r.Drop}, {Duplicate, r.Duplicate}, {Reorder, r.Reorder}, {Delay, r.Delay}, {Corrupt, r.Corrupt}, {Replay, r.Replay}} {
		if x < f.rate {
			return f.name
		}
		x -= f.rate
	}
	return ""
}

// Send implements transport.Sender. A fault that swallows or holds the
// envelope still reports success, as a mail server that loses mail does.
// Errors of the wrapped sender are returned for the envelope being sent;
// held envelopes that fail to go out later are lost (like a drop).
func (s *Sender) Send(ctx context.Context, o transport.Outgoing) error {
	s.mu.Lock()
	o.Sealed = append([]byte(nil), o.Sealed...)
	var out []transport.Outgoing // what to forward now, in order
	var mine = -1                // index in out of o itself, whose error is returned
	fault := s.pick()
	switch fault {
	case Drop:
		s.hit(Drop)
	case Duplicate:
		s.hit(Duplicate)
		mine = len(out)
		out = append(out, o, o)
	case Reorder:
		s.hit(Reorder)
		s.reorder = append(s.reorder, o)
	case Delay:
		s.hit(Delay)
		s.delayed = append(s.delayed, held{o: o, until: s.o.Now().Add(s.o.DelayFor)})
	case Corrupt:
		s.hit(Corrupt)
		c := o
		c.Sealed = append([]byte(nil), o.Sealed...)
		if n := len(c.Sealed); n > 0 {
			// The last 64 bytes of a sealed envelope are its Ed25519
			// signature: flipping one makes the envelope fail to verify
			// (bad_signature), the case a mail server mangling a byte
			// produces.
			w := min(n, 64)
			c.Sealed[n-1-s.rng.IntN(w)] ^= byte(1 + s.rng.IntN(255))
		}
		out = append(out, c)
	case Replay:
		mine = len(out)
		out = append(out, o)
		if len(s.history) > 0 {
			s.hit(Replay)
			out = append(out, s.history[s.rng.IntN(len(s.history))])
		}
	default:
		mine = len(out)
		out = append(out, o)
	}
	if fault != Reorder && fault != Delay && len(s.reorder) > 0 {
		// Reordered envelopes go out after the one that overtook them.
		out = append(out, s.reorder...)
		s.reorder = nil
	}
	out = append(out, s.dueLocked(false)...)
	if len(s.history) == s.o.History {
		s.history = s.history[1:]
	}
	s.history = append(s.history, o)
	s.sends++
	s.mu.Unlock()
	var ret error
	for i, x := range out {
		err := s.forward(ctx, x)
		if i == mine {
			ret = err
		}
	}
	return ret
}

func (s *Sender) forward(ctx context.Context, o transport.Outgoing) error {
	s.mu.Lock()
	s.forwards++
	s.mu.Unlock()
	return s.next.Send(ctx, o)
}

// dueLocked removes and returns the delayed envelopes that are due (all of
// them, and the reordered ones, when all is true).
func (s *Sender) dueLocked(all bool) []transport.Outgoing {
	var out []transport.Outgoing
	now := s.o.Now()
	keep := s.delayed[:0]
	for _, h := range s.delayed {
		if all || !now.Before(h.until) {
			out = append(out, h.o)
		} else {
			keep = append(keep, h)
		}
	}
	s.delayed = keep
	if all {
		out = append(out, s.reorder...)
		s.reorder = nil
	}
	return out
}

// Tick sends the delayed envelopes that are due; call it when the clock
// moved and nothing else is being sent.
func (s *Sender) Tick(ctx context.Context) error {
	s.mu.Lock()
	out := s.dueLocked(false)
	s.mu.Unlock()
	return s.sendAll(ctx, out)
}

// Flush sends every envelope still held back (delayed or reordered), due
// or not.
func (s *Sender) Flush(ctx context.Context) error {
	s.mu.Lock()
	out := s.dueLocked(true)
	s.mu.Unlock()
	return s.sendAll(ctx, out)
}

func (s *Sender) sendAll(ctx context.Context, out []transport.Outgoing) error {
	var first error
	for _, o := range out {
		if err := s.forward(ctx, o); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Held returns how many envelopes are held back.
func (s *Sender) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.delayed) + len(s.reorder)
}

// Close closes the wrapped sender; held envelopes are lost.
func (s *Sender) Close() error { return s.next.Close() }
