package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/transport/mailstack"
)

// procBridge is one bridge run as a separate process of the jirabridge
// binary, set up with its real commands.
type procBridge struct {
	t    testing.TB
	name string
	bin  string
	env  []string
	log  string // the daemon's output, appended over restarts

	mu  sync.Mutex
	cmd *exec.Cmd
	inc *incarnation
	// restarted is closed (and replaced) when start makes a new
	// incarnation: a client whose daemon died waits on it.
	restarted chan struct{}
	// after is the last status generation next saw.
	after string
}

// incarnation is one run of the daemon process: where it listens, known
// once up is closed (the process logged it).
type incarnation struct {
	up   chan struct{}
	addr string
	file *os.File
}

// exec runs one command of the binary to completion.
func (b *procBridge) exec(args ...string) (string, error) {
	cmd := exec.Command(b.bin, args...)
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: jirabridge %s: %w\n%s", b.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (b *procBridge) must(args ...string) string {
	b.t.Helper()
	out, err := b.exec(args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

// start starts the daemon (jirabridge run) on a port the OS chooses; the
// daemon's log line "http listening" says which (see incarnation).
func (b *procBridge) start() {
	b.t.Helper()
	f, err := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	inc := &incarnation{up: make(chan struct{}), file: f}
	cmd := exec.Command(b.bin, "run")
	cmd.Env, cmd.Stdout, cmd.Stderr = b.env, f, &listenWatch{w: f, found: func(addr string) {
		inc.addr = addr
		close(inc.up)
	}}
	if err := cmd.Start(); err != nil {
		f.Close()
		b.t.Fatalf("%s: start run: %v", b.name, err)
	}
	b.mu.Lock()
	b.cmd, b.inc = cmd, inc
	if b.restarted != nil {
		close(b.restarted)
	}
	b.restarted = make(chan struct{})
	b.mu.Unlock()
}

// listenWatch passes the daemon's output on to w and tells found the
// address of its "http listening" line (JSON log format), once.
type listenWatch struct {
	w     io.Writer
	found func(addr string)
	buf   []byte
	done  bool
}

func (l *listenWatch) Write(p []byte) (int, error) {
	if !l.done {
		l.buf = append(l.buf, p...)
		for {
			i := bytes.IndexByte(l.buf, '\n')
			if i < 0 {
				break
			}
			var line struct{ Msg, Addr string }
			if json.Unmarshal(l.buf[:i], &line) == nil && line.Msg == "http listening" && line.Addr != "" {
				l.found(line.Addr)
				l.done, l.buf = true, nil
				break
			}
			l.buf = l.buf[i+1:]
		}
	}
	return l.w.Write(p)
}

// kill sends SIGKILL to the daemon and reaps it.
func (b *procBridge) kill() {
	b.mu.Lock()
	cmd, inc := b.cmd, b.inc
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	inc.file.Close()
}

// stop ends the daemon politely (SIGTERM).
func (b *procBridge) stop() {
	b.mu.Lock()
	cmd, inc := b.cmd, b.inc
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	inc.file.Close()
}

type procStatusReport struct {
	State          string `json:"state"`
	Reason         string `json:"reason"`
	AdoptedVersion int    `json:"adopted_version"`
	Pending        int    `json:"pending_changes"`
	Parked         int    `json:"parked_changes"`
	Generation     string `json:"generation"` // the daemon's /status only
}

// status reads the store with `jirabridge status --json` (the daemon may be
// down).
func (b *procBridge) status() (procStatusReport, error) {
	var r procStatusReport
	out, err := b.exec("status", "--json")
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(out), &r)
}

// listening returns the running incarnation and its address, waiting
// until it listens (a restart replaces one that never did).
func (b *procBridge) listening(ctx context.Context) (*incarnation, error) {
	for {
		b.mu.Lock()
		inc, restarted := b.inc, b.restarted
		b.mu.Unlock()
		select {
		case <-inc.up:
			return inc, nil
		case <-restarted:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: no daemon listening: %w", b.name, ctx.Err())
		}
	}
}

// next returns the daemon's status once its generation has moved past the
// last one next saw (at once the first time), blocking on the daemon's
// /status long-poll rather than the clock. A daemon killed meanwhile is
// waited for: its restart answers (another process's generation is
// always news).
func (b *procBridge) next(ctx context.Context) (procStatusReport, error) {
	for {
		inc, err := b.listening(ctx)
		if err != nil {
			return procStatusReport{}, err
		}
		r, err := getProcStatus(ctx, inc.addr, b.after)
		if err == nil && r.Generation != b.after {
			b.after = r.Generation
			return r, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return r, fmt.Errorf("%s: %w", b.name, err)
			}
			// The daemon died under the request: wait for the next one.
			b.mu.Lock()
			same, restarted := b.inc == inc, b.restarted
			b.mu.Unlock()
			if same {
				select {
				case <-restarted:
				case <-ctx.Done():
					return r, fmt.Errorf("%s: %w (and not restarted)", b.name, err)
				}
			}
		}
	}
}

func getProcStatus(ctx context.Context, addr, after string) (procStatusReport, error) {
	var r procStatusReport
	u := "http://" + addr + "/status"
	if after != "" {
		u += "?after=" + url.QueryEscape(after) + "&wait=30s"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return r, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return r, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// waitFor waits, on the daemon's long-poll, until cond holds for its
// status.
func (b *procBridge) waitFor(what string, timeout time.Duration, cond func(procStatusReport) bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		r, err := b.next(ctx)
		if err == nil && cond(r) {
			return
		}
		if err != nil {
			logs, _ := os.ReadFile(b.log)
			b.t.Fatalf("%s: timed out waiting for %s (status %+v, %v); log:\n%s", b.name, what, r, err, tail(warnings(string(logs)), 40))
		}
	}
}

// nextOfAny returns when any of the bridges' status generations moved
// (see next), or ctx ends.
func nextOfAny(ctx context.Context, bridges ...*procBridge) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(bridges))
	var wg sync.WaitGroup
	for _, b := range bridges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.next(ctx)
			errs <- err
			cancel() // the first answer is enough
		}()
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// warnings keeps the log lines above info (the daemons log at info for
// their "http listening" line).
func warnings(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, `"level":"INFO"`) && !strings.Contains(l, `"level":"DEBUG"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// buildBinary builds the jirabridge binary once into dir.
func buildBinary(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "jirabridge")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/jirabridge/jirabridge/cmd/jirabridge")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestCrashKillsOverFileDrop runs the two bridges as separate processes
// over the file drop, set up with init, join, publish and start; people
// change issues on both sides (creates, fields, transitions, comments)
// while one bridge or the other is killed with SIGKILL at random moments,
// at least 20 times, and restarted each time. In the end the Jiras must be
// identical, no issue doubled and every comment on each side exactly once.
// JIRABRIDGE_SEED=N reruns a seed; JIRABRIDGE_CRASH_KILLS=N kills more.
func TestCrashKillsOverFileDrop(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary and runs two bridge processes for about a minute")
	}
	root := t.TempDir()
	a2b, b2a := filepath.Join(root, "alpha-to-beta"), filepath.Join(root, "beta-to-alpha")
	for _, d := range []string{a2b, b2a} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	crashKills(t, func(name string) []string {
		out, in := a2b, b2a
		if name == "beta" {
			out, in = b2a, a2b
		}
		return []string{"JIRABRIDGE_TRANSPORT=file", "JIRABRIDGE_FILEDROP_OUTGOING_DIR=" + out, "JIRABRIDGE_FILEDROP_INCOMING_DIR=" + in}
	})
}

// TestCrashKillsOverMailStack is the same over the real Postfix + Dovecot
// stack (JIRABRIDGE_TEST_MAILSTACK), each bridge reading a folder of its
// own for this run.
func TestCrashKillsOverMailStack(t *testing.T) {
	t.Parallel()
	st := mailstack.Require(t)
	if testing.Short() {
		t.Skip("builds the binary and runs two bridge processes for about a minute")
	}
	folder := fmt.Sprintf("crash%d", time.Now().UnixNano())
	users := map[string]string{"alpha": "bridge-a", "beta": "bridge-b"}
	crashKills(t, func(name string) []string {
		me, peer := users[name], users["alpha"]
		if name == "alpha" {
			peer = users["beta"]
		}
		return []string{"JIRABRIDGE_TRANSPORT=smtp+imap",
			"JIRABRIDGE_SMTP_HOST=" + st.Host, fmt.Sprintf("JIRABRIDGE_SMTP_PORT=%d", st.SMTPPort), "JIRABRIDGE_SMTP_TLS_MODE=starttls",
			"JIRABRIDGE_SMTP_CA_FILE=" + st.CAFile, "JIRABRIDGE_SMTP_USER=" + me, "JIRABRIDGE_SMTP_PASSWORD=" + st.Password(me),
			"JIRABRIDGE_SMTP_FROM=" + st.Address(me, ""), "JIRABRIDGE_SMTP_PEER_ADDRESS=" + st.Address(peer, folder),
			"JIRABRIDGE_IMAP_HOST=" + st.Host, fmt.Sprintf("JIRABRIDGE_IMAP_PORT=%d", st.IMAPSPort), "JIRABRIDGE_IMAP_TLS_MODE=tls",
			"JIRABRIDGE_IMAP_CA_FILE=" + st.CAFile, "JIRABRIDGE_IMAP_USER=" + me, "JIRABRIDGE_IMAP_PASSWORD=" + st.Password(me),
			"JIRABRIDGE_IMAP_MAILBOX=" + folder,
			"JIRABRIDGE_IMAP_PROCESSED_FOLDER=" + folder + "-done", "JIRABRIDGE_IMAP_QUARANTINE_FOLDER=" + folder + "-quarantine"}
	})
}

// crashKills runs the crash test with the transport settings transportEnv
// gives each bridge ("alpha", "beta").
func crashKills(t *testing.T, transportEnv func(name string) []string) {
	seed := testSeed()
	kills := envInt("JIRABRIDGE_CRASH_KILLS", 20)
	t.Logf("seed %d, %d kills (rerun: JIRABRIDGE_SEED=%d go test ./internal/e2e -run %s)", seed, kills, seed, t.Name())
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d", seed)
		}
	}()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	root := t.TempDir()
	bin := buildBinary(t, root)
	alpha, beta := startProcSites(t)
	var bridges []*procBridge
	for _, s := range []*procSite{alpha, beta} {
		dir := filepath.Join(root, s.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		syncFile := filepath.Join(dir, "sync.yaml")
		if err := os.WriteFile(syncFile, []byte(s.SyncYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		// A port the OS chooses at each start, and the JSON log line
		// that says which (info level: the line is an info).
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "JIRABRIDGE_HTTP_LISTEN=127.0.0.1:0",
			"JIRABRIDGE_DATA_DIR=" + filepath.Join(dir, "data"), "JIRABRIDGE_SYNC_FILE=" + syncFile,
			"JIRABRIDGE_JIRA_BASE_URL=" + s.URL, "JIRABRIDGE_JIRA_USER=" + procSyncUser, "JIRABRIDGE_JIRA_PASSWORD=" + procPassword,
			"JIRABRIDGE_LOG_LEVEL=info", "JIRABRIDGE_LOG_FORMAT=json", "JIRABRIDGE_POLL_INTERVAL=1s",
			"JIRABRIDGE_BATCH_LINGER=100ms", "JIRABRIDGE_ACK_DELAY=300ms",
		}
		env = append(env, transportEnv(s.Name)...)
		bridges = append(bridges, &procBridge{t: t, name: s.Name, bin: bin, env: env, log: filepath.Join(dir, "bridge.log")})
	}
	master, slave := bridges[0], bridges[1]
	defer func() {
		for _, b := range bridges {
			b.stop()
		}
		if t.Failed() {
			for _, b := range bridges {
				logs, _ := os.ReadFile(b.log)
				t.Logf("%s log (tail, warnings and errors):\n%s", b.name, tail(warnings(string(logs)), 60))
			}
		}
	}()
	hs := filepath.Join(root, "handshake.json")
	master.must("init", "--out", hs)
	slave.must("join", hs)
	master.start()
	slave.start()
	master.waitFor("the handshake", time.Minute, func(r procStatusReport) bool { return r.State == "STOPPED" })
	slave.waitFor("the handshake", time.Minute, func(r procStatusReport) bool { return r.State == "STOPPED" })
	master.must("publish", "--note", "crash test")
	slave.waitFor("adopting", time.Minute, func(r procStatusReport) bool { return r.AdoptedVersion == 1 })
	master.waitFor("the slave's ack", time.Minute, func(r procStatusReport) bool { return r.State == "STOPPED" })
	master.must("start")
	slave.must("start")

	// People work while a killer kills one bridge at a random moment,
	// restarts it, and does it again. The sleeps here are the chaos, not
	// waits for something: kills at random wall-clock moments land
	// anywhere, start-up and recovery included (a kill at 300 ms may come
	// before the daemon even listens). Kills driven by observed progress
	// (after N changes applied) would need the daemon's HTTP answer first,
	// so they would never hit start-up, the riskiest part; the random
	// down time lets work pile up on purpose.
	killed := make(chan int, 1)
	stopPeople := make(chan struct{})
	var krng = rand.New(rand.NewPCG(seed^0xdead, seed))
	go func() {
		defer close(killed)
		n := 0
		for n < kills {
			time.Sleep(time.Duration(300+krng.IntN(2700)) * time.Millisecond)
			b := bridges[krng.IntN(2)]
			b.kill()
			n++
			// Sometimes the bridge stays down a while, so work piles up.
			time.Sleep(time.Duration(krng.IntN(1500)) * time.Millisecond)
			b.start()
		}
		killed <- n
	}()
	sites := []*procSite{alpha, beta}
	clients := map[string][]*jira.Client{}
	for _, s := range sites {
		for _, p := range s.People {
			clients[s.Name] = append(clients[s.Name], s.client(t, p))
		}
	}
	keys := map[string][]string{}
	made := map[string]int{}
	marker, n := 0, 0
	people := func() {
		si := rng.IntN(2)
		s := sites[si]
		c := clients[s.Name][rng.IntN(len(s.People))]
		ks := keys[s.Name]
		var err error
		n++
		switch r := rng.IntN(100); {
		case len(ks) < 4 || r < 8:
			typ := map[string]string{"alpha": "Task", "beta": "Story"}[s.Name]
			var ref jira.Ref
			ref, err = c.CreateIssue(ctx, map[string]any{"project": map[string]string{"key": s.Project}, "issuetype": map[string]string{"name": typ},
				"summary": fmt.Sprintf("%s issue %d", s.Name, n), "description": "new"}, nil)
			if err == nil {
				keys[s.Name] = append(keys[s.Name], ref.Key)
			}
			made["create"]++
		case r < 35:
			err = c.EditIssue(ctx, pick(rng, ks...), map[string]any{"description": fmt.Sprintf("edit %d on %s", n, s.Name)}, nil, nil)
			made["description"]++
		case r < 50:
			id, _ := s.Sim.FieldID(map[string]string{"alpha": "Customer Ref", "beta": "Partner Reference"}[s.Name])
			err = c.EditIssue(ctx, pick(rng, ks...), map[string]any{id: fmt.Sprintf("ref %d", n)}, nil, nil)
			made["ref"]++
		case r < 62:
			id, _ := s.Sim.FieldID(map[string]string{"alpha": "Severity", "beta": "Impact"}[s.Name])
			v := pick(rng, map[string][]string{"alpha": {"S1", "S2", "S3"}, "beta": {"Critical", "Major", "Minor"}}[s.Name]...)
			err = c.EditIssue(ctx, pick(rng, ks...), map[string]any{id: map[string]string{"value": v}}, nil, nil)
			made["severity"]++
		case r < 80:
			key := pick(rng, ks...)
			var trs []jira.Transition
			if trs, err = c.Transitions(ctx, key); err == nil {
				var ok []jira.Transition
				for _, tr := range trs {
					if tr.To.Name != "In Review" {
						ok = append(ok, tr)
					}
				}
				if len(ok) > 0 {
					err = c.DoTransition(ctx, key, pick(rng, ok...).ID, nil, nil)
				}
			}
			made["transition"]++
		default:
			marker++
			_, err = c.AddComment(ctx, pick(rng, ks...), fmt.Sprintf("comment m-%d from %s", marker, s.Name), nil, nil)
			made["comment"]++
		}
		if err != nil {
			t.Errorf("seed %d: change %d on %s: %v", seed, n, s.Name, err)
		}
	}
	var nKills int
loop:
	for {
		select {
		case k := <-killed:
			nKills = k
			break loop
		case <-stopPeople:
			break loop
		case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
			// The pace of people's work, not a wait.
			people()
		}
	}
	close(stopPeople)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d kills while people made %v", nKills, made)
	if nKills < kills {
		t.Fatalf("only %d kills", nKills)
	}
	// Settle: compare the Jiras each time either bridge has done
	// something (its /status long-poll answers), until they match.
	settleStart := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var diffs []string
	for {
		var err error
		diffs, err = compareProc(ctx, alpha, beta, marker)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(diffs) == 0 {
			break
		}
		if err := nextOfAny(sctx, bridges...); err != nil {
			if len(diffs) > 30 {
				diffs = append(diffs[:30], fmt.Sprintf("... and %d more", len(diffs)-30))
			}
			t.Fatalf("seed %d: the Jiras still differ 2 minutes after the last restart (%v):\n%s", seed, err, strings.Join(diffs, "\n"))
		}
	}
	for _, b := range bridges {
		r, err := b.status()
		if err != nil {
			t.Fatal(err)
		}
		if r.State != "RUNNING" || r.Parked != 0 {
			t.Errorf("%s after the run: %+v", b.name, r)
		}
	}
	sa, _ := alpha.snapshot(ctx, false)
	t.Logf("identical %s after the last restart: %d issues, %d comments each exactly once on both sides",
		time.Since(settleStart).Round(time.Second), len(sa), marker)
}
