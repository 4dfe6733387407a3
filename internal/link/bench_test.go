package link

import (
	"context"
	"fmt"
	"testing"

	"github.com/jirabridge/jirabridge/internal/wire"
)

// BenchmarkBatchSize measures what the batch size N costs and saves: a
// burst of 1,000 realistic changes (field updates of a few hundred bytes
// JSON each, 100 issues) goes from pending_changes through sealing, the
// outbox, memlink, the inbox and release into the peer's replay queue.
// Reported per change: wall time, mails (envelopes) and sealed bytes on the
// wire. The defaults (N=500, B=1 MiB) come from this run; see the package
// doc of the link for the figures.
func BenchmarkBatchSize(b *testing.B) {
	for _, n := range []int{1, 10, 50, 100, 250, 500, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var envelopes, bytes, changes int64
			for range b.N {
				b.StopTimer()
				clk := newClock()
				x, y := newPair(b, clk)
				o := testOptions()
				o.MaxBatchChanges, o.MaxBatchBytes = n, DefaultMaxBatchBytes
				rec := &recorder{next: x.sender}
				x.sender = rec
				x.start(o)
				y.start(o)
				var burst []wire.Change
				for i := range 1000 {
					c := x.change(i%100, i)
					c.Fields["description"] = wire.FieldChange{Before: wire.NullValue(),
						After: wire.StringValue(fmt.Sprintf("A description of change %d that reads like text people write in Jira, with some words repeated across changes.", i))}
					burst = append(burst, c)
				}
				x.queue(burst...)
				b.StartTimer()
				ctx := context.Background()
				for len(y.replayed()) < len(burst) {
					if err := x.link.Step(ctx); err != nil {
						b.Fatal(err)
					}
					if err := y.link.Step(ctx); err != nil {
						b.Fatal(err)
					}
					clk.Advance(o.Linger)
				}
				b.StopTimer()
				for _, s := range rec.sizes {
					bytes += int64(s)
				}
				envelopes += x.link.Counters().EnvelopesSealed
				changes += int64(len(burst))
				x.st.Close()
				y.st.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(changes), "ns/change")
			b.ReportMetric(float64(envelopes)*1000/float64(changes), "mails/1000changes")
			b.ReportMetric(float64(bytes)/float64(changes), "wirebytes/change")
		})
	}
}
