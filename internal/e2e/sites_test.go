package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
)

// The process tests' pair of Jiras: two jirasims on real time (the bridges
// run as processes on the wall clock) whose projects differ in names,
// select values and workflows, with comment sync on. Same shapes as the
// demo's pair in internal/app.

const (
	procSyncUser = "jirabridge"
	procPassword = "pw"
)

type procSite struct {
	Name, Project, URL, SyncYAML string
	People                       []string
	Sim                          *jirasim.Server
	admin                        *jira.Client
}

func (s *procSite) client(t testing.TB, user string) *jira.Client {
	t.Helper()
	c, err := jira.New(jira.Options{BaseURL: s.URL, Username: user, Password: procPassword, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var procSpecs = []struct {
	name, project string
	users         []string
	fields        []jirasim.FieldSpec
	workflow      *jirasim.Workflow
	yaml          string
}{{
	name: "alpha", project: "ALPHA", users: []string{"alice", "bob"},
	fields: []jirasim.FieldSpec{{Name: "Customer Ref", Type: "textfield"}, {Name: "Severity", Type: "select", Options: []string{"S1", "S2", "S3"}}},
	yaml: `name: partner
project: ALPHA
issue_types: {Bug: bug, Task: task}
statuses: {To Do: todo, In Progress: doing, Done: done}
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - {local: Customer Ref, alias: ref}
  - {local: Severity, alias: severity, values: {S1: sev1, S2: sev2, S3: sev3}}
users: {mode: by_email, fallback: drop}
comments: {enabled: true}
`,
}, {
	name: "beta", project: "BETA", users: []string{"asmith", "bjones"},
	fields: []jirasim.FieldSpec{{Name: "Partner Reference", Type: "textfield"}, {Name: "Impact", Type: "select", Options: []string{"Critical", "Major", "Minor"}}},
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
issue_types: {Bug: bug, Story: task}
statuses: {Open: todo, In Progress: doing, Closed: done}
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - {local: Partner Reference, alias: ref}
  - {local: Impact, alias: severity, values: {Critical: sev1, Major: sev2, Minor: sev3}}
users: {mode: by_email, fallback: drop}
comments: {enabled: true}
`,
}}

var procPeople = [][2]string{{"Alice Smith", "alice@corp.example"}, {"Bob Jones", "bob@corp.example"}}

// startProcSites starts both jirasims on loopback ports.
func startProcSites(t testing.TB) (alpha, beta *procSite) {
	t.Helper()
	var out []*procSite
	for _, sp := range procSpecs {
		sim := jirasim.New(jirasim.Options{SyncWebhooks: true, MaxLoginFailures: -1})
		seed := jirasim.Seed{Fields: sp.fields}
		seed.Users = append(seed.Users, jirasim.UserSpec{Name: procSyncUser, Password: procPassword, DisplayName: "jirabridge sync", Email: "sync-" + sp.name + "@bridge.example"})
		for i, u := range sp.users {
			seed.Users = append(seed.Users, jirasim.UserSpec{Name: u, Password: procPassword, DisplayName: procPeople[i][0], Email: procPeople[i][1]})
		}
		proj := jirasim.ProjectSpec{Key: sp.project, Name: sp.name + " project",
			Roles: map[string][]string{"Administrators": {procSyncUser}, "Developers": sp.users}}
		if sp.workflow != nil {
			seed.Workflows = []jirasim.Workflow{*sp.workflow}
			proj.Workflow = sp.workflow.Name
		}
		seed.Projects = []jirasim.ProjectSpec{proj}
		if err := sim.ApplySeed(seed); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		s := &procSite{Name: sp.name, Project: sp.project, URL: "http://" + ln.Addr().String(), SyncYAML: sp.yaml, People: sp.users, Sim: sim}
		s.admin, err = jira.New(jira.Options{BaseURL: s.URL, Username: "admin", Password: "admin", Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out[0], out[1]
}

// procIssue is an issue in alias terms, with its comment markers.
type procIssue struct {
	Key                                string
	Description, Status, Severity, Ref string
	Markers                            map[string]int
}

var procStatus = map[string]string{"To Do": "todo", "In Progress": "doing", "Done": "done", "Open": "todo", "Closed": "done", "In Review": "review"}
var procSeverity = map[string]string{"S1": "sev1", "S2": "sev2", "S3": "sev3", "Critical": "sev1", "Major": "sev2", "Minor": "sev3"}

// snapshot lists the site's issues by summary; a summary seen twice (a
// doubled issue) is an error.
func (s *procSite) snapshot(ctx context.Context, withComments bool) (map[string]procIssue, error) {
	sevID, _ := s.Sim.FieldID(map[string]string{"alpha": "Severity", "beta": "Impact"}[s.Name])
	refID, _ := s.Sim.FieldID(map[string]string{"alpha": "Customer Ref", "beta": "Partner Reference"}[s.Name])
	out := map[string]procIssue{}
	err := s.admin.SearchAll(ctx, "project = "+s.Project+" ORDER BY key", []string{"summary", "description", "status", sevID, refID}, nil, func(is jira.Issue) error {
		d := procIssue{Key: is.Key}
		var summary string
		is.Field("summary", &summary)
		is.Field("description", &d.Description)
		var st struct{ Name string }
		is.Field("status", &st)
		d.Status = procStatus[st.Name]
		var sev struct{ Value string }
		is.Field(sevID, &sev)
		d.Severity = procSeverity[sev.Value]
		is.Field(refID, &d.Ref)
		if _, dup := out[summary]; dup {
			return fmt.Errorf("%s: two issues with summary %q (a doubled issue)", s.Name, summary)
		}
		out[summary] = d
		return nil
	})
	if err != nil || !withComments {
		return out, err
	}
	for sm, d := range out {
		cms, err := s.admin.Comments(ctx, d.Key)
		if err != nil {
			return nil, err
		}
		d.Markers = map[string]int{}
		for _, c := range cms {
			for _, f := range strings.Fields(c.Body) {
				if strings.HasPrefix(f, "m-") {
					d.Markers[f]++
				}
			}
		}
		out[sm] = d
	}
	return out, nil
}

// compareProc compares the two Jiras, comments included: every marker
// must be on both sides exactly once.
func compareProc(ctx context.Context, a, b *procSite, markers int) ([]string, error) {
	sa, err := a.snapshot(ctx, true)
	if err != nil {
		return nil, err
	}
	sb, err := b.snapshot(ctx, true)
	if err != nil {
		return nil, err
	}
	var diffs []string
	seen := [2]map[string]int{{}, {}}
	for k, x := range sa {
		y, ok := sb[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%q only on alpha", k))
			continue
		}
		if x.Description != y.Description || x.Status != y.Status || x.Severity != y.Severity || x.Ref != y.Ref {
			diffs = append(diffs, fmt.Sprintf("%q differs: alpha %s %q/%s/%s/%q, beta %s %q/%s/%s/%q", k,
				x.Key, x.Description, x.Status, x.Severity, x.Ref, y.Key, y.Description, y.Status, y.Severity, y.Ref))
		}
		for m, n := range x.Markers {
			seen[0][m] += n
		}
		for m, n := range y.Markers {
			seen[1][m] += n
			if x.Markers[m] != n {
				diffs = append(diffs, fmt.Sprintf("%q comment %s: %d on alpha, %d on beta", k, m, x.Markers[m], n))
			}
		}
	}
	for k := range sb {
		if _, ok := sa[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q only on beta", k))
		}
	}
	for side, name := range []string{"alpha", "beta"} {
		for i := 1; i <= markers; i++ {
			if n := seen[side][fmt.Sprintf("m-%d", i)]; n != 1 {
				diffs = append(diffs, fmt.Sprintf("comment m-%d is on %s %d times, want once", i, name, n))
			}
		}
	}
	return diffs, nil
}
