package faulty

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type sink struct{ got []transport.Outgoing }

func (s *sink) Send(_ context.Context, o transport.Outgoing) error {
	s.got = append(s.got, o)
	return nil
}
func (s *sink) Close() error { return nil }

func msg(seq uint64) transport.Outgoing {
	b := make([]byte, 100)
	b[0] = byte(seq)
	return transport.Outgoing{Meta: transport.Meta{Seq: seq}, Sealed: b}
}

func TestEachFault(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	for _, tc := range []struct {
		fault string
		rates Rates
		check func(t *testing.T, s *sink)
	}{
		{Drop, Rates{Drop: 1}, func(t *testing.T, s *sink) {
			if len(s.got) != 1 || s.got[0].Seq != 3 {
				t.Errorf("drop: got %v", seqs(s))
			}
		}},
		{Duplicate, Rates{Duplicate: 1}, func(t *testing.T, s *sink) {
			if got := seqs(s); len(got) != 5 || got[3] != 2 || got[4] != 3 {
				t.Errorf("duplicate: got %v", got)
			}
		}},
		{Reorder, Rates{Reorder: 1}, func(t *testing.T, s *sink) {
			if got := seqs(s); len(got) != 3 || got[0] != 3 || got[1] != 1 || got[2] != 2 {
				t.Errorf("reorder: got %v, want 3 1 2", got)
			}
		}},
		{Delay, Rates{Delay: 1}, func(t *testing.T, s *sink) {
			if got := seqs(s); len(got) != 3 || got[0] != 3 {
				t.Errorf("delay: got %v, want 3 then the delayed ones", got)
			}
		}},
		{Corrupt, Rates{Corrupt: 1}, func(t *testing.T, s *sink) {
			if got := seqs(s); len(got) != 3 || s.got[0].Seq != 1 {
				t.Fatalf("corrupt: got %v", got)
			}
			if orig := msg(1); string(s.got[0].Sealed) == string(orig.Sealed) {
				t.Errorf("corrupt: bytes unchanged")
			}
			diff := 0
			for i := range s.got[0].Sealed {
				if s.got[0].Sealed[i] != msg(1).Sealed[i] {
					diff++
					if i < 100-64 {
						t.Errorf("corrupt: byte %d outside the signature changed", i)
					}
				}
			}
			if diff != 1 {
				t.Errorf("corrupt: %d bytes changed, want 1", diff)
			}
		}},
		{Replay, Rates{Replay: 1}, func(t *testing.T, s *sink) {
			if got := seqs(s); len(got) != 4 || got[1] != 2 || got[2] != 1 || got[3] != 3 {
				t.Errorf("replay: got %v, want 1 2 1 3", got)
			}
		}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			s := &sink{}
			m := metrics.New(nil)
			f := New(s, Options{Rates: tc.rates, Seed: 1, Now: func() time.Time { return now }, Metrics: m})
			ctx := context.Background()
			_ = f.Send(ctx, msg(1))
			_ = f.Send(ctx, msg(2))
			f.SetEnabled(false)
			_ = f.Send(ctx, msg(3))
			if err := f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
			want := 2
			if tc.fault == Replay {
				want = 1 // the first envelope has nothing to replay
			}
			if got := f.Counts()[tc.fault]; got != want {
				t.Errorf("count %d, want %d", got, want)
			}
			if got := testutil.ToFloat64(m.Faults.WithLabelValues(tc.fault)); int(got) != want {
				t.Errorf("metric %v, want %d", got, want)
			}
			if f.Held() != 0 {
				t.Errorf("%d still held after Flush", f.Held())
			}
		})
	}
}

func TestDelayReleasedWhenDue(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	s := &sink{}
	f := New(s, Options{Rates: Rates{Delay: 1}, DelayFor: time.Minute, Now: func() time.Time { return now }})
	_ = f.Send(context.Background(), msg(1))
	_ = f.Tick(context.Background())
	if len(s.got) != 0 {
		t.Fatalf("delayed envelope sent early")
	}
	now = now.Add(time.Minute)
	_ = f.Tick(context.Background())
	if len(s.got) != 1 {
		t.Errorf("delayed envelope not sent when due")
	}
}

func TestRatesAreSeededAndApproximate(t *testing.T) {
	t.Parallel()
	run := func() map[string]int {
		f := New(&sink{}, Options{Rates: All(0.1), Seed: 99})
		for i := range 5000 {
			_ = f.Send(context.Background(), msg(uint64(i)))
		}
		return f.Counts()
	}
	a, b := run(), run()
	for _, name := range []string{Drop, Duplicate, Reorder, Delay, Corrupt, Replay} {
		if a[name] != b[name] {
			t.Errorf("%s: %d vs %d with the same seed", name, a[name], b[name])
		}
		if math.Abs(float64(a[name])-500) > 100 {
			t.Errorf("%s hit %d of 5000 at rate 0.1", name, a[name])
		}
	}
}

func seqs(s *sink) []uint64 {
	var out []uint64
	for _, o := range s.got {
		out = append(out, o.Seq)
	}
	return out
}
