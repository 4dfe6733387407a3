package transport

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
)

// scriptedSender returns the scripted errors in turn, then nil.
type scriptedSender struct {
	errs   []error
	calls  int
	closed bool
}

func (s *scriptedSender) Send(context.Context, Outgoing) error {
	s.calls++
	if s.calls <= len(s.errs) {
		return s.errs[s.calls-1]
	}
	return nil
}

func (s *scriptedSender) Close() error { s.closed = true; return nil }

func TestWithRetry(t *testing.T) {
	t.Parallel()
	tmp := errclass.New(errclass.Temporary, "smtp_dial", errors.New("dial tcp: connection refused"))
	tmp2 := errclass.New(errclass.Temporary, "smtp_4xx", errors.New("451 try again"))
	perm := errclass.New(errclass.Permanent, "smtp_5xx", errors.New("550 no such user"))
	pause := errclass.New(errclass.Pause, "smtp_auth", errors.New("535 authentication failed"))
	back := errclass.WithBackOff("smtp_421", 42*time.Second, errors.New("421 too busy"))
	unclassified := errors.New("something nobody classified")

	tests := []struct {
		name      string
		errs      []error
		opts      RetryOptions
		wantCalls int
		wantWaits []time.Duration
		wantErr   error // nil: success
		wantLogs  int
	}{
		{"success at once", nil, RetryOptions{}, 1, nil, nil, 0},
		{"temporary then success, doubling", []error{tmp, tmp, tmp}, RetryOptions{}, 4,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, nil, 1},
		{"permanent is never retried", []error{perm}, RetryOptions{}, 1, nil, perm, 0},
		{"pause is never retried", []error{pause}, RetryOptions{}, 1, nil, pause, 0},
		{"unclassified is never retried", []error{unclassified}, RetryOptions{}, 1, nil, unclassified, 0},
		{"permanent after temporary", []error{tmp, perm}, RetryOptions{}, 2, []time.Duration{time.Second}, perm, 1},
		{"backoff waits what was asked, above max", []error{back, tmp}, RetryOptions{Max: 10 * time.Second}, 3,
			[]time.Duration{42 * time.Second, 2 * time.Second}, nil, 2},
		{"delay capped at max", []error{tmp, tmp, tmp, tmp}, RetryOptions{Initial: 3 * time.Second, Max: 10 * time.Second}, 5,
			[]time.Duration{3 * time.Second, 6 * time.Second, 10 * time.Second, 10 * time.Second}, nil, 1},
		{"gives up after max attempts with the last error", []error{tmp, tmp2, tmp, tmp}, RetryOptions{MaxAttempts: 3}, 3,
			[]time.Duration{time.Second, 2 * time.Second}, tmp, 2},
		{"multiplier", []error{tmp, tmp}, RetryOptions{Multiplier: 3}, 3,
			[]time.Duration{time.Second, 3 * time.Second}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var waits []time.Duration
			var logs bytes.Buffer
			o := tt.opts
			o.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
			o.Rand = func() float64 { return 0.5 } // the middle: no jitter
			o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			s := &scriptedSender{errs: tt.errs}
			err := WithRetry(s, o).Send(context.Background(), Outgoing{Meta: Meta{Seq: 9}})
			if tt.wantErr == nil && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && errclass.Of(err) != errclass.Of(tt.wantErr) {
				t.Errorf("class = %v, want %v (the class must survive the decorator)", errclass.Of(err), errclass.Of(tt.wantErr))
			}
			if s.calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", s.calls, tt.wantCalls)
			}
			if !slices.Equal(waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
			}
			if n := strings.Count(logs.String(), "send failed, retrying"); n != tt.wantLogs {
				t.Errorf("%d retry log lines, want %d (one per change of error):\n%s", n, tt.wantLogs, logs.String())
			}
		})
	}
}

func TestWithRetryJitter(t *testing.T) {
	t.Parallel()
	tmp := errclass.New(errclass.Temporary, "x", errors.New("x"))
	for _, tt := range []struct {
		rand float64
		want time.Duration
	}{{0, 800 * time.Millisecond}, {0.5, time.Second}, {0.99999, 1199990 * time.Microsecond}} {
		var waits []time.Duration
		o := RetryOptions{
			Jitter: 0.2,
			Sleep:  func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
			Rand:   func() float64 { return tt.rand },
		}
		if err := WithRetry(&scriptedSender{errs: []error{tmp}}, o).Send(context.Background(), Outgoing{}); err != nil {
			t.Fatal(err)
		}
		if len(waits) != 1 || waits[0].Round(time.Millisecond) != tt.want.Round(time.Millisecond) {
			t.Errorf("rand %v: waits = %v, want [%v]", tt.rand, waits, tt.want)
		}
	}
}

func TestWithRetryStopsWhenContextDone(t *testing.T) {
	t.Parallel()
	tmp := errclass.New(errclass.Temporary, "smtp_dial", errors.New("refused"))
	ctx, cancel := context.WithCancel(context.Background())
	s := &scriptedSender{errs: []error{tmp, tmp, tmp, tmp}}
	rs := WithRetry(s, RetryOptions{Sleep: func(ctx context.Context, _ time.Duration) error {
		cancel() // the bridge is shutting down while we wait
		return ctx.Err()
	}})
	err := rs.Send(ctx, Outgoing{})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, tmp) {
		t.Errorf("err = %v, want it to match context.Canceled and the last send error", err)
	}
	if !errclass.IsRetryable(err) {
		t.Errorf("class = %v, want retryable: the envelope was not sent and must be sent later", errclass.Of(err))
	}
	if s.calls != 1 {
		t.Errorf("calls = %d, want 1", s.calls)
	}
	if err := rs.Close(); err != nil || !s.closed {
		t.Errorf("Close = %v, closed = %v: Close must reach the wrapped sender", err, s.closed)
	}
}

func TestSleepCtx(t *testing.T) {
	t.Parallel()
	if err := sleepCtx(context.Background(), 0); err != nil {
		t.Errorf("zero sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep on a done context: %v", err)
	}
}
