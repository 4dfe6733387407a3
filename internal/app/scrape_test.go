package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The scraper reads counters by label and histograms by _count and _sum,
// as the bench and the daemon tests ask for them.
func TestScrapeMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"reason"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lat_seconds", Help: "l"})
	reg.MustRegister(c, h)
	c.WithLabelValues("a").Add(2)
	c.WithLabelValues("b").Add(3)
	h.Observe(0.5)
	h.Observe(1.5)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	p, err := scrapeMetrics(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what      string
		got, want float64
	}{
		{"sum", p.Sum("x_total"), 5},
		{"where", p.Where("x_total", "reason", "b"), 3},
		{"by label", p.ByLabel("x_total", "reason")["a"], 2},
		{"count", p.Sum("lat_seconds_count"), 2},
		{"histogram sum", p.Sum("lat_seconds_sum"), 2},
		{"absent", p.Sum("nope_total"), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	if _, err := scrapeMetrics(context.Background(), bad.URL); err == nil {
		t.Error("a 404 page was read as metrics")
	}
}
