package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// site is one bridge as an operator runs it: its own data directory and
// environment variables, commands through Main.
type site struct {
	t   *testing.T
	env map[string]string
}

func (s *site) run(args ...string) (int, string, string) {
	s.t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, Env{
		Stdout: &out, Stderr: &errb, Context: context.Background(),
		Getenv: func(k string) string { return s.env[k] },
	})
	return code, out.String(), errb.String()
}

// must runs a command that has to succeed.
func (s *site) must(args ...string) string {
	s.t.Helper()
	code, out, errs := s.run(args...)
	if code != 0 {
		s.t.Fatalf("%s %v: exit %d\nstdout:\n%s\nstderr:\n%s", s.env["JIRABRIDGE_JIRA_USER"], args, code, out, errs)
	}
	return out
}

func (s *site) status() statusReport {
	s.t.Helper()
	var r statusReport
	if err := json.Unmarshal([]byte(s.must("status", "--json")), &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// pump runs one `run --once` on the given sites in turn.
func pump(sites ...*site) {
	for _, s := range sites {
		s.t.Helper()
		s.must("run", "--once", "--idle", "300ms")
	}
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fileSites builds two sites that exchange files through two directories,
// as docs/setup.md describes for the file transport.
func fileSites(t *testing.T) (master, slave *site, root string) {
	root = t.TempDir()
	toSlave, toMaster := filepath.Join(root, "exchange", "to-slave"), filepath.Join(root, "exchange", "to-master")
	for _, d := range []string{toSlave, toMaster} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	base := func(name, user, syncFile, out, in string) *site {
		return &site{t: t, env: map[string]string{
			"JIRABRIDGE_DATA_DIR":              filepath.Join(root, name, "data"),
			"JIRABRIDGE_TRANSPORT":             "file",
			"JIRABRIDGE_SYNC_FILE":             abs(t, syncFile),
			"JIRABRIDGE_JIRA_BASE_URL":         "http://127.0.0.1:9/",
			"JIRABRIDGE_JIRA_USER":             user,
			"JIRABRIDGE_JIRA_PASSWORD":         "secret-" + user,
			"JIRABRIDGE_FILEDROP_OUTGOING_DIR": out,
			"JIRABRIDGE_FILEDROP_INCOMING_DIR": in,
			"JIRABRIDGE_LOG_LEVEL":             "warn",
		}}
	}
	master = base("master", "sync-a", "testdata/setup-master.yaml", toSlave, toMaster)
	slave = base("slave", "sync-b", "testdata/setup-slave-partial.yaml", toMaster, toSlave)
	return master, slave, root
}

// TestSetupOverFileDrop drives the set-up exactly as docs/setup.md tells
// two operators: init, hand over the file, join, run, publish, map the
// aliases, start; and the refusals on the way.
func TestSetupOverFileDrop(t *testing.T) {
	t.Parallel()
	master, slave, root := fileSites(t)

	hsMaster := filepath.Join(root, "master", "handshake.json")
	if err := os.MkdirAll(filepath.Dir(hsMaster), 0o700); err != nil {
		t.Fatal(err)
	}
	master.must("init", "--out", hsMaster)
	fi, err := os.Stat(hsMaster)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("handshake file mode %v, want 0600", fi.Mode().Perm())
	}
	db, err := os.Stat(filepath.Join(root, "master", "data", "jirabridge.db"))
	if err != nil || db.Mode().Perm() != 0o600 {
		t.Errorf("store file: %v %v, want mode 0600", err, db)
	}
	if st := master.status(); st.State != "CREATED" || st.Role != "master" {
		t.Fatalf("master after init: %+v", st)
	}
	// A second init of the same sync is refused.
	if code, _, errs := master.run("init", "--out", hsMaster+".2"); code != ExitUsage || !strings.Contains(errs, "already exists") {
		t.Errorf("second init: exit %d, %s", code, errs)
	}

	// The file is carried over, as a file.
	hsSlave := filepath.Join(root, "slave", "handshake.json")
	b, err := os.ReadFile(hsMaster)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(hsSlave), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hsSlave, b, 0o600); err != nil {
		t.Fatal(err)
	}
	slave.must("join", hsSlave)
	if st := slave.status(); st.State != "HANDSHAKE" || st.Role != "slave" {
		t.Fatalf("slave after join: %+v", st)
	}
	if code, _, errs := slave.run("join", hsSlave); code != ExitUsage || !strings.Contains(errs, "one join only") {
		t.Errorf("second join on the slave: exit %d, %s", code, errs)
	}

	pump(slave, master) // handshake -> master accepts, pings
	if st := master.status(); st.State != "HANDSHAKE" || st.PeerNode == "" {
		t.Fatalf("master after the handshake: %+v", st)
	}
	pump(slave, master) // ping -> slave STOPPED, pong -> master STOPPED
	if st := slave.status(); st.State != "STOPPED" {
		t.Fatalf("slave after ping: %+v", st)
	}
	if st := master.status(); st.State != "STOPPED" {
		t.Fatalf("master after pong: %+v", st)
	}

	// Another bridge tries the same file: refused and reported.
	intruder := &site{t: t, env: map[string]string{}}
	for k, v := range slave.env {
		intruder.env[k] = v
	}
	intruder.env["JIRABRIDGE_DATA_DIR"] = filepath.Join(root, "intruder", "data")
	intruder.must("join", hsSlave)
	pump(intruder, master)
	if st := master.status(); st.Quarantined != 1 || st.State != "STOPPED" {
		t.Errorf("master after a second join: %+v, want 1 quarantined, STOPPED", st)
	}

	// Start before publishing is refused with what to do.
	if code, _, errs := master.run("start"); code != ExitUsage || !strings.Contains(errs, "jirabridge publish") {
		t.Errorf("start before publish: exit %d, %s", code, errs)
	}
	master.must("publish", "--note", "first mappings")
	if st := master.status(); st.State != "WAITING FOR SLAVE" {
		t.Fatalf("master after publish: %+v", st)
	}
	pump(master, slave)
	st := slave.status()
	want := []string{"issue type task", "status in-progress", "field priority value p3"}
	if st.State != "UPDATE REQUIRED" || !slices.Equal(st.Missing, want) {
		t.Fatalf("slave with a partial definition: state %s missing %q, want UPDATE REQUIRED %q", st.State, st.Missing, want)
	}
	out := slave.must("status")
	for _, w := range want {
		if !strings.Contains(out, "    - "+w+"\n") {
			t.Errorf("status does not list %q:\n%s", w, out)
		}
	}
	if code, _, errs := slave.run("start"); code != ExitUsage || !strings.Contains(errs, "issue type task") {
		t.Errorf("start in UPDATE REQUIRED: exit %d, %s", code, errs)
	}

	// The slave maps everything and starts: it adopts and acks.
	slave.env["JIRABRIDGE_SYNC_FILE"] = abs(t, "testdata/setup-slave.yaml")
	slave.must("start")
	if st := slave.status(); st.State != "RUNNING" || st.AdoptedVersion != 1 {
		t.Fatalf("slave after start: %+v", st)
	}
	pump(slave, master)
	if st := master.status(); st.State != "STOPPED" || st.AdoptedVersion != 1 {
		t.Fatalf("master after the slave's ack: %+v", st)
	}

	// The sync user and project are fixed.
	master.env["JIRABRIDGE_JIRA_USER"] = "someone-else"
	if code, _, errs := master.run("start"); code != ExitUsage || !strings.Contains(errs, "fixed when the sync is created") {
		t.Errorf("start with another sync user: exit %d, %s", code, errs)
	}
	master.env["JIRABRIDGE_JIRA_USER"] = "sync-a"
	other := filepath.Join(root, "master", "other-project.yaml")
	b, err = os.ReadFile(master.env["JIRABRIDGE_SYNC_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(strings.Replace(string(b), "project: SUP", "project: OTHER", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	orig := master.env["JIRABRIDGE_SYNC_FILE"]
	master.env["JIRABRIDGE_SYNC_FILE"] = other
	if code, _, errs := master.run("start"); code != ExitUsage || !strings.Contains(errs, `was created for project "SUP"`) {
		t.Errorf("start with another project: exit %d, %s", code, errs)
	}
	master.env["JIRABRIDGE_SYNC_FILE"] = orig
	master.must("start")
	if st := master.status(); st.State != "RUNNING" {
		t.Fatalf("master after start: %+v", st)
	}
	master.must("stop")
	if st := master.status(); st.State != "STOPPED" {
		t.Fatalf("master after stop: %+v", st)
	}
}

// TestLostJoinIsSentAgain: the master cannot ask for a Handshake message it
// never saw; the slave sends it again after the resend timeout.
func TestLostJoinIsSentAgain(t *testing.T) {
	t.Parallel()
	master, slave, root := fileSites(t)
	hs := filepath.Join(root, "hs.json")
	master.must("init", "--out", hs)
	slave.must("join", hs)
	pump(slave)
	// The mail is lost.
	in := master.env["JIRABRIDGE_FILEDROP_INCOMING_DIR"]
	files, _ := filepath.Glob(filepath.Join(in, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("exchange holds %d files, want the handshake", len(files))
	}
	os.Remove(files[0])

	s, code := loadSetup(Env{Getenv: func(k string) string { return slave.env[k] }, Stderr: os.Stderr}, "test")
	if s == nil {
		t.Fatalf("setup: %d", code)
	}
	defer s.Close()
	d, err := newDaemon(context.Background(), s, daemonOptions{Once: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sy, _ := s.thisSync(context.Background())
	if err := d.resendJoin(context.Background(), sy); err != nil {
		t.Fatal(err)
	}
	if files, _ = filepath.Glob(filepath.Join(in, "*.eml")); len(files) != 0 {
		t.Fatalf("resent before the timeout")
	}
	d.now = func() time.Time { return time.Now().Add(time.Hour) }
	if err := d.resendJoin(context.Background(), sy); err != nil {
		t.Fatal(err)
	}
	if files, _ = filepath.Glob(filepath.Join(in, "*.eml")); len(files) != 1 {
		t.Fatalf("after the timeout the exchange holds %d files, want the handshake again", len(files))
	}
	pump(master, slave, master)
	if st := master.status(); st.State != "STOPPED" {
		t.Errorf("master after the resent handshake: %+v", st)
	}
}
