package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
)

// The demo's pair of Jira sites: two jirasims whose projects differ in
// issue type names, field names, select values, statuses (and workflow
// length) and usernames, so the aliases do real work. The e2e tests use the
// same pair.

const (
	demoSyncUser = "jirabridge"
	demoPassword = "demo"
)

// demoSite is one jirasim serving on a loopback port.
type demoSite struct {
	Name     string
	Project  string
	Sim      *jirasim.Server
	URL      string
	SyncYAML string
	People   []string
	srv      *http.Server
}

func (s *demoSite) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// Client returns a Jira client acting as user.
func (s *demoSite) Client(user string) (*jira.Client, error) {
	return jira.New(jira.Options{BaseURL: s.URL, Username: user, Password: demoPassword, Timeout: 20 * time.Second})
}

var demoPeople = [][2]string{{"Alice Smith", "alice@corp.example"}, {"Bob Jones", "bob@corp.example"}, {"Carol White", "carol@corp.example"}}

type demoSpec struct {
	name, project string
	users         []string
	fields        []jirasim.FieldSpec
	workflow      *jirasim.Workflow
	yaml          string
}

var demoSpecs = []demoSpec{{
	name: "alpha", project: "ALPHA", users: []string{"alice", "bob", "carol"},
	fields: []jirasim.FieldSpec{
		{Name: "Customer Ref", Type: "textfield"},
		{Name: "Severity", Type: "select", Options: []string{"S1", "S2", "S3"}},
	},
	yaml: `name: partner
project: ALPHA
issue_types:
  Bug: bug
  Task: task
statuses:
  To Do: todo
  In Progress: doing
  Done: done
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - {local: priority, alias: priority, kind: priority}
  - {local: labels, alias: labels, kind: labels}
  - {local: assignee, alias: assignee, kind: user}
  - {local: Customer Ref, alias: ref}
  - {local: Severity, alias: severity, values: {S1: sev1, S2: sev2, S3: sev3}}
users:
  mode: by_email
  fallback: drop
comments:
  enabled: true
`,
}, {
	name: "beta", project: "BETA", users: []string{"asmith", "bjones", "cwhite"},
	fields: []jirasim.FieldSpec{
		{Name: "Partner Reference", Type: "textfield"},
		{Name: "Impact", Type: "select", Options: []string{"Critical", "Major", "Minor"}},
	},
	workflow: &jirasim.Workflow{Name: "beta flow", Initial: "Open", Transitions: []jirasim.Transition{
		{ID: "11", Name: "Start", From: []string{"Open"}, To: "In Progress"},
		{ID: "21", Name: "Send to review", From: []string{"In Progress"}, To: "In Review"},
		{ID: "31", Name: "Approve", From: []string{"In Review"}, To: "Closed"},
		{ID: "41", Name: "Rework", From: []string{"In Review"}, To: "In Progress"},
		{ID: "51", Name: "Reopen", From: []string{"Closed"}, To: "Open"},
		{ID: "61", Name: "Stop", From: []string{"In Progress"}, To: "Open"},
	}},
	yaml: `name: partner
project: BETA
issue_types:
  Bug: bug
  Story: task
statuses:
  Open: todo
  In Progress: doing
  Closed: done
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - {local: priority, alias: priority, kind: priority}
  - {local: labels, alias: labels, kind: labels}
  - {local: assignee, alias: assignee, kind: user}
  - {local: Partner Reference, alias: ref}
  - {local: Impact, alias: severity, values: {Critical: sev1, Major: sev2, Minor: sev3}}
users:
  mode: by_email
  fallback: drop
comments:
  enabled: true
`,
}}

// startDemoSites starts both jirasims on loopback ports.
func startDemoSites(now func() time.Time) (alpha, beta *demoSite, err error) {
	var sites []*demoSite
	for _, sp := range demoSpecs {
		s, err := startDemoSite(sp, now)
		if err != nil {
			for _, s := range sites {
				s.Close()
			}
			return nil, nil, err
		}
		sites = append(sites, s)
	}
	return sites[0], sites[1], nil
}

func startDemoSite(sp demoSpec, now func() time.Time) (*demoSite, error) {
	sim := jirasim.New(jirasim.Options{Now: now, SyncWebhooks: true, MaxLoginFailures: -1})
	seed := jirasim.Seed{Fields: sp.fields}
	seed.Users = append(seed.Users, jirasim.UserSpec{Name: demoSyncUser, Password: demoPassword,
		DisplayName: "jirabridge sync", Email: "sync-" + sp.name + "@bridge.example"})
	for i, u := range sp.users {
		seed.Users = append(seed.Users, jirasim.UserSpec{Name: u, Password: demoPassword, DisplayName: demoPeople[i][0], Email: demoPeople[i][1]})
	}
	proj := jirasim.ProjectSpec{Key: sp.project, Name: sp.name + " project",
		Roles: map[string][]string{"Administrators": {demoSyncUser}, "Developers": sp.users}}
	if sp.workflow != nil {
		seed.Workflows = []jirasim.Workflow{*sp.workflow}
		proj.Workflow = sp.workflow.Name
	}
	seed.Projects = []jirasim.ProjectSpec{proj}
	if err := sim.ApplySeed(seed); err != nil {
		return nil, fmt.Errorf("seed jirasim %s: %w", sp.name, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for jirasim %s: %w", sp.name, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &demoSite{Name: sp.name, Project: sp.project, Sim: sim, URL: "http://" + ln.Addr().String(),
		SyncYAML: sp.yaml, People: sp.users, srv: srv}, nil
}

// demoIssue is what the comparison looks at: the synced content of an
// issue in alias terms.
type demoIssue struct {
	Summary, Description, Status, Severity, Ref string
	Comments                                    int
}

// statusAlias maps each site's status names to the shared alias.
var statusAlias = map[string]string{
	"To Do": "todo", "In Progress": "doing", "Done": "done",
	"Open": "todo", "Closed": "done",
}

var severityAlias = map[string]string{"S1": "sev1", "S2": "sev2", "S3": "sev3", "Critical": "sev1", "Major": "sev2", "Minor": "sev3"}

// snapshot lists the site's issues by summary.
func (s *demoSite) snapshot(ctx context.Context) (map[string]demoIssue, error) {
	// jirasim's built-in administrator sees every issue.
	c, err := jira.New(jira.Options{BaseURL: s.URL, Username: "admin", Password: "admin", Timeout: 20 * time.Second})
	if err != nil {
		return nil, err
	}
	sevID, _ := s.Sim.FieldID(map[string]string{"alpha": "Severity", "beta": "Impact"}[s.Name])
	refID, _ := s.Sim.FieldID(map[string]string{"alpha": "Customer Ref", "beta": "Partner Reference"}[s.Name])
	out := map[string]demoIssue{}
	err = c.SearchAll(ctx, "project = "+s.Project+" ORDER BY key", []string{"summary", "description", "status", "comment", sevID, refID}, nil, func(is jira.Issue) error {
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
		var cm struct {
			Comments []json.RawMessage `json:"comments"`
		}
		is.Field("comment", &cm)
		d.Comments = len(cm.Comments)
		if _, dup := out[d.Summary]; dup {
			return fmt.Errorf("%s: two issues with summary %q", s.Name, d.Summary)
		}
		out[d.Summary] = d
		return nil
	})
	return out, err
}

// compareSites compares the two Jiras; it returns the differences, one a
// line.
func compareSites(ctx context.Context, a, b *demoSite) ([]string, int, error) {
	sa, err := a.snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	sb, err := b.snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	return diffSnapshots(a.Name, sa, b.Name, sb), len(sa), nil
}

// diffSnapshots lists, one a line and sorted, the issues (by summary) that
// only one Jira has or that differ between the two snapshots.
func diffSnapshots[T comparable](aName string, sa map[string]T, bName string, sb map[string]T) []string {
	var diffs []string
	for k, x := range sa {
		y, ok := sb[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%q only on %s", k, aName))
		case x != y:
			diffs = append(diffs, fmt.Sprintf("%q differs: %s %+v, %s %+v", k, aName, x, bName, y))
		}
	}
	for k := range sb {
		if _, ok := sa[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q only on %s", k, bName))
		}
	}
	sort.Strings(diffs)
	return diffs
}
