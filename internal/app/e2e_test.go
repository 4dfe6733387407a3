package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jira"
)

// testSites starts the demo's pair of jirasims for one test.
func testSites(t *testing.T) (alpha, beta *demoSite) {
	t.Helper()
	alpha, beta, err := startDemoSites(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(alpha.Close)
	t.Cleanup(beta.Close)
	return alpha, beta
}

// bridgeSite is the bridge for s, in its own directory below root: its
// sync file written, its environment pointing at s as the sync user,
// polling every second, with transportEnv's and then extra's variables.
func bridgeSite(t *testing.T, root string, s *demoSite, transportEnv func(name string) map[string]string, extra map[string]string) *site {
	t.Helper()
	dir := filepath.Join(root, s.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	syncFile := filepath.Join(dir, "sync.yaml")
	if err := os.WriteFile(syncFile, []byte(s.SyncYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"JIRABRIDGE_DATA_DIR":      filepath.Join(dir, "data"),
		"JIRABRIDGE_SYNC_FILE":     syncFile,
		"JIRABRIDGE_JIRA_BASE_URL": s.URL,
		"JIRABRIDGE_JIRA_USER":     demoSyncUser,
		"JIRABRIDGE_JIRA_PASSWORD": demoPassword,
		"JIRABRIDGE_POLL_INTERVAL": "1s",
	}
	for k, v := range transportEnv(s.Name) {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return &site{t: t, env: env}
}

// demoBridges sets up two bridges for the demo pair of jirasims over the
// file drop, through init, join, publish and start as docs/setup.md says,
// and returns them RUNNING.
func demoBridges(t *testing.T, alpha, beta *demoSite, transportEnv func(name string) map[string]string) (master, slave *site) {
	t.Helper()
	root := t.TempDir()
	mk := func(s *demoSite) *site {
		return bridgeSite(t, root, s, transportEnv, map[string]string{"JIRABRIDGE_LOG_LEVEL": "error"})
	}
	master, slave = mk(alpha), mk(beta)
	hs := filepath.Join(root, "handshake.json")
	master.must("check")
	slave.must("check")
	master.must("init", "--out", hs)
	slave.must("join", hs)
	pump(slave, master, slave, master)
	master.must("publish")
	pump(master, slave, master)
	if st := slave.status(); st.State != "STOPPED" || st.AdoptedVersion != 1 {
		t.Fatalf("slave after publish: %+v", st)
	}
	if st := master.status(); st.State != "STOPPED" {
		t.Fatalf("master after the slave adopted: %+v", st)
	}
	master.must("start")
	slave.must("start")
	return master, slave
}

func fileDropEnv(root string) func(string) map[string]string {
	a2b, b2a := filepath.Join(root, "alpha-to-beta"), filepath.Join(root, "beta-to-alpha")
	os.MkdirAll(a2b, 0o700)
	os.MkdirAll(b2a, 0o700)
	return func(name string) map[string]string {
		out, in := a2b, b2a
		if name == "beta" {
			out, in = b2a, a2b
		}
		return map[string]string{"JIRABRIDGE_TRANSPORT": "file",
			"JIRABRIDGE_FILEDROP_OUTGOING_DIR": out, "JIRABRIDGE_FILEDROP_INCOMING_DIR": in}
	}
}

// TestChangeCrossesBothWaysOverFileDrop: after the documented set-up, an
// issue created on alpha appears on beta, and an edit on beta comes back.
func TestChangeCrossesBothWaysOverFileDrop(t *testing.T) {
	t.Parallel()
	alpha, beta := testSites(t)
	master, slave := demoBridges(t, alpha, beta, fileDropEnv(t.TempDir()))
	crossBothWays(t, alpha, beta, 5, func() { pump(master, slave) }, func() { pump(slave, master) })
}

// crossBothWays creates an issue on alpha, carries it to beta, edits it on
// beta and carries the edit back; toBeta and toAlpha move the messages.
func crossBothWays(t *testing.T, alpha, beta *demoSite, rounds int, toBeta, toAlpha func()) {
	t.Helper()
	ctx := context.Background()
	alice, err := alpha.Client("alice")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := alice.CreateIssue(ctx, map[string]any{
		"project": map[string]any{"key": "ALPHA"}, "issuetype": map[string]any{"name": "Bug"},
		"summary": "Printer on fire", "description": "smoke everywhere",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]demoIssue
	for range rounds {
		toBeta()
		if got, err = beta.snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := got["Printer on fire"]; ok {
			break
		}
	}
	if got["Printer on fire"].Description != "smoke everywhere" {
		t.Fatalf("beta after the create: %+v", got)
	}
	// A person edits beta's copy at once, before beta's detection may have
	// looked at the project at all: the edit must still come back (the
	// first scan reads a copy the bridge made like any other issue).
	// An edit on beta by a person there comes back to alpha.
	var betaKey string
	c, _ := jira.New(jira.Options{BaseURL: beta.URL, Username: "admin", Password: "admin"})
	if err := c.SearchAll(ctx, "project = BETA", []string{"summary"}, nil, func(is jira.Issue) error { betaKey = is.Key; return nil }); err != nil {
		t.Fatal(err)
	}
	bj, _ := beta.Client("bjones")
	if err := bj.EditIssue(ctx, betaKey, map[string]any{"description": "fire is out"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for range rounds {
		toAlpha()
		if got, err = alpha.snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		if got["Printer on fire"].Description == "fire is out" {
			break
		}
	}
	if got["Printer on fire"].Description != "fire is out" {
		t.Fatalf("alpha after beta's edit (%s -> %s): %+v", betaKey, ref.Key, got)
	}
	diffs, n, err := compareSites(ctx, alpha, beta)
	if err != nil || len(diffs) > 0 || n != 1 {
		t.Errorf("compare: %d issues, %v, %q", n, err, diffs)
	}
}

// TestWrongPasswordPausesAfterOneCall: with the sync RUNNING and a wrong
// password, the bridge makes one Jira call, pauses (PAUSED, authentication)
// and makes no further call until the operator starts it again.
func TestWrongPasswordPausesAfterOneCall(t *testing.T) {
	t.Parallel()
	alpha, beta := testSites(t)
	master, _ := demoBridges(t, alpha, beta, fileDropEnv(t.TempDir()))
	master.env["JIRABRIDGE_JIRA_PASSWORD"] = "wrong"
	alpha.Sim.ResetCounters()
	pump(master)
	pump(master)
	st := master.status()
	if st.State != "PAUSED" || st.Reason != "authentication" {
		t.Fatalf("after a wrong password: %s (%s), want PAUSED (authentication)", st.State, st.Reason)
	}
	total := 0
	for _, n := range alpha.Sim.Counters() {
		total += n
	}
	if total != 1 {
		t.Errorf("a wrong password made %d Jira calls, want 1: %v", total, alpha.Sim.Counters())
	}
	// Fixed: check, start, and it runs again.
	master.env["JIRABRIDGE_JIRA_PASSWORD"] = demoPassword
	master.must("check")
	master.must("start")
	pump(master)
	if st := master.status(); st.State != "RUNNING" {
		t.Errorf("after start with the right password: %s (%s)", st.State, st.Reason)
	}
}
