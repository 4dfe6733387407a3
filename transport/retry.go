package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
)

// RetryOptions configures WithRetry. The zero value retries with
// DefaultRetryInitial doubling up to DefaultRetryMax until the context ends.
type RetryOptions struct {
	// MaxAttempts bounds the number of Send calls per envelope; 0 means no
	// bound (retry until the context is done or the error is permanent).
	MaxAttempts int
	// Initial is the first delay; 0 means DefaultRetryInitial.
	Initial time.Duration
	// Max caps the computed delay; 0 means DefaultRetryMax. A wait asked
	// for by the other side (errclass.BackOff) is honoured even above Max.
	Max time.Duration
	// Multiplier grows the delay after each failure; values below 1 mean 2.
	Multiplier float64
	// Jitter spreads each computed delay by up to this fraction either way
	// (0.2 = ±20%) so that bridges restarted together do not retry in step;
	// 0 means DefaultRetryJitter, a negative value means none.
	Jitter float64
	// Sleep waits d or until ctx is done; nil means a timer. Tests inject
	// a function that records d and returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for the jitter; nil means math/rand.
	Rand func() float64
	// Logger receives one line each time the error changes; nil discards.
	Logger *slog.Logger
}

// Defaults of RetryOptions.
const (
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultRetryJitter  = 0.2
)

func (o RetryOptions) withDefaults() RetryOptions {
	if o.Initial <= 0 {
		o.Initial = DefaultRetryInitial
	}
	if o.Max <= 0 {
		o.Max = DefaultRetryMax
	}
	if o.Max < o.Initial {
		o.Max = o.Initial
	}
	if o.Multiplier < 1 {
		o.Multiplier = 2
	}
	if o.Jitter == 0 {
		o.Jitter = DefaultRetryJitter
	}
	if o.Jitter < 0 {
		o.Jitter = 0
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// WithRetry returns a Sender that retries s on retryable errors (errclass
// Temporary and BackOff) with exponential back-off and jitter, waits as long
// as a BackOff error asks, and returns at once on any other error: a
// permanent error retried would block the ordered queue behind it forever.
//
// When it gives up (MaxAttempts reached, or the context done while
// waiting) it returns the last error, still classified, so the caller's own
// scheduling decides when to try again; with a done context the error also
// matches ctx.Err().
func WithRetry(s Sender, o RetryOptions) Sender {
	o = o.withDefaults()
	return &retrySender{s: s, o: o, log: o.Logger.With("component", "transport_retry")}
}

type retrySender struct {
	s   Sender
	o   RetryOptions
	log *slog.Logger
}

func (r *retrySender) Send(ctx context.Context, m Outgoing) error {
	delay := r.o.Initial
	var lastMsg string
	for attempt := 1; ; attempt++ {
		err := r.s.Send(ctx, m)
		if err == nil {
			if lastMsg != "" {
				r.log.Info("send succeeded after retries", "seq", m.Seq, "attempts", attempt)
			}
			return nil
		}
		if !errclass.IsRetryable(err) {
			return err
		}
		if r.o.MaxAttempts > 0 && attempt >= r.o.MaxAttempts {
			return fmt.Errorf("send seq %d: giving up after %d attempts: %w", m.Seq, attempt, err)
		}
		wait := r.jittered(delay)
		if after := errclass.RetryAfter(err); after > 0 {
			wait = after
		}
		// Log once per distinct error, not once per attempt: a mail server
		// down for an hour is one line, not hundreds.
		if msg := err.Error(); msg != lastMsg {
			r.log.Warn("send failed, retrying", "seq", m.Seq, "attempt", attempt,
				"class", errclass.Of(err).String(), "reason", errclass.ReasonOf(err), "wait", wait, "error", err)
			lastMsg = msg
		}
		if serr := r.o.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("send seq %d: retry stopped: %w", m.Seq, errors.Join(serr, err))
		}
		delay = min(time.Duration(float64(delay)*r.o.Multiplier), r.o.Max)
	}
}

// jittered spreads d by ±Jitter, within [0, Max].
func (r *retrySender) jittered(d time.Duration) time.Duration {
	if r.o.Jitter == 0 {
		return d
	}
	f := 1 + r.o.Jitter*(2*r.o.Rand()-1)
	return min(time.Duration(float64(d)*f), r.o.Max)
}

func (r *retrySender) Close() error { return r.s.Close() }
