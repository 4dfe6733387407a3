package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/transport/mailtest"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	Duration time.Duration
	Rate     float64 // human changes per second, both sites together
	Settle   time.Duration
	Keep     bool
	Seed     uint64
	// A real mail server instead of the embedded one.
	SMTP, IMAP     string // host:port
	MailUsers      string // "userA:pwA,userB:pwB"
	MailDomain     string
	MailCA         string // with a CA: STARTTLS for SMTP, implicit TLS for IMAP
	PrintWriteLogs bool
}

func cmdDemo(env Env, args []string) int {
	fs := newFlagSet(env, "demo", "demo [--duration 30s] [--rate 2] [--smtp HOST:PORT --imap HOST:PORT --mail-users A:PW,B:PW --mail-domain D [--mail-ca FILE]]\n\n"+
		"Runs the whole system on this machine with no configuration and no network:\n"+
		"two Jira emulators with different projects, an in-process mail server, and two\n"+
		"bridges set up through init, join, publish and start; then people change\n"+
		"issues on both sides, and at the end the two Jiras are compared.")
	var o demoOptions
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long people keep changing issues")
	fs.Float64Var(&o.Rate, "rate", 2, "human changes per second (both sites together)")
	fs.DurationVar(&o.Settle, "settle", 90*time.Second, "how long to wait for the two Jiras to match at the end")
	fs.BoolVar(&o.Keep, "keep", false, "keep the working directory (data, handshake file, logs)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the random changes (0: from the clock)")
	fs.StringVar(&o.SMTP, "smtp", "", "use this SMTP server (host:port) instead of the embedded one")
	fs.StringVar(&o.IMAP, "imap", "", "use this IMAP server (host:port) instead of the embedded one")
	fs.StringVar(&o.MailUsers, "mail-users", "", "with --smtp/--imap: the two bridges' mailboxes, USER:PASSWORD,USER:PASSWORD")
	fs.StringVar(&o.MailDomain, "mail-domain", "", "with --smtp/--imap: the mail domain of the users")
	fs.StringVar(&o.MailCA, "mail-ca", "", "with --smtp/--imap: CA file; then SMTP uses STARTTLS and IMAP implicit TLS (else plain, loopback only)")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if (o.SMTP == "") != (o.IMAP == "") || (o.SMTP != "" && (o.MailUsers == "" || o.MailDomain == "")) {
		fmt.Fprintln(env.Stderr, "demo: --smtp and --imap go together, with --mail-users and --mail-domain")
		return ExitUsage
	}
	if o.Rate <= 0 || o.Duration < 0 {
		fmt.Fprintln(env.Stderr, "demo: --rate must be above 0 and --duration not negative")
		return ExitUsage
	}
	ctx, stop := runContext(env)
	defer stop()
	ok, err := runDemo(ctx, env.Stdout, o)
	if err != nil {
		fmt.Fprintf(env.Stderr, "demo: %v\n", err)
		return ExitFailure
	}
	if !ok {
		return ExitFailure
	}
	return ExitOK
}

// demoBridge is one bridge of the demo: its environment and its daemon.
type demoBridge struct {
	name   string
	env    map[string]string
	http   string
	logf   *os.File
	cancel context.CancelFunc
	done   chan int
}

func (b *demoBridge) main(ctx context.Context, w io.Writer, args ...string) (int, string) {
	var out strings.Builder
	code := Main(args, Env{Stdout: &out, Stderr: io.MultiWriter(&out, b.logf), Context: ctx,
		Getenv: func(k string) string { return b.env[k] }})
	return code, out.String()
}

func (b *demoBridge) must(ctx context.Context, w io.Writer, args ...string) error {
	code, out := b.main(ctx, w, args...)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, "  [%s] %s\n", b.name, l)
	}
	if code != 0 {
		return fmt.Errorf("%s: jirabridge %s exited %d", b.name, strings.Join(args, " "), code)
	}
	return nil
}

func (b *demoBridge) status(ctx context.Context) (statusReport, error) {
	code, out := b.main(ctx, io.Discard, "status", "--json")
	var r statusReport
	if code != 0 {
		return r, fmt.Errorf("%s: status exited %d: %s", b.name, code, out)
	}
	return r, json.Unmarshal([]byte(out), &r)
}

func (b *demoBridge) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(statusReport) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		r, err := b.status(ctx)
		if err == nil && cond(r) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: timed out waiting for %s (state %s %s); log: %s", b.name, what, r.State, r.Reason, b.logf.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func loopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runDemo runs the demo and reports whether the two Jiras matched.
func runDemo(ctx context.Context, w io.Writer, o demoOptions) (bool, error) {
	dir, err := os.MkdirTemp("", "jirabridge-demo-")
	if err != nil {
		return false, err
	}
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintf(w, "jirabridge demo: working directory %s\n", dir)
	alpha, beta, err := startDemoSites(nil)
	if err != nil {
		return false, err
	}
	defer alpha.Close()
	defer beta.Close()
	fmt.Fprintf(w, "Jira alpha (project ALPHA): %s   Jira beta (project BETA): %s\n", alpha.URL, beta.URL)
	fmt.Fprintf(w, "  try: curl -su admin:admin '%s/rest/api/2/search?jql=project=ALPHA'\n", alpha.URL)

	mailEnv, closeMail, err := demoMail(o)
	if err != nil {
		return false, err
	}
	defer closeMail()

	fmt.Fprintln(w, "\n== Set-up, as docs/setup.md describes (alpha is the master)")
	pair, err := startBridgePair(ctx, dir, alpha, beta, pairSetup{Poll: time.Second, MailEnv: mailEnv, Wait: 60 * time.Second,
		Note: "demo mappings", Check: true, Out: w, Narrate: true})
	if err != nil {
		return false, err
	}
	defer pair.close()
	bridges, master, slave := pair.bridges, pair.master, pair.slave
	fmt.Fprintf(w, "Status endpoints: http://%s/status (alpha)   http://%s/status (beta)\n", master.http, slave.http)

	fmt.Fprintf(w, "\n== People change issues on both sides for %s at %.1f changes/s\n", o.Duration, o.Rate)
	seed := o.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	actor := newDemoActor(alpha, beta, seed)
	made := actor.run(ctx, w, o, []*demoBridge{master, slave})

	fmt.Fprintf(w, "\n== Waiting up to %s for the two Jiras to match (%d changes made)\n", o.Settle, made)
	deadline := time.Now().Add(o.Settle)
	var diffs []string
	var n int
	for {
		diffs, n, err = compareSites(ctx, alpha, beta)
		if err == nil && len(diffs) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return false, err
	}
	for _, b := range bridges {
		r, err := b.status(ctx)
		if err == nil {
			fmt.Fprintf(w, "  %s: %s, %d synced issues, %d parked, %d conflicts, sent %d envelopes, received %d\n",
				b.name, r.State, r.Pairs, r.Parked, r.Conflicts, r.Link.HighestSeq, r.Link.Received)
		}
	}
	if len(diffs) > 0 {
		fmt.Fprintf(w, "RESULT: the two Jiras DIFFER in %d of %d issues:\n", len(diffs), n)
		for _, d := range diffs {
			fmt.Fprintf(w, "  - %s\n", d)
		}
		fmt.Fprintf(w, "Logs: %s, %s\n", master.logf.Name(), slave.logf.Name())
		return false, nil
	}
	fmt.Fprintf(w, "RESULT: the two Jiras match: %d issues, same summaries, descriptions, severities, statuses and comment counts.\n", n)
	return true, nil
}

// demoMail returns each bridge's mail settings: the embedded server, or the
// one given by flags.
func demoMail(o demoOptions) (func(string) map[string]string, func(), error) {
	if o.SMTP == "" {
		srv, err := mailtest.Start(mailtest.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("start the embedded mail server: %w", err)
		}
		for _, u := range []string{"alpha", "beta"} {
			if err := srv.AddUser(u, "demo-"+u); err != nil {
				srv.Close()
				return nil, nil, err
			}
		}
		sh, sp, _ := net.SplitHostPort(srv.SMTPAddr())
		ih, ip, _ := net.SplitHostPort(srv.IMAPAddr())
		return func(name string) map[string]string {
			return map[string]string{
				"JIRABRIDGE_TRANSPORT": "smtp+imap", "JIRABRIDGE_SMTP_HOST": sh, "JIRABRIDGE_SMTP_PORT": sp,
				"JIRABRIDGE_SMTP_TLS_MODE": "plain", "JIRABRIDGE_SMTP_FROM": srv.Address(name, ""),
				"JIRABRIDGE_SMTP_PEER_ADDRESS": srv.Address(otherSite(name), ""),
				"JIRABRIDGE_IMAP_HOST":         ih, "JIRABRIDGE_IMAP_PORT": ip, "JIRABRIDGE_IMAP_TLS_MODE": "plain",
				"JIRABRIDGE_IMAP_USER": name, "JIRABRIDGE_IMAP_PASSWORD": "demo-" + name,
			}
		}, func() { srv.Close() }, nil
	}
	users := strings.Split(o.MailUsers, ",")
	if len(users) != 2 || !strings.Contains(users[0], ":") || !strings.Contains(users[1], ":") {
		return nil, nil, fmt.Errorf("--mail-users wants USER:PASSWORD,USER:PASSWORD")
	}
	cred := map[string][2]string{}
	for i, name := range []string{"alpha", "beta"} {
		u, p, _ := strings.Cut(users[i], ":")
		cred[name] = [2]string{u, p}
	}
	sh, sp, err := net.SplitHostPort(o.SMTP)
	if err != nil {
		return nil, nil, fmt.Errorf("--smtp: %w", err)
	}
	ih, ip, err := net.SplitHostPort(o.IMAP)
	if err != nil {
		return nil, nil, fmt.Errorf("--imap: %w", err)
	}
	smtpTLS, imapTLS := "plain", "plain"
	if o.MailCA != "" {
		smtpTLS, imapTLS = "starttls", "tls"
	}
	return func(name string) map[string]string {
		c := cred[name]
		return map[string]string{
			"JIRABRIDGE_TRANSPORT": "smtp+imap", "JIRABRIDGE_SMTP_HOST": sh, "JIRABRIDGE_SMTP_PORT": sp,
			"JIRABRIDGE_SMTP_TLS_MODE": smtpTLS, "JIRABRIDGE_SMTP_CA_FILE": o.MailCA,
			"JIRABRIDGE_SMTP_USER": c[0], "JIRABRIDGE_SMTP_PASSWORD": c[1],
			"JIRABRIDGE_SMTP_FROM": c[0] + "@" + o.MailDomain, "JIRABRIDGE_SMTP_PEER_ADDRESS": cred[otherSite(name)][0] + "@" + o.MailDomain,
			"JIRABRIDGE_IMAP_HOST": ih, "JIRABRIDGE_IMAP_PORT": ip, "JIRABRIDGE_IMAP_TLS_MODE": imapTLS,
			"JIRABRIDGE_IMAP_CA_FILE": o.MailCA, "JIRABRIDGE_IMAP_USER": c[0], "JIRABRIDGE_IMAP_PASSWORD": c[1],
		}
	}, func() {}, nil
}

func otherSite(name string) string {
	if name == "alpha" {
		return "beta"
	}
	return "alpha"
}

// demoActor plays the people: it creates issues, edits descriptions and
// severities, comments and moves issues through their workflows on both
// sites, and measures how long each change takes to
// show on the other site.
type demoActor struct {
	sites [2]*demoSite
	rnd   *rand.Rand
	n     int

	mu      sync.Mutex
	pending []demoExpect
	lat     []time.Duration
}

// demoExpect is a change whose effect must show on the other site: the
// issue (a create), or a field with a value (an edit).
type demoExpect struct {
	site         int // where it must show
	summary      string
	field, value string // "" for a create
	at           time.Time
}

func (e demoExpect) shows(is demoIssue) bool {
	switch e.field {
	case "description":
		return is.Description == e.value
	case "severity":
		return is.Severity == e.value
	case "status":
		return is.Status == e.value
	}
	return true
}

func newDemoActor(a, b *demoSite, seed uint64) *demoActor {
	return &demoActor{sites: [2]*demoSite{a, b}, rnd: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

func (d *demoActor) run(ctx context.Context, w io.Writer, o demoOptions, bridges []*demoBridge) int {
	every := time.Duration(float64(time.Second) / o.Rate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	end := time.After(o.Duration)
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return d.n
		case <-end:
			d.report(ctx, w, start, bridges)
			return d.n
		case <-tick.C:
			if err := d.change(ctx); err != nil {
				fmt.Fprintf(w, "  (a person's change failed: %v)\n", err)
			}
		case <-progress.C:
			d.report(ctx, w, start, bridges)
		}
	}
}

var demoSummaries = []string{"Printer on fire", "Login page slow", "Invoice totals wrong", "VPN drops hourly",
	"Export to CSV broken", "Search ignores accents", "Dark mode contrast", "Password reset mail late"}

func (d *demoActor) change(ctx context.Context) error {
	si := d.rnd.IntN(2)
	s := d.sites[si]
	person := s.People[d.rnd.IntN(len(s.People))]
	c, err := s.Client(person)
	if err != nil {
		return err
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	var keys []string
	for k := range snap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d.n++
	now := time.Now()
	if len(keys) < 3 || d.rnd.IntN(4) == 0 {
		summary := fmt.Sprintf("%s #%d", demoSummaries[d.rnd.IntN(len(demoSummaries))], d.n)
		types := map[string]string{"alpha": "Bug", "beta": "Bug"}
		_, err := c.CreateIssue(ctx, map[string]any{
			"project": map[string]any{"key": s.Project}, "issuetype": map[string]any{"name": types[s.Name]},
			"summary": summary, "description": "reported by " + person,
		}, nil)
		if err == nil {
			d.expect(demoExpect{site: 1 - si, summary: summary, at: now})
		}
		return err
	}
	summary := keys[d.rnd.IntN(len(keys))]
	key, err := issueKey(ctx, s, summary)
	if err != nil {
		return err
	}
	switch d.rnd.IntN(5) {
	case 2: // a comment
		_, err := c.AddComment(ctx, key, fmt.Sprintf("comment %d by %s", d.n, person), nil, nil)
		return err
	case 0: // severity, a select field whose values differ on each side
		sevField := map[string]string{"alpha": "Severity", "beta": "Impact"}[s.Name]
		id, _ := s.Sim.FieldID(sevField)
		vals := map[string][]string{"alpha": {"S1", "S2", "S3"}, "beta": {"Critical", "Major", "Minor"}}[s.Name]
		v := vals[d.rnd.IntN(3)]
		if err := c.EditIssue(ctx, key, map[string]any{id: map[string]any{"value": v}}, nil, nil); err != nil {
			return err
		}
		d.expect(demoExpect{site: 1 - si, summary: summary, field: "severity", value: severityAlias[v], at: now})
		return nil
	case 1: // a transition to a status both sides map
		ts, err := c.Transitions(ctx, key)
		if err != nil {
			return err
		}
		var ok []jira.Transition
		for _, t := range ts {
			if statusAlias[t.To.Name] != "" {
				ok = append(ok, t)
			}
		}
		if len(ok) == 0 {
			return nil
		}
		t := ok[d.rnd.IntN(len(ok))]
		if err := c.DoTransition(ctx, key, t.ID, nil, nil); err != nil {
			return err
		}
		d.expect(demoExpect{site: 1 - si, summary: summary, field: "status", value: statusAlias[t.To.Name], at: now})
		return nil
	}
	desc := fmt.Sprintf("edit %d by %s on %s", d.n, person, s.Name)
	if err := c.EditIssue(ctx, key, map[string]any{"description": desc}, nil, nil); err != nil {
		return err
	}
	d.expect(demoExpect{site: 1 - si, summary: summary, field: "description", value: desc, at: now})
	return nil
}

func issueKey(ctx context.Context, s *demoSite, summary string) (string, error) {
	c, err := jira.New(jira.Options{BaseURL: s.URL, Username: "admin", Password: "admin", Timeout: 20 * time.Second})
	if err != nil {
		return "", err
	}
	var key string
	err = c.SearchAll(ctx, "project = "+s.Project, []string{"summary"}, nil, func(is jira.Issue) error {
		var sm string
		is.Field("summary", &sm)
		if sm == summary {
			key = is.Key
		}
		return nil
	})
	if err == nil && key == "" {
		err = fmt.Errorf("no issue %q on %s", summary, s.Name)
	}
	return key, err
}

func (d *demoActor) expect(e demoExpect) {
	d.mu.Lock()
	// A newer change of the same field (on either side) supersedes an
	// older one still in flight: only the newer value can win.
	if e.field != "" {
		keep := d.pending[:0]
		for _, p := range d.pending {
			if p.summary != e.summary || p.field != e.field {
				keep = append(keep, p)
			}
		}
		d.pending = keep
	}
	d.pending = append(d.pending, e)
	d.mu.Unlock()
}

// report checks which expected changes show on the other site and prints a
// progress line.
func (d *demoActor) report(ctx context.Context, w io.Writer, start time.Time, bridges []*demoBridge) {
	var snaps [2]map[string]demoIssue
	for i, s := range d.sites {
		snap, err := s.snapshot(ctx)
		if err != nil {
			return
		}
		snaps[i] = snap
	}
	now := time.Now()
	d.mu.Lock()
	keep := d.pending[:0]
	for _, e := range d.pending {
		is, ok := snaps[e.site][e.summary]
		if ok && e.shows(is) {
			d.lat = append(d.lat, now.Sub(e.at))
			continue
		}
		keep = append(keep, e)
	}
	d.pending = keep
	inFlight, arrived := len(d.pending), len(d.lat)
	lat := append([]time.Duration(nil), d.lat...)
	d.mu.Unlock()
	p50, max := "-", "-"
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p50, max = lat[len(lat)/2].Round(100*time.Millisecond).String(), lat[len(lat)-1].Round(100*time.Millisecond).String()
	}
	parked := 0
	for _, b := range bridges {
		if r, err := b.status(ctx); err == nil {
			parked += r.Parked
		}
	}
	fmt.Fprintf(w, "  %5.0fs  made %3d  in flight %3d  arrived %3d  parked %d  latency p50 %s max %s (polled each second)\n",
		now.Sub(start).Seconds(), d.n, inFlight, arrived, parked, p50, max)
}

// newDemoBridge prepares one bridge of the demo or the bench: its
// directory, sync definition, log file and environment, as docs/setup.md
// has a person set them. The caller closes logf.
func newDemoBridge(dir string, s *demoSite, poll time.Duration, mailEnv func(string) map[string]string) (*demoBridge, error) {
	bdir := filepath.Join(dir, s.Name)
	if err := os.MkdirAll(bdir, 0o700); err != nil {
		return nil, err
	}
	syncFile := filepath.Join(bdir, "sync.yaml")
	if err := os.WriteFile(syncFile, []byte(s.SyncYAML), 0o600); err != nil {
		return nil, err
	}
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(bdir, "bridge.log"))
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"JIRABRIDGE_DATA_DIR": filepath.Join(bdir, "data"), "JIRABRIDGE_SYNC_FILE": syncFile,
		"JIRABRIDGE_JIRA_BASE_URL": s.URL, "JIRABRIDGE_JIRA_USER": demoSyncUser, "JIRABRIDGE_JIRA_PASSWORD": demoPassword,
		"JIRABRIDGE_HTTP_LISTEN": addr, "JIRABRIDGE_LOG_LEVEL": "warn", "JIRABRIDGE_POLL_INTERVAL": poll.String(),
		"JIRABRIDGE_BATCH_LINGER": "200ms", "JIRABRIDGE_ACK_DELAY": "1s", "JIRABRIDGE_HEARTBEAT_INTERVAL": "30s",
	}
	for k, v := range mailEnv(s.Name) {
		env[k] = v
	}
	return &demoBridge{name: s.Name, env: env, http: addr, logf: logf}, nil
}
