package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricPage is one scrape of a bridge's /metrics, parsed by Prometheus's
// own text parser (the bench and the daemon tests read it).
type metricPage map[string]*dto.MetricFamily

// scrapeMetrics reads and parses url (a /metrics address).
func scrapeMetrics(ctx context.Context, url string) (metricPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse metrics of %s: %w", url, err)
	}
	return metricPage(fams), nil
}

// Sum adds up every sample of the counter, gauge or untyped metric name;
// "<histogram>_count" and "<histogram>_sum" read a histogram's (or
// summary's) count and sum, as they are named on the page.
func (p metricPage) Sum(name string) float64 {
	for _, suffix := range []string{"_count", "_sum"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok || p[name] != nil || p[base] == nil {
			continue
		}
		var sum float64
		for _, m := range p.samples(base) {
			switch {
			case m.Histogram != nil && suffix == "_count":
				sum += float64(m.Histogram.GetSampleCount())
			case m.Histogram != nil:
				sum += m.Histogram.GetSampleSum()
			case m.Summary != nil && suffix == "_count":
				sum += float64(m.Summary.GetSampleCount())
			case m.Summary != nil:
				sum += m.Summary.GetSampleSum()
			}
		}
		return sum
	}
	return p.Where(name, "", "")
}

// Where adds up the samples of name whose label has value (every sample
// when label is "").
func (p metricPage) Where(name, label, value string) float64 {
	var sum float64
	for _, m := range p.samples(name) {
		if label == "" || labelOf(m, label) == value {
			sum += sampleValue(m)
		}
	}
	return sum
}

// ByLabel adds up the samples of name by the value of one label.
func (p metricPage) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range p.samples(name) {
		out[labelOf(m, label)] += sampleValue(m)
	}
	return out
}

func (p metricPage) samples(name string) []*dto.Metric {
	if f := p[name]; f != nil {
		return f.GetMetric()
	}
	return nil
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
