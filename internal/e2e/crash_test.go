package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
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

// start starts the daemon (jirabridge run).
func (b *procBridge) start() {
	b.t.Helper()
	f, err := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(b.bin, "run")
	cmd.Env, cmd.Stdout, cmd.Stderr = b.env, f, f
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("%s: start run: %v", b.name, err)
	}
	b.mu.Lock()
	b.cmd = cmd
	b.mu.Unlock()
}

// kill sends SIGKILL to the daemon and reaps it.
func (b *procBridge) kill() {
	b.mu.Lock()
	cmd := b.cmd
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
}

// stop ends the daemon politely (SIGTERM).
func (b *procBridge) stop() {
	b.mu.Lock()
	cmd := b.cmd
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
}

type procStatusReport struct {
	State          string `json:"state"`
	Reason         string `json:"reason"`
	AdoptedVersion int    `json:"adopted_version"`
	Pending        int    `json:"pending_changes"`
	Parked         int    `json:"parked_changes"`
}

func (b *procBridge) status() (procStatusReport, error) {
	var r procStatusReport
	out, err := b.exec("status", "--json")
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(out), &r)
}

// waitFor polls the bridge's status until cond holds.
func (b *procBridge) waitFor(what string, timeout time.Duration, cond func(procStatusReport) bool) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := b.status()
		if err == nil && cond(r) {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(b.log)
			b.t.Fatalf("%s: timed out waiting for %s (status %+v, %v); log:\n%s", b.name, what, r, err, tail(string(logs), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
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
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		httpAddr := ln.Addr().String()
		ln.Close()
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "JIRABRIDGE_HTTP_LISTEN=" + httpAddr,
			"JIRABRIDGE_DATA_DIR=" + filepath.Join(dir, "data"), "JIRABRIDGE_SYNC_FILE=" + syncFile,
			"JIRABRIDGE_JIRA_BASE_URL=" + s.URL, "JIRABRIDGE_JIRA_USER=" + procSyncUser, "JIRABRIDGE_JIRA_PASSWORD=" + procPassword,
			"JIRABRIDGE_LOG_LEVEL=warn", "JIRABRIDGE_POLL_INTERVAL=1s",
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
				t.Logf("%s log (tail):\n%s", b.name, tail(string(logs), 60))
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
	// restarts it, and does it again.
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
	settleStart := time.Now()
	deadline := settleStart.Add(2 * time.Minute)
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
		if time.Now().After(deadline) {
			if len(diffs) > 30 {
				diffs = append(diffs[:30], fmt.Sprintf("... and %d more", len(diffs)-30))
			}
			t.Fatalf("seed %d: the Jiras still differ 2 minutes after the last restart:\n%s", seed, strings.Join(diffs, "\n"))
		}
		time.Sleep(time.Second)
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
