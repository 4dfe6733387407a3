package app

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
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
	http   string
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

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startDaemon(t *testing.T, s *site) *daemonSite {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonSite{site: s, cancel: cancel, done: make(chan int, 1), logs: &syncBuffer{}, http: freePort(t)}
	env := map[string]string{}
	for k, v := range s.env {
		env[k] = v
	}
	env["JIRABRIDGE_HTTP_LISTEN"] = d.http
	go func() {
		d.done <- Main([]string{"run"}, Env{Stdout: io.Discard, Stderr: d.logs, Context: ctx,
			Getenv: func(k string) string { return env[k] }})
	}()
	t.Cleanup(func() { d.stop(t) })
	return d
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

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool, logs ...*syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, l := range logs {
				t.Log(l.String())
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
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
	state := func(s *site, want string) func() bool {
		return func() bool { return string(s.status().State) == want }
	}
	eventually(t, "handshake: master STOPPED", 30*time.Second, state(master, "STOPPED"), md.logs, sd.logs)
	eventually(t, "handshake: slave STOPPED", 30*time.Second, state(slave, "STOPPED"), md.logs, sd.logs)
	master.must("publish", "--note", "daemons")
	eventually(t, "slave UPDATE REQUIRED", 30*time.Second, func() bool {
		r := slave.status()
		return r.State == "UPDATE REQUIRED" && len(r.Missing) == 1 && r.Missing[0] == "issue type task"
	}, md.logs, sd.logs)
	// The operator maps it; the running daemon notices the edited file.
	if err := os.WriteFile(slave.env["JIRABRIDGE_SYNC_FILE"], []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slave adopts", 30*time.Second, func() bool { return slave.status().AdoptedVersion == 1 }, md.logs, sd.logs)
	eventually(t, "master back to STOPPED", 30*time.Second, state(master, "STOPPED"), md.logs, sd.logs)
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
	wait := func() { time.Sleep(600 * time.Millisecond) }
	crossBothWays(t, alpha, beta, 60, wait, wait)
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
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
