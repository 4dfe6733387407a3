package ops

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/jirabridge/jirabridge/internal/metrics"
)

// recorder is a Registerer that keeps the metric names registered on it.
type recorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([a-z_]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// TestDeployFilesUseRealMetrics keeps deploy/prometheus-rules.yml and
// deploy/grafana-dashboard.json valid and in step with internal/metrics
// and the alert names.
func TestDeployFilesUseRealMetrics(t *testing.T) {
	t.Parallel()
	rec := &recorder{names: map[string]bool{}}
	metrics.New(rec)
	if len(rec.names) < 20 {
		t.Fatalf("found only %d metric names: %v", len(rec.names), rec.names)
	}
	known := func(name string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if rec.names[strings.TrimSuffix(name, suffix)] && strings.HasSuffix(name, suffix) {
				return true
			}
		}
		return false
	}
	used := regexp.MustCompile(`jirabridge_[a-z_]+`)
	alertNames := map[string]bool{}
	for _, n := range allAlerts {
		alertNames[n] = true
	}
	alertRef := regexp.MustCompile(`alert="([A-Za-z]+)"`)
	check := func(file, text string) {
		for _, n := range used.FindAllString(text, -1) {
			if !known(n) {
				t.Errorf("%s uses %s, which internal/metrics does not define", file, n)
			}
		}
		for _, m := range alertRef.FindAllStringSubmatch(text, -1) {
			if !alertNames[m[1]] {
				t.Errorf("%s refers to alert %q, which ops does not raise", file, m[1])
			}
		}
	}

	raw, err := os.ReadFile("../../deploy/prometheus-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("prometheus-rules.yml: %v", err)
	}
	if len(rules.Groups) == 0 || len(rules.Groups[0].Rules) < 5 {
		t.Fatalf("prometheus-rules.yml has too few rules: %+v", rules)
	}
	for _, r := range rules.Groups[0].Rules {
		if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
			t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
		}
		check("prometheus-rules.yml", r.Expr)
	}

	raw, err = os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if len(dash.Panels) < 8 {
		t.Fatalf("dashboard has %d panels", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			check("grafana-dashboard.json", tg.Expr)
		}
	}
}
