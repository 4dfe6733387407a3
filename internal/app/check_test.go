package app

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func newSim(t *testing.T) (*jirasim.Server, string) {
	t.Helper()
	sim := jirasim.New(jirasim.Options{})
	if err := sim.CreateUser(jirasim.UserSpec{Name: "sync-a", Password: "right", DisplayName: "Sync A"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.CreateProject(jirasim.ProjectSpec{Key: "SUP", Name: "Support", Roles: map[string][]string{"Developers": {"sync-a"}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func TestCheck(t *testing.T) {
	t.Parallel()
	sim, url := newSim(t)
	s := &site{t: t, env: map[string]string{
		"JIRABRIDGE_TRANSPORT": "file", "JIRABRIDGE_JIRA_BASE_URL": url, "JIRABRIDGE_JIRA_USER": "sync-a",
		"JIRABRIDGE_JIRA_PASSWORD": "wrong", "JIRABRIDGE_SYNC_FILE": abs(t, "testdata/setup-master.yaml"),
		"JIRABRIDGE_DATA_DIR": t.TempDir(), "JIRABRIDGE_FILEDROP_OUTGOING_DIR": t.TempDir(), "JIRABRIDGE_FILEDROP_INCOMING_DIR": t.TempDir(),
	}}

	// A wrong password: one call, then stop.
	sim.ResetCounters()
	code, _, errs := s.run("check")
	if code != ExitFailure || !strings.Contains(errs, "HTTP 401") || !strings.Contains(errs, "one call") {
		t.Errorf("wrong password: exit %d, %s", code, errs)
	}
	total := 0
	for _, n := range sim.Counters() {
		total += n
	}
	if total != 1 {
		t.Errorf("wrong password made %d Jira calls, want exactly 1: %v", total, sim.Counters())
	}

	// The right password, one permission taken away.
	s.env["JIRABRIDGE_JIRA_PASSWORD"] = "right"
	if err := sim.SetPermission("SUP", "ADD_COMMENTS"); err != nil {
		t.Fatal(err)
	}
	code, out, errs := s.run("check")
	if code != ExitFailure || !strings.Contains(out, "Credentials OK: sync-a") {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"ADD_COMMENTS", "MISSING", "BROWSE_PROJECTS", "present", "1 permission(s) missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if err := sim.SetPermission("SUP", "ADD_COMMENTS", "role:Developers"); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := s.run("check"); code != ExitOK || !strings.Contains(out, "All permissions present") {
		t.Errorf("check with all permissions: exit %d\n%s\n%s", code, out, errs)
	}
}
