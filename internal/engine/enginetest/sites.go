// Package enginetest starts a realistic pair of Jira sites for the sync
// engine's tests: two jirasims on httptest, seeded with projects whose issue
// types, field names, select values, statuses, workflows and usernames
// differ, and the sync definitions that map them to shared aliases.
package enginetest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
	"github.com/jirabridge/jirabridge/internal/mapping"
)

// Clock is a shared test clock. Every reading advances it by Tick, so Jira
// times on both sites are distinct and ordered like real time; Tick 0
// freezes it (for ties).
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	tick time.Duration
}

// NewClock starts a clock at a fixed time that ticks by tick per reading.
func NewClock(tick time.Duration) *Clock {
	return &Clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), tick: tick}
}

// Now reads the clock and advances it by the tick.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.tick)
	return t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// SetTick changes how far each reading advances the clock.
func (c *Clock) SetTick(d time.Duration) {
	c.mu.Lock()
	c.tick = d
	c.mu.Unlock()
}

// Password is every seeded user's password.
const Password = "pw"

// SyncUser is the sync user's name on both sites.
const SyncUser = "jirabridge"

// Site is one Jira of the pair.
type Site struct {
	Name    string // "alpha" or "beta"
	Project string // project key
	Sim     *jirasim.Server
	URL     string
	// People are the usernames of the site's people, in the same order on
	// both sites (People[i] on alpha is the same person as People[i] on
	// beta, matched by e-mail).
	People []string
	// Field maps a custom field's display name to its id.
	Field   map[string]string
	Def     *config.SyncDef
	Mapping *mapping.Mapping
	// Sync is the sync user's client.
	Sync *jira.Client
}

// Client returns a Jira client acting as user (password Password).
func (s *Site) Client(t testing.TB, user string) *jira.Client {
	t.Helper()
	pw := Password
	if user == "admin" {
		pw = "admin"
	}
	c, err := jira.New(jira.Options{BaseURL: s.URL, Username: user, Password: pw, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type siteSpec struct {
	name, project string
	people        [][3]string // username, display name, e-mail
	fields        []jirasim.FieldSpec
	workflow      *jirasim.Workflow
	syncYAML      string // with %s placeholders for nothing; fields by name
}

var people = [][2]string{{"Alice Smith", "alice@corp.example"}, {"Bob Jones", "bob@corp.example"}, {"Carol White", "carol@corp.example"}}

// NewPair starts both sites on clk. alpha uses Jira's default workflow
// (To Do, In Progress, Done); beta a longer one (Open, In Progress, In
// Review, Closed) so reaching "done" takes several transitions.
func NewPair(t testing.TB, clk *Clock) (alpha, beta *Site) {
	t.Helper()
	alpha = newSite(t, clk, siteSpec{
		name: "alpha", project: "ALPHA",
		people: [][3]string{{"alice", people[0][0], people[0][1]}, {"bob", people[1][0], people[1][1]}, {"carol", people[2][0], people[2][1]}},
		fields: []jirasim.FieldSpec{
			{Name: "Customer Ref", Type: "textfield"},
			{Name: "Effort", Type: "float"},
			{Name: "Severity", Type: "select", Options: []string{"S1", "S2", "S3"}},
			{Name: "Platforms", Type: "multiselect", Options: []string{"Linux", "Windows", "macOS"}},
			{Name: "Target Date", Type: "datepicker"},
			{Name: "Go Live", Type: "datetime"},
			{Name: "Reviewer", Type: "userpicker"},
		},
		syncYAML: `name: partner
project: ALPHA
issue_types:
  Bug: bug
  Task: task
  Sub-task: subtask
subtasks: true
statuses:
  To Do: todo
  In Progress: doing
  Done: done
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - {local: priority, alias: priority, kind: priority}
  - {local: labels, alias: labels, kind: labels}
  - {local: duedate, alias: due, kind: date}
  - {local: assignee, alias: assignee, kind: user}
  - {local: reporter, alias: reporter, kind: user}
  - {local: Customer Ref, alias: ref}
  - {local: Effort, alias: effort}
  - {local: Severity, alias: severity, values: {S1: sev1, S2: sev2, S3: sev3}}
  - {local: Platforms, alias: platforms, values: {Linux: linux, Windows: windows, macOS: mac}}
  - {local: Target Date, alias: target}
  - {local: Go Live, alias: golive}
  - {local: Reviewer, alias: reviewer}
users:
  mode: by_email
`,
	})
	beta = newSite(t, clk, siteSpec{
		name: "beta", project: "BETA",
		people: [][3]string{{"asmith", people[0][0], people[0][1]}, {"bjones", people[1][0], people[1][1]}, {"cwhite", people[2][0], people[2][1]}},
		fields: []jirasim.FieldSpec{
			{Name: "Partner Reference", Type: "textfield"},
			{Name: "Estimate", Type: "float"},
			{Name: "Impact", Type: "select", Options: []string{"Critical", "Major", "Minor"}},
			{Name: "Operating Systems", Type: "multiselect", Options: []string{"GNU/Linux", "Win", "Mac"}},
			{Name: "Due By", Type: "datepicker"},
			{Name: "Launch", Type: "datetime"},
			{Name: "Checker", Type: "userpicker"},
		},
		workflow: &jirasim.Workflow{Name: "beta flow", Initial: "Open", Transitions: []jirasim.Transition{
			{ID: "11", Name: "Start", From: []string{"Open"}, To: "In Progress"},
			{ID: "21", Name: "Send to review", From: []string{"In Progress"}, To: "In Review"},
			{ID: "31", Name: "Approve", From: []string{"In Review"}, To: "Closed"},
			{ID: "41", Name: "Rework", From: []string{"In Review"}, To: "In Progress"},
			{ID: "51", Name: "Reopen", From: []string{"Closed"}, To: "Open"},
			{ID: "61", Name: "Stop", From: []string{"In Progress"}, To: "Open"},
		}},
		syncYAML: `name: partner
project: BETA
issue_types:
  Bug: bug
  Story: task
  Sub-task: subtask
subtasks: true
statuses:
  Open: todo
  In Progress: doing
  Closed: done
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - {local: priority, alias: priority, kind: priority}
  - {local: labels, alias: labels, kind: labels}
  - {local: duedate, alias: due, kind: date}
  - {local: assignee, alias: assignee, kind: user}
  - {local: reporter, alias: reporter, kind: user}
  - {local: Partner Reference, alias: ref}
  - {local: Estimate, alias: effort}
  - {local: Impact, alias: severity, values: {Critical: sev1, Major: sev2, Minor: sev3}}
  - {local: Operating Systems, alias: platforms, values: {GNU/Linux: linux, Win: windows, Mac: mac}}
  - {local: Due By, alias: target}
  - {local: Launch, alias: golive}
  - {local: Checker, alias: reviewer}
users:
  mode: by_email
`,
	})
	return alpha, beta
}

func newSite(t testing.TB, clk *Clock, sp siteSpec) *Site {
	t.Helper()
	sim := jirasim.New(jirasim.Options{Now: clk.Now, SyncWebhooks: true, MaxLoginFailures: -1})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	seed := jirasim.Seed{Fields: sp.fields}
	seed.Users = append(seed.Users, jirasim.UserSpec{Name: SyncUser, Password: Password, DisplayName: "jirabridge sync", Email: "sync-" + sp.name + "@bridge.example"})
	var names []string
	for _, p := range sp.people {
		seed.Users = append(seed.Users, jirasim.UserSpec{Name: p[0], Password: Password, DisplayName: p[1], Email: p[2]})
		names = append(names, p[0])
	}
	if sp.workflow != nil {
		seed.Workflows = []jirasim.Workflow{*sp.workflow}
	}
	proj := jirasim.ProjectSpec{Key: sp.project, Name: sp.name + " project",
		Roles: map[string][]string{"Administrators": {SyncUser}, "Developers": names}}
	if sp.workflow != nil {
		proj.Workflow = sp.workflow.Name
	}
	seed.Projects = []jirasim.ProjectSpec{proj}
	if err := sim.ApplySeed(seed); err != nil {
		t.Fatalf("seed %s: %v", sp.name, err)
	}
	s := &Site{Name: sp.name, Project: sp.project, Sim: sim, URL: hs.URL, People: names, Field: map[string]string{}}
	for _, f := range sp.fields {
		id, ok := sim.FieldID(f.Name)
		if !ok {
			t.Fatalf("seed %s: field %q missing", sp.name, f.Name)
		}
		s.Field[f.Name] = id
	}
	def, err := config.ParseSync([]byte(sp.syncYAML))
	if err != nil {
		t.Fatalf("sync definition of %s: %v", sp.name, err)
	}
	s.Def = def
	s.Sync = s.Client(t, SyncUser)
	fields, err := s.Sync.Fields(context.Background())
	if err != nil {
		t.Fatalf("fields of %s: %v", sp.name, err)
	}
	if s.Mapping, err = mapping.New(def, fields, mapping.Options{Users: s.Sync}); err != nil {
		t.Fatalf("mapping of %s: %v", sp.name, err)
	}
	return s
}

// String names the site in test messages.
func (s *Site) String() string { return fmt.Sprintf("%s(%s)", s.Name, s.Project) }
