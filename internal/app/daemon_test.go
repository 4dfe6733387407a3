package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/transport/mailstack"
	"github.com/jirabridge/jirabridge/transport/mailtest"
)

// daemonSite runs `jirabridge run` for a site in the background until the
// test ends; stop cancels it and reports the exit status.
type daemonSite struct {
	*site
	cancel context.CancelFunc
	done   chan int
	logs   *syncBuffer
	http   string  // where it listens (it chose the port)
	d      *daemon // the running daemon, for white-box checks
	// after is the last status generation a wait saw (see next).
	after string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs the site's bridge as `jirabridge run` does (the real
// process, signals included, is TestRunStopsOnSIGTERM's) on a port the OS
// chooses, and returns once it listens: its /status can be waited on.
func startDaemon(t *testing.T, s *site) *daemonSite {
	t.Helper()
	return startDaemonWith(t, s, daemonOptions{})
}

// startDaemonWith is startDaemon with options (OnListen is its own).
func startDaemonWith(t *testing.T, s *site, o daemonOptions) *daemonSite {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ds := &daemonSite{site: s, cancel: cancel, done: make(chan int, 1), logs: &syncBuffer{}}
	env := map[string]string{}
	for k, v := range s.env {
		env[k] = v
	}
	env["JIRABRIDGE_HTTP_LISTEN"] = "127.0.0.1:0"
	type listening struct {
		d    *daemon
		addr string
	}
	up := make(chan listening, 1)
	go func() {
		ds.done <- runDaemon(ctx, Env{Stdout: io.Discard, Stderr: ds.logs, Getenv: func(k string) string { return env[k] }},
			o, func(d *daemon, addr string) { up <- listening{d, addr} })
	}()
	select {
	case l := <-up:
		ds.d, ds.http = l.d, l.addr
	case code := <-ds.done:
		cancel()
		t.Fatalf("run exited %d before it listened; log:\n%s", code, ds.logs)
	}
	t.Cleanup(func() { ds.stop(t) })
	return ds
}

// runDaemon is cmdRun without its flags and signal handling, telling
// ready the daemon and its HTTP address once it listens.
func runDaemon(ctx context.Context, env Env, o daemonOptions, ready func(d *daemon, addr string)) int {
	s, code := loadSetup(env, "run")
	if s == nil {
		return code
	}
	defer s.Close()
	var d *daemon
	o.OnListen = func(addr string) { ready(d, addr) }
	d, err := newDaemon(ctx, s, o)
	if err != nil {
		fmt.Fprintf(env.Stderr, "run: %v\n", err)
		return ExitUsage
	}
	defer d.Close()
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(env.Stderr, "run: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}

// daemonStatus is the daemon's /status JSON.
type daemonStatus struct {
	statusReport
	Generation string `json:"generation"`
}

// getStatus asks the daemon's /status, waiting up to wait for a change
// after the generation after ("" answers at once).
func (d *daemonSite) getStatus(ctx context.Context, after string, wait time.Duration) (daemonStatus, *http.Response, error) {
	var st daemonStatus
	u := "http://" + d.http + "/status"
	if after != "" {
		u += "?after=" + url.QueryEscape(after) + "&wait=" + wait.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, resp, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, resp, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return st, resp, json.Unmarshal(b, &st)
}

// next returns the daemon's status once its generation has moved past the
// last one next saw (at once the first time): it blocks on the daemon's
// long-poll, not on the clock. It fails the test when ctx ends first.
func (d *daemonSite) next(ctx context.Context, t *testing.T) daemonStatus {
	t.Helper()
	for {
		st, _, err := d.getStatus(ctx, d.after, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: %v; log:\n%s", d.http, err, d.logs)
		}
		if st.Generation != d.after {
			d.after = st.Generation
			return st
		}
	}
}

// waitStatus waits, on the daemon's long-poll, until cond holds for its
// status, at most timeout; others' logs are shown when it fails.
func (d *daemonSite) waitStatus(t *testing.T, what string, timeout time.Duration, cond func(daemonStatus) bool, others ...*daemonSite) daemonStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		st, _, err := d.getStatus(ctx, d.after, 30*time.Second)
		if err == nil && cond(st) {
			d.after = st.Generation
			return st
		}
		if ctx.Err() != nil || err != nil {
			for _, o := range others {
				t.Logf("%s log:\n%s", o.http, o.logs)
			}
			t.Fatalf("%s: waiting %s for %s: status %+v, %v; log:\n%s", d.http, timeout, what, st.statusReport, err, d.logs)
		}
		d.after = st.Generation
	}
}

// stop sends the equivalent of SIGTERM and wants exit status 0.
func (d *daemonSite) stop(t *testing.T) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case code := <-d.done:
		if code != 0 {
			t.Errorf("run exited %d, want 0 after SIGTERM; log:\n%s", code, d.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Errorf("run did not stop within 60s of SIGTERM")
	}
}

func mailtestEnv(t *testing.T) func(string) map[string]string {
	env, _ := mailtestServer(t)
	return env
}

func mailtestServer(t *testing.T) (func(string) map[string]string, *mailtest.Server) {
	srv, err := mailtest.Start(mailtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for _, u := range []string{"alpha", "beta"} {
		if err := srv.AddUser(u, "mailpw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	shost, sport, _ := net.SplitHostPort(srv.SMTPAddr())
	ihost, iport, _ := net.SplitHostPort(srv.IMAPAddr())
	return func(name string) map[string]string {
		peer := "beta"
		if name == "beta" {
			peer = "alpha"
		}
		return map[string]string{
			"JIRABRIDGE_TRANSPORT":         "smtp+imap",
			"JIRABRIDGE_SMTP_HOST":         shost,
			"JIRABRIDGE_SMTP_PORT":         sport,
			"JIRABRIDGE_SMTP_TLS_MODE":     "plain",
			"JIRABRIDGE_SMTP_FROM":         srv.Address(name, ""),
			"JIRABRIDGE_SMTP_PEER_ADDRESS": srv.Address(peer, ""),
			"JIRABRIDGE_IMAP_HOST":         ihost,
			"JIRABRIDGE_IMAP_PORT":         iport,
			"JIRABRIDGE_IMAP_TLS_MODE":     "plain",
			"JIRABRIDGE_IMAP_USER":         name,
			"JIRABRIDGE_IMAP_PASSWORD":     "mailpw-" + name,
		}
	}, srv
}

// stackEnv points both bridges at the real Postfix + Dovecot stack, each
// with its own folder, over STARTTLS with the stack's test CA.
func stackEnv(t *testing.T, st *mailstack.Stack) func(string) map[string]string {
	var users []string
	for u := range st.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	if len(users) < 2 {
		t.Skip("the mail stack has fewer than two users")
	}
	tag := "jb" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	user := map[string]string{"alpha": users[0], "beta": users[1]}
	return func(name string) map[string]string {
		peer := "beta"
		if name == "beta" {
			peer = "alpha"
		}
		return map[string]string{
			"JIRABRIDGE_TRANSPORT":              "smtp+imap",
			"JIRABRIDGE_SMTP_HOST":              st.Host,
			"JIRABRIDGE_SMTP_PORT":              strconv.Itoa(st.SubmissionPort),
			"JIRABRIDGE_SMTP_TLS_MODE":          "starttls",
			"JIRABRIDGE_SMTP_CA_FILE":           st.CAFile,
			"JIRABRIDGE_SMTP_USER":              user[name],
			"JIRABRIDGE_SMTP_PASSWORD":          st.Password(user[name]),
			"JIRABRIDGE_SMTP_FROM":              st.Address(user[name], ""),
			"JIRABRIDGE_SMTP_PEER_ADDRESS":      st.Address(user[peer], tag+name),
			"JIRABRIDGE_IMAP_HOST":              st.Host,
			"JIRABRIDGE_IMAP_PORT":              strconv.Itoa(st.IMAPSPort),
			"JIRABRIDGE_IMAP_TLS_MODE":          "tls",
			"JIRABRIDGE_IMAP_CA_FILE":           st.CAFile,
			"JIRABRIDGE_IMAP_USER":              user[name],
			"JIRABRIDGE_IMAP_PASSWORD":          st.Password(user[name]),
			"JIRABRIDGE_IMAP_MAILBOX":           tag + peer,
			"JIRABRIDGE_IMAP_PROCESSED_FOLDER":  tag + peer + "-processed",
			"JIRABRIDGE_IMAP_QUARANTINE_FOLDER": tag + peer + "-quarantine",
		}
	}
}

func TestDaemonsOverMailtest(t *testing.T) {
	t.Parallel()
	daemonsEndToEnd(t, mailtestEnv(t))
}

func TestDaemonsOverRealMailStack(t *testing.T) {
	st := mailstack.Require(t)
	daemonsEndToEnd(t, stackEnv(t, st))
}

// daemonsEndToEnd sets the pair up as docs/setup.md says with both bridges
// running as daemons, crosses a change both ways, and checks the HTTP
// endpoints and the clean stop.
func daemonsEndToEnd(t *testing.T, transportEnv func(string) map[string]string) {
	alpha, beta := testSites(t)
	root := t.TempDir()
	mk := func(s *demoSite) *site {
		return bridgeSite(t, root, s, transportEnv, map[string]string{
			"JIRABRIDGE_LOG_LEVEL": "warn", "JIRABRIDGE_BATCH_LINGER": "100ms", "JIRABRIDGE_ACK_DELAY": "300ms",
		})
	}
	master, slave := mk(alpha), mk(beta)
	// The slave starts without a mapping for the alias "task".
	full := beta.SyncYAML
	partial := strings.Replace(full, "  Story: task\n", "", 1)
	if partial == full {
		t.Fatal("demo sync definition of beta changed; fix the test")
	}
	if err := os.WriteFile(slave.env["JIRABRIDGE_SYNC_FILE"], []byte(partial), 0o600); err != nil {
		t.Fatal(err)
	}
	hs := filepath.Join(root, "handshake.json")
	master.must("init", "--out", hs)
	slave.must("join", hs)
	md, sd := startDaemon(t, master), startDaemon(t, slave)
	// Each wait blocks on the daemon's /status long-poll: it wakes when
	// the daemon has done something, and looks again.
	state := func(want string) func(daemonStatus) bool {
		return func(st daemonStatus) bool { return string(st.State) == want }
	}
	md.waitStatus(t, "handshake: master STOPPED", 30*time.Second, state("STOPPED"), sd)
	sd.waitStatus(t, "handshake: slave STOPPED", 30*time.Second, state("STOPPED"), md)
	master.must("publish", "--note", "daemons")
	sd.waitStatus(t, "slave UPDATE REQUIRED", 30*time.Second, func(r daemonStatus) bool {
		return r.State == "UPDATE REQUIRED" && len(r.Missing) == 1 && r.Missing[0] == "issue type task"
	}, md)
	// The operator maps it; the running daemon notices the edited file.
	if err := os.WriteFile(slave.env["JIRABRIDGE_SYNC_FILE"], []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	sd.waitStatus(t, "slave adopts", 30*time.Second, func(r daemonStatus) bool { return r.AdoptedVersion == 1 }, md)
	md.waitStatus(t, "master back to STOPPED", 30*time.Second, state("STOPPED"), sd)
	// Commands work while the daemons run.
	master.must("start")
	slave.must("start")

	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/status", "/"} {
		resp, err := http.Get("http://" + md.http + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if path == "/status" && (!strings.Contains(string(b), `"state": "RUNNING"`) || !strings.Contains(string(b), `"link_detail"`)) {
			t.Errorf("/status: %s", b)
		}
	}
	// crossBothWays looks at a Jira after each call of toBeta/toAlpha:
	// here each returns when that side's daemon has done something more
	// (received, applied, sent), so it looks exactly as often as there
	// is something new to see; a minute bounds the whole exchange.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crossBothWays(t, alpha, beta, 10000, func() { sd.next(ctx, t) }, func() { md.next(ctx, t) })
	// The running engine's /status also says what detection left out on
	// purpose (links to unsynced issues and the like).
	if resp, err := http.Get("http://" + md.http + "/status"); err != nil {
		t.Errorf("GET /status: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"links_to_unsynced_issues": 0`) {
			t.Errorf("/status lacks the content counts: %s", b)
		}
	}
	// What happened shows in each bridge's metrics: envelopes both ways and
	// the changes the peer made, applied here.
	for _, d := range []*daemonSite{md, sd} {
		for _, name := range []string{"jirabridge_changes_applied_total", "jirabridge_envelopes_sent_total", "jirabridge_envelopes_received_total", "jirabridge_jira_calls_total", "jirabridge_change_latency_seconds_count"} {
			if got := scrapeSum(t, "http://"+d.http+"/metrics", name); got < 1 {
				t.Errorf("%s: %s = %v, want at least 1", d.http, name, got)
			}
		}
	}
	md.stop(t)
	sd.stop(t)
	if t.Failed() {
		t.Logf("master log:\n%s\nslave log:\n%s", md.logs, sd.logs)
	}
}

// scrapeSum adds up every sample of the metric name on a /metrics page.
func scrapeSum(t *testing.T, url, name string) float64 {
	t.Helper()
	p, err := scrapeMetrics(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return p.Sum(name)
}
