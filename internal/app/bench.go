package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/transport/mailstack"
)

// `jirabridge bench` measures the whole system on this machine: two
// jirasims and two bridges (the real daemon, set up through init, join,
// publish and start, in this process), people making changes on both
// sides as fast as the Jiras take them, and the figures an operator sizes
// a deployment with.

// benchOptions are the bench's flags.
type benchOptions struct {
	Transport string // loopback, file, mailtest, smtp
	Changes   int
	Issues    int
	Seed      uint64
	Rate      float64       // changes per second, both sides together; 0: as fast as the Jiras answer
	Timeout   time.Duration // for convergence after the last change
	Poll      time.Duration // the bridges' poll interval
	Keep      bool
	Mailstack string // env file of scripts/mailstack.sh (smtp)
	Mail      demoOptions
	Log       io.Writer // progress; io.Discard when nil
}

// benchLatency is the time from a person's change in one Jira to the same
// value showing in the other, in milliseconds.
type benchLatency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// benchResult is the one JSON object bench prints.
type benchResult struct {
	Transport string `json:"transport"`
	Changes   int    `json:"changes"`
	Issues    int    `json:"issues"`
	Seed      uint64 `json:"seed"`
	// Rate is the pace of the people (0: as fast as the Jiras answer).
	Rate float64 `json:"rate"`
	// ChangeSeconds is how long people took to make the changes;
	// ConvergeSeconds from the first change until both Jiras matched.
	ChangeSeconds    float64      `json:"change_seconds"`
	ConvergeSeconds  float64      `json:"converge_seconds"`
	ChangesPerSecond float64      `json:"changes_per_second"`
	Latency          benchLatency `json:"latency"`
	// Envelopes are mails (or files) both bridges sent during the change
	// phase, changes and control envelopes; WireBytes the sealed bytes of
	// the changes envelopes (controls are a few hundred bytes each; a mail
	// adds base64, about 1.37 times, and headers).
	ChangesEnvelopes   int64   `json:"changes_envelopes"`
	ControlEnvelopes   int64   `json:"control_envelopes"`
	EnvelopesPerChange float64 `json:"envelopes_per_change"`
	WireBytes          int64   `json:"wire_bytes"`
	BytesPerChange     float64 `json:"wire_bytes_per_change"`
	// SyncedChanges are, per side, the changes its bridge detected (and
	// sent) and the peer's changes it received and applied; JiraCalls the
	// REST calls its bridge made in the change phase (jirasim's route
	// counters minus the people's and the bench's own), for detection and
	// application together; JiraCallsPerSynced their ratio.
	SyncedChanges      map[string]int64   `json:"synced_changes"`
	JiraCalls          map[string]int64   `json:"jira_calls"`
	JiraCallsPerSynced map[string]float64 `json:"jira_calls_per_synced_change"`
	// JiraCallsByEndpoint splits each side's calls in the change phase by
	// endpoint template, as its bridge counted them (jira_calls_total):
	// detection is search, issue/{id}/comment (reads, as the bench's
	// people write no comments), issue/{id}/watchers,
	// issue/{id}/changelog and issue/{id}/properties/{key}; application
	// is mostly issue/{id} and issue/{id}/transitions.
	JiraCallsByEndpoint map[string]map[string]int64 `json:"jira_calls_by_endpoint"`
	// JiraCallsPerSyncedByEndpoint is the same divided by the side's
	// synced changes.
	JiraCallsPerSyncedByEndpoint map[string]map[string]float64 `json:"jira_calls_per_synced_change_by_endpoint"`
	PeakRSSBytes                 int64                         `json:"peak_rss_bytes"`
	PeakHeapBytes                uint64                        `json:"peak_heap_bytes"`
	Identical                    bool                          `json:"identical"`
	Differences                  []string                      `json:"differences,omitempty"`
	PendingExpectations          int                           `json:"unconfirmed_changes,omitempty"`
	ParkedChanges                int                           `json:"parked_changes"`
	SetupSeconds                 float64                       `json:"setup_seconds"`
	IssueCreationSeconds         float64                       `json:"issue_creation_seconds"`
}

func cmdBench(env Env, args []string) int {
	fs := newFlagSet(env, "bench", "bench [--transport loopback|file|mailtest|smtp] [--changes 1000] [--issues 50] [--mailstack ENVFILE | --smtp HOST:PORT --imap HOST:PORT --mail-users A:PW,B:PW --mail-domain D [--mail-ca FILE]]\n\n"+
		"Starts two Jira emulators and two bridges in this process over the chosen\n"+
		"transport, creates --issues issues, makes --changes human changes on both\n"+
		"sides, waits until both Jiras match, and prints one JSON object with\n"+
		"throughput, latency, mails and bytes per change, Jira calls per synced\n"+
		"change, peak memory and whether the Jiras are identical. loopback is the\n"+
		"file drop on local directories; smtp needs a real mail server (the\n"+
		"stack of scripts/mailstack.sh: --mailstack or JIRABRIDGE_TEST_MAILSTACK).")
	var o benchOptions
	fs.StringVar(&o.Transport, "transport", "mailtest", "loopback, file, mailtest (embedded SMTP+IMAP server) or smtp (a real server)")
	fs.IntVar(&o.Changes, "changes", 1000, "human changes to make, both sides together")
	fs.IntVar(&o.Issues, "issues", 50, "issues to spread them over (created first, half on each side)")
	fs.Float64Var(&o.Rate, "rate", 0, "human changes per second, both sides together (0: as fast as the Jiras answer; latency then includes the queue of the burst)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the random changes (0: from the clock)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long to wait for convergence after the last change")
	fs.DurationVar(&o.Poll, "poll", time.Second, "the bridges' poll interval (Jira and transport)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the working directory (data, logs)")
	fs.StringVar(&o.Mailstack, "mailstack", "", "smtp: env file written by scripts/mailstack.sh (default $"+mailstack.EnvVar+")")
	fs.StringVar(&o.Mail.SMTP, "smtp", "", "smtp: SMTP server host:port (instead of --mailstack)")
	fs.StringVar(&o.Mail.IMAP, "imap", "", "smtp: IMAP server host:port")
	fs.StringVar(&o.Mail.MailUsers, "mail-users", "", "smtp: the two bridges' mailboxes, USER:PASSWORD,USER:PASSWORD")
	fs.StringVar(&o.Mail.MailDomain, "mail-domain", "", "smtp: the mail domain of the users")
	fs.StringVar(&o.Mail.MailCA, "mail-ca", "", "smtp: CA file; then SMTP uses STARTTLS and IMAP implicit TLS")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if o.Changes < 0 || o.Issues < 2 || o.Rate < 0 {
		fmt.Fprintln(env.Stderr, "bench: --changes and --rate must not be negative and --issues must be at least 2")
		return ExitUsage
	}
	if o.Transport == "smtp" && o.Mail.SMTP == "" {
		path := o.Mailstack
		if path == "" && env.Getenv != nil {
			path = env.Getenv(mailstack.EnvVar)
		}
		if path == "" {
			fmt.Fprintln(env.Stderr, "bench: --transport smtp needs --mailstack ENVFILE (or "+mailstack.EnvVar+") or --smtp/--imap/--mail-users/--mail-domain")
			return ExitUsage
		}
		st, err := mailstack.Load(path)
		if err != nil {
			fmt.Fprintf(env.Stderr, "bench: %v\n", err)
			return ExitUsage
		}
		o.Mail.SMTP = fmt.Sprintf("%s:%d", st.Host, st.SMTPPort)
		o.Mail.IMAP = fmt.Sprintf("%s:%d", st.Host, st.IMAPSPort) // with the CA: implicit TLS
		o.Mail.MailUsers = "bridge-a:" + st.Password("bridge-a") + ",bridge-b:" + st.Password("bridge-b")
		o.Mail.MailDomain = st.Domain
		o.Mail.MailCA = st.CAFile
	}
	switch o.Transport {
	case "loopback", "file", "mailtest":
	case "smtp":
		if o.Mail.SMTP == "" || o.Mail.IMAP == "" || o.Mail.MailUsers == "" || o.Mail.MailDomain == "" {
			fmt.Fprintln(env.Stderr, "bench: --smtp, --imap, --mail-users and --mail-domain go together")
			return ExitUsage
		}
	default:
		fmt.Fprintf(env.Stderr, "bench: --transport %q: want loopback, file, mailtest or smtp\n", o.Transport)
		return ExitUsage
	}
	ctx := env.Context
	if ctx == nil {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
	}
	o.Log = env.Stderr
	res, err := runBench(ctx, o)
	if err != nil {
		fmt.Fprintf(env.Stderr, "bench: %v\n", err)
		return ExitFailure
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return ExitFailure
	}
	if !res.Identical {
		return ExitFailure
	}
	return ExitOK
}

// jiraCallsMetric is the bridge's counter of Jira calls (labels endpoint
// and status).
const jiraCallsMetric = "jirabridge_jira_calls_total"

// countingTransport counts the bench's own HTTP calls to a Jira, so that
// the bridge's calls are what is left of jirasim's counters.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// benchSite is one Jira as the bench's people see it.
type benchSite struct {
	*demoSite
	calls   *countingTransport
	clients []*jira.Client
	admin   *jira.Client
}

func newBenchSite(s *demoSite) (*benchSite, error) {
	bs := &benchSite{demoSite: s, calls: &countingTransport{}}
	for _, u := range append([]string{"admin"}, s.People...) {
		pw := demoPassword
		if u == "admin" {
			pw = "admin"
		}
		c, err := jira.New(jira.Options{BaseURL: s.URL, Username: u, Password: pw, Timeout: 60 * time.Second, Transport: bs.calls})
		if err != nil {
			return nil, err
		}
		if u == "admin" {
			bs.admin = c
		} else {
			bs.clients = append(bs.clients, c)
		}
	}
	return bs, nil
}

// routeCalls is the total of jirasim's route counters.
func (s *benchSite) routeCalls() int64 {
	var n int64
	for _, v := range s.Sim.RouteCounters() {
		n += int64(v)
	}
	return n
}

// keys maps each issue's summary to its key.
func (s *benchSite) keys(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := s.admin.SearchAll(ctx, "project = "+s.Project, []string{"summary"}, nil, func(is jira.Issue) error {
		var sm string
		is.Field("summary", &sm)
		out[sm] = is.Key
		return nil
	})
	return out, err
}

// snapshot is demoSite.snapshot through the counted admin client.
func (s *benchSite) snapshot(ctx context.Context) (map[string]demoIssue, error) {
	sevID, _ := s.Sim.FieldID(map[string]string{"alpha": "Severity", "beta": "Impact"}[s.Name])
	refID, _ := s.Sim.FieldID(map[string]string{"alpha": "Customer Ref", "beta": "Partner Reference"}[s.Name])
	out := map[string]demoIssue{}
	err := s.admin.SearchAll(ctx, "project = "+s.Project+" ORDER BY key", []string{"summary", "description", "status", sevID, refID}, nil, func(is jira.Issue) error {
		var d demoIssue
		is.Field("summary", &d.Summary)
		is.Field("description", &d.Description)
		var st struct{ Name string }
		is.Field("status", &st)
		d.Status = statusAlias[st.Name]
		var sev struct{ Value string }
		is.Field(sevID, &sev)
		d.Severity = severityAlias[sev.Value]
		is.Field(refID, &d.Ref)
		if _, dup := out[d.Summary]; dup {
			return fmt.Errorf("%s: two issues with summary %q", s.Name, d.Summary)
		}
		out[d.Summary] = d
		return nil
	})
	return out, err
}

// benchExpect is a change whose value must show on the other site.
type benchExpect struct {
	site           int // where it must show
	summary, field string
	value          string
	at             time.Time
}

// benchActor plays the people of both sites.
type benchActor struct {
	sites [2]*benchSite
	keys  [2]map[string]string // summary -> key on each site
	names []string             // summaries, sorted

	mu      sync.Mutex
	pending map[[2]string]benchExpect // by summary and field
	lat     []time.Duration
	// model is each issue's status and severity alias as last set.
	model map[[2]string]string
}

func (d *benchActor) expect(e benchExpect) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A newer change of the same field, on either side, supersedes one
	// still in flight: only the newer value can win.
	d.pending[[2]string{e.summary, e.field}] = e
	d.model[[2]string{e.summary, e.field}] = e.value
}

// resolve checks which expected changes show on their site.
func (d *benchActor) resolve(snaps [2]map[string]demoIssue, now time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, e := range d.pending {
		is, ok := snaps[e.site][e.summary]
		if !ok {
			continue
		}
		var got string
		switch e.field {
		case "description":
			got = is.Description
		case "ref":
			got = is.Ref
		case "severity":
			got = is.Severity
		case "status":
			got = is.Status
		}
		if got == e.value {
			d.lat = append(d.lat, now.Sub(e.at))
			delete(d.pending, k)
		}
	}
	return len(d.pending)
}

// change makes change n on site si.
func (d *benchActor) change(ctx context.Context, rnd *rand.Rand, si, n int) error {
	s := d.sites[si]
	c := s.clients[rnd.IntN(len(s.clients))]
	// Each side changes its own half of the issues: two people editing
	// the same field at once is a conflict whose winner (by Jira time)
	// the bench cannot predict, and its latency would not be measurable.
	half := (len(d.names) - si + 1) / 2
	summary := d.names[si+2*rnd.IntN(half)]
	key := d.keys[si][summary]
	now := time.Now()
	switch r := rnd.IntN(10); {
	case r < 2: // severity, a select whose values differ on each side
		vals := map[string][]string{"alpha": {"S1", "S2", "S3"}, "beta": {"Critical", "Major", "Minor"}}[s.Name]
		d.mu.Lock()
		cur := d.model[[2]string{summary, "severity"}]
		d.mu.Unlock()
		v := vals[rnd.IntN(3)]
		if severityAlias[v] == cur {
			v = vals[(rnd.IntN(2)+1+indexOf(vals, v))%3]
		}
		id, _ := s.Sim.FieldID(map[string]string{"alpha": "Severity", "beta": "Impact"}[s.Name])
		if err := c.EditIssue(ctx, key, map[string]any{id: map[string]any{"value": v}}, nil, nil); err != nil {
			return err
		}
		d.expect(benchExpect{site: 1 - si, summary: summary, field: "severity", value: severityAlias[v], at: now})
	case r < 4: // a transition to another mapped status
		ts, err := c.Transitions(ctx, key)
		if err != nil {
			return err
		}
		var ok []jira.Transition
		for _, t := range ts {
			if a := statusAlias[t.To.Name]; a != "" {
				ok = append(ok, t)
			}
		}
		if len(ok) == 0 {
			return d.edit(ctx, c, si, summary, key, "description", n, now)
		}
		t := ok[rnd.IntN(len(ok))]
		if err := c.DoTransition(ctx, key, t.ID, nil, nil); err != nil {
			return err
		}
		d.expect(benchExpect{site: 1 - si, summary: summary, field: "status", value: statusAlias[t.To.Name], at: now})
	case r < 7:
		return d.edit(ctx, c, si, summary, key, "description", n, now)
	default:
		return d.edit(ctx, c, si, summary, key, "ref", n, now)
	}
	return nil
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return 0
}

// edit sets a text field to a value no one used before.
func (d *benchActor) edit(ctx context.Context, c *jira.Client, si int, summary, key, field string, n int, now time.Time) error {
	s := d.sites[si]
	v := fmt.Sprintf("change %d on %s", n, s.Name)
	id := field
	if field == "ref" {
		id, _ = s.Sim.FieldID(map[string]string{"alpha": "Customer Ref", "beta": "Partner Reference"}[s.Name])
	}
	if err := c.EditIssue(ctx, key, map[string]any{id: v}, nil, nil); err != nil {
		return err
	}
	d.expect(benchExpect{site: 1 - si, summary: summary, field: field, value: v, at: now})
	return nil
}

// peakRSS reads the process's peak resident set (VmHWM) in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i].Microseconds()) / 1000
}

// runBench runs the bench and returns its figures.
func runBench(ctx context.Context, o benchOptions) (res benchResult, err error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	res = benchResult{Transport: o.Transport, Changes: o.Changes, Issues: o.Issues, Seed: o.Seed, Rate: o.Rate}
	t0 := time.Now()
	// Peak memory is measured from here (Linux: writing 5 resets VmHWM).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	var peakHeap atomic.Uint64
	stopMem := make(chan struct{})
	defer close(stopMem)
	go func() {
		var ms runtimeMemSampler
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			if h := ms.heap(); h > peakHeap.Load() {
				peakHeap.Store(h)
			}
			select {
			case <-stopMem:
				return
			case <-tk.C:
			}
		}
	}()

	dir, err := os.MkdirTemp("", "jirabridge-bench-")
	if err != nil {
		return res, err
	}
	if o.Keep {
		fmt.Fprintf(log, "bench: working directory %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	da, db, err := startDemoSites(nil)
	if err != nil {
		return res, err
	}
	defer da.Close()
	defer db.Close()
	alpha, err := newBenchSite(da)
	if err != nil {
		return res, err
	}
	beta, err := newBenchSite(db)
	if err != nil {
		return res, err
	}
	var mailEnv func(string) map[string]string
	switch o.Transport {
	case "loopback", "file":
		mailEnv = func(name string) map[string]string {
			out, in := filepath.Join(dir, "alpha-to-beta"), filepath.Join(dir, "beta-to-alpha")
			if name == "beta" {
				out, in = in, out
			}
			return map[string]string{"JIRABRIDGE_TRANSPORT": "file",
				"JIRABRIDGE_FILEDROP_OUTGOING_DIR": out, "JIRABRIDGE_FILEDROP_INCOMING_DIR": in}
		}
		for _, d := range []string{"alpha-to-beta", "beta-to-alpha"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				return res, err
			}
		}
	default:
		mo := o.Mail
		if o.Transport == "mailtest" {
			mo = demoOptions{}
		}
		var closeMail func()
		mailEnv, closeMail, err = demoMail(mo)
		if err != nil {
			return res, err
		}
		defer closeMail()
	}

	pair, err := startBridgePair(ctx, dir, da, db, pairSetup{Poll: o.Poll, MailEnv: mailEnv, Wait: 2 * time.Minute, Note: "bench", Out: log})
	if err != nil {
		return res, err
	}
	defer pair.close()
	bridges, stopBridges := pair.bridges, pair.stop
	res.SetupSeconds = time.Since(t0).Seconds()
	fmt.Fprintf(log, "bench: %s set up in %.1fs; creating %d issues\n", o.Transport, res.SetupSeconds, o.Issues)

	// The issues, half on each side, created in parallel.
	sites := [2]*benchSite{alpha, beta}
	t1 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for si := range sites {
		wg.Add(1)
		go func(si int) {
			defer wg.Done()
			s := sites[si]
			typ := map[string]string{"alpha": "Task", "beta": "Story"}[s.Name]
			for i := si; i < o.Issues; i += 2 {
				if _, err := s.clients[i%len(s.clients)].CreateIssue(ctx, map[string]any{
					"project": map[string]any{"key": s.Project}, "issuetype": map[string]any{"name": typ},
					"summary": fmt.Sprintf("bench issue %d", i), "description": "created on " + s.Name,
				}, nil); err != nil {
					errs <- fmt.Errorf("create issue %d on %s: %w", i, s.Name, err)
					return
				}
			}
		}(si)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return res, err
	default:
	}
	if _, err := waitIdentical(ctx, alpha, beta, o.Timeout, func() bool { return true }); err != nil {
		return res, fmt.Errorf("the issues did not reach both sides: %w", err)
	}
	res.IssueCreationSeconds = time.Since(t1).Seconds()
	d := &benchActor{sites: sites, pending: map[[2]string]benchExpect{}, model: map[[2]string]string{}}
	for si, s := range sites {
		k, err := s.keys(ctx)
		if err != nil {
			return res, err
		}
		d.keys[si] = k
	}
	for sm := range d.keys[0] {
		d.names = append(d.names, sm)
	}
	sort.Strings(d.names)
	snap, err := alpha.snapshot(ctx)
	if err != nil {
		return res, err
	}
	for sm, is := range snap {
		d.model[[2]string{sm, "severity"}] = is.Severity
		d.model[[2]string{sm, "status"}] = is.Status
	}
	fmt.Fprintf(log, "bench: %d issues on both sides after %.1fs; making %d changes\n", len(d.names), res.IssueCreationSeconds, o.Changes)

	// Baselines of the change phase.
	type base struct {
		route, own int64
		m          map[string]float64
	}
	metricNames := []string{"jirabridge_envelopes_sent_total", "jirabridge_changes_sent_total", "jirabridge_changes_received_total"}
	var before [2]base
	var endpointsBefore [2]map[string]float64
	for i, b := range bridges {
		page, err := scrapeMetrics(ctx, "http://"+b.http+"/metrics")
		if err != nil {
			return res, err
		}
		m := map[string]float64{}
		for _, n := range metricNames {
			m[n] = page.Sum(n)
		}
		before[i] = base{route: sites[i].routeCalls(), own: sites[i].calls.n.Load(), m: m}
		endpointsBefore[i] = page.ByLabel(jiraCallsMetric, "endpoint")
	}
	var seqBefore [2]uint64
	for i, b := range bridges {
		r, err := b.status(ctx)
		if err != nil {
			return res, err
		}
		seqBefore[i] = r.Link.HighestSeq
	}

	// People change issues on both sides as fast as the Jiras answer,
	// while a watcher notes when each change shows on the other side.
	t2 := time.Now()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for watchCtx.Err() == nil {
			var snaps [2]map[string]demoIssue
			ok := true
			for i, s := range sites {
				sn, err := s.snapshot(watchCtx)
				if err != nil {
					ok = false
					break
				}
				snaps[i] = sn
			}
			if ok {
				d.resolve(snaps, time.Now())
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	var next atomic.Int64
	var pace <-chan time.Time
	if o.Rate > 0 {
		tk := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer tk.Stop()
		pace = tk.C
	}
	for si := range sites {
		wg.Add(1)
		go func(si int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(o.Seed, uint64(si)))
			for {
				n := int(next.Add(1))
				if n > o.Changes {
					return
				}
				if pace != nil {
					<-pace
				}
				if err := d.change(ctx, rnd, si, n); err != nil {
					errs <- fmt.Errorf("change %d on %s: %w", n, sites[si].Name, err)
					return
				}
			}
		}(si)
	}
	wg.Wait()
	select {
	case err := <-errs:
		stopWatch()
		<-watchDone
		return res, err
	default:
	}
	res.ChangeSeconds = time.Since(t2).Seconds()
	fmt.Fprintf(log, "bench: %d changes made in %.1fs; waiting for convergence\n", o.Changes, res.ChangeSeconds)
	diffs, err := waitIdentical(ctx, alpha, beta, o.Timeout, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.pending) == 0
	})
	stopWatch()
	<-watchDone
	res.ConvergeSeconds = time.Since(t2).Seconds()
	if err != nil && len(diffs) == 0 {
		return res, err
	}
	res.Identical = len(diffs) == 0
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	res.Differences = diffs
	d.mu.Lock()
	res.PendingExpectations = len(d.pending)
	lat := append([]time.Duration(nil), d.lat...)
	d.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.Latency = benchLatency{Samples: len(lat), P50: percentile(lat, 0.50), P95: percentile(lat, 0.95),
		P99: percentile(lat, 0.99), Max: percentile(lat, 1)}
	if res.ConvergeSeconds > 0 {
		res.ChangesPerSecond = float64(o.Changes) / res.ConvergeSeconds
	}

	res.SyncedChanges, res.JiraCalls, res.JiraCallsPerSynced = map[string]int64{}, map[string]int64{}, map[string]float64{}
	res.JiraCallsByEndpoint, res.JiraCallsPerSyncedByEndpoint = map[string]map[string]int64{}, map[string]map[string]float64{}
	var envelopes float64
	for i, b := range bridges {
		page, err := scrapeMetrics(ctx, "http://"+b.http+"/metrics")
		if err != nil {
			return res, err
		}
		m := map[string]float64{}
		for _, n := range metricNames {
			m[n] = page.Sum(n)
		}
		envelopes += m["jirabridge_envelopes_sent_total"] - before[i].m["jirabridge_envelopes_sent_total"]
		sent := int64(m["jirabridge_changes_sent_total"] - before[i].m["jirabridge_changes_sent_total"])
		received := int64(m["jirabridge_changes_received_total"] - before[i].m["jirabridge_changes_received_total"])
		calls := (sites[i].routeCalls() - before[i].route) - (sites[i].calls.n.Load() - before[i].own)
		name := sites[i].Name
		res.SyncedChanges[name+"_detected"], res.SyncedChanges[name+"_applied"], res.JiraCalls[name] = sent, received, calls
		if sent+received > 0 {
			res.JiraCallsPerSynced[name] = float64(calls) / float64(sent+received)
		}
		eps := page.ByLabel(jiraCallsMetric, "endpoint")
		res.JiraCallsByEndpoint[name], res.JiraCallsPerSyncedByEndpoint[name] = map[string]int64{}, map[string]float64{}
		for ep, v := range eps {
			n := int64(v - endpointsBefore[i][ep])
			if n == 0 {
				continue
			}
			res.JiraCallsByEndpoint[name][ep] = n
			if sent+received > 0 {
				res.JiraCallsPerSyncedByEndpoint[name][ep] = float64(n) / float64(sent+received)
			}
		}
		if r, err := b.status(ctx); err == nil {
			res.ParkedChanges += r.Parked
		}
	}
	// The changes envelopes and their bytes, from the outboxes (kept for
	// the retention period): the bridges stop first to free the stores.
	stopBridges()
	for i, b := range bridges {
		st, err := store.Open(ctx, filepath.Join(b.env["JIRABRIDGE_DATA_DIR"], store.FileName), &store.Options{BusyTimeout: 10 * time.Second})
		if err != nil {
			return res, fmt.Errorf("open %s's store: %w", b.name, err)
		}
		err = st.View(ctx, func(tx *store.Tx) error {
			syncs, err := tx.SyncList()
			if err != nil || len(syncs) == 0 {
				return fmt.Errorf("no sync: %v", err)
			}
			next, err := tx.OutboxNextSeq(syncs[0].ID)
			if err != nil {
				return err
			}
			for seq := seqBefore[i] + 1; seq < next; seq++ {
				e, err := tx.OutboxGet(syncs[0].ID, seq)
				if err != nil {
					return fmt.Errorf("outbox %d: %w", seq, err)
				}
				res.ChangesEnvelopes++
				res.WireBytes += int64(len(e.Sealed))
			}
			return nil
		})
		st.Close()
		if err != nil {
			return res, fmt.Errorf("%s's outbox: %w", b.name, err)
		}
	}
	res.ControlEnvelopes = int64(envelopes) - res.ChangesEnvelopes
	if o.Changes > 0 {
		res.EnvelopesPerChange = envelopes / float64(o.Changes)
		res.BytesPerChange = float64(res.WireBytes) / float64(o.Changes)
	}
	res.PeakRSSBytes = peakRSS()
	res.PeakHeapBytes = peakHeap.Load()
	fmt.Fprintf(log, "bench: done in %.1fs; identical %v\n", time.Since(t0).Seconds(), res.Identical)
	return res, nil
}

// waitIdentical polls until the two Jiras match and done() holds, or the
// timeout passes; it returns the last differences.
func waitIdentical(ctx context.Context, a, b *benchSite, timeout time.Duration, done func() bool) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		diffs, _, err := compareSites(ctx, a, b)
		if err == nil && len(diffs) == 0 && done() {
			return nil, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not converged after %s: %d differences", timeout, len(diffs))
			}
			return diffs, err
		}
		select {
		case <-ctx.Done():
			return diffs, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runtimeMemSampler reads the Go heap's size (live and not yet collected
// objects) through runtime/metrics.
type runtimeMemSampler struct{ s []metrics.Sample }

func (m *runtimeMemSampler) heap() uint64 {
	if m.s == nil {
		m.s = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	}
	metrics.Read(m.s)
	if m.s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return m.s[0].Value.Uint64()
}
