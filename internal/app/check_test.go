package app

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func TestCheckPrintsExactlyTheMissingPermissions(t *testing.T) {
	sim := jirasim.New(jirasim.Options{})
	if err := sim.CreateUser(jirasim.UserSpec{Name: "bridge", Password: "pw", DisplayName: "Bridge"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.CreateProject(jirasim.ProjectSpec{Key: "P", Name: "P", Roles: map[string][]string{"Administrators": {"bridge"}}}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	syncFile := filepath.Join(t.TempDir(), "sync.yaml")
	if err := os.WriteFile(syncFile, []byte(`name: partner
project: P
issue_types: {Bug: bug}
statuses: {To Do: todo}
fields:
  - {local: summary, alias: summary}
comments: {enabled: true}
watchers: {enabled: true}
links: {enabled: true}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"JIRABRIDGE_JIRA_BASE_URL": hs.URL,
		"JIRABRIDGE_JIRA_USER":     "bridge",
		"JIRABRIDGE_JIRA_PASSWORD": "pw",
		"JIRABRIDGE_SYNC_FILE":     syncFile,
	}
	run := func() (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main([]string{"check"}, Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }})
		return code, out.String(), errOut.String()
	}

	code, out, errOut := run()
	if code != ExitOK || strings.Contains(out, "MISSING") {
		t.Fatalf("all granted: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, p := range []string{"BROWSE_PROJECTS", "ADD_COMMENTS", "MANAGE_WATCHERS", "LINK_ISSUES"} {
		if !strings.Contains(out, p) {
			t.Errorf("table lacks %s:\n%s", p, out)
		}
	}
	if strings.Contains(out, "CREATE_ATTACHMENTS") {
		t.Errorf("attachments are off but checked:\n%s", out)
	}

	for _, p := range []string{"MANAGE_WATCHERS", "DELETE_OWN_COMMENTS"} {
		if err := sim.SetPermission("P", p); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = run()
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitFailure, out, errOut)
	}
	var missing []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "MISSING" {
			missing = append(missing, f[0]+"/"+f[1])
		}
	}
	if got, want := strings.Join(missing, ","), "comments/DELETE_OWN_COMMENTS,watchers/MANAGE_WATCHERS"; got != want {
		t.Errorf("missing %s, want %s\n%s", got, want, out)
	}
}

func newSim(t *testing.T) (*jirasim.Server, string) {
	t.Helper()
	sim := jirasim.New(jirasim.Options{})
	if err := sim.CreateUser(jirasim.UserSpec{Name: "sync-a", Password: "right", DisplayName: "Sync A"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.CreateProject(jirasim.ProjectSpec{Key: "SUP", Name: "Support", Roles: map[string][]string{"Administrators": {"sync-a"}}}); err != nil {
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
	if err := sim.SetPermission("SUP", "ADD_COMMENTS", "role:Administrators"); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := s.run("check"); code != ExitOK || !strings.Contains(out, "All permissions present") {
		t.Errorf("check with all permissions: exit %d\n%s\n%s", code, out, errs)
	}
}

// A sync user without EDIT_ALL_COMMENTS and DELETE_ALL_COMMENTS (no project
// administrator) can sync comments; check shows exactly the write-back of
// a partner's edits and deletions to the originals as missing, with what
// to do, and says that comments still sync.
func TestCheckShowsMissingWriteBackToOriginals(t *testing.T) {
	t.Parallel()
	sim, url := newSim(t)
	for _, p := range []string{"EDIT_ALL_COMMENTS", "DELETE_ALL_COMMENTS"} {
		if err := sim.SetPermission("SUP", p); err != nil {
			t.Fatal(err)
		}
	}
	syncFile := filepath.Join(t.TempDir(), "sync.yaml")
	if err := os.WriteFile(syncFile, []byte(`name: partner
project: SUP
issue_types: {Bug: bug}
statuses: {To Do: todo}
fields:
  - {local: summary, alias: summary}
comments: {enabled: true}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"JIRABRIDGE_JIRA_BASE_URL": url, "JIRABRIDGE_JIRA_USER": "sync-a", "JIRABRIDGE_JIRA_PASSWORD": "right",
		"JIRABRIDGE_SYNC_FILE": syncFile}
	var out, errOut bytes.Buffer
	code := Main([]string{"check"}, Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }})
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitFailure, out.String(), errOut.String())
	}
	var missing []string
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "MISSING" {
			missing = append(missing, f[0]+"/"+f[1])
			if !strings.Contains(line, "grant "+f[1]+` to the sync user "sync-a"`) {
				t.Errorf("no what-to-do on %q", line)
			}
		}
		if len(f) > 2 && f[0] == "comments" && f[2] != "present" {
			t.Errorf("comments themselves shown missing: %q", line)
		}
	}
	if got, want := strings.Join(missing, ","), "comment-edits-to-originals/EDIT_ALL_COMMENTS,comment-deletes-to-originals/DELETE_ALL_COMMENTS"; got != want {
		t.Errorf("missing %s, want %s\n%s", got, want, out.String())
	}
	if s := out.String(); !strings.Contains(s, "2 permission(s) missing") || !strings.Contains(s, "Everything else still syncs") ||
		strings.Contains(s, "will not start") {
		t.Errorf("summary:\n%s", s)
	}
}
