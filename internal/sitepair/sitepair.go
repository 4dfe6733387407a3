// Package sitepair starts the project's standard pair of Jira sites: two
// jirasims on loopback ports whose projects differ in issue type names,
// field names, select values, statuses (and workflow length) and
// usernames, each with the sync definition that maps them to shared
// aliases, so the aliases do real work. The demo, the bench and the tests
// (through enginetest) all use this one pair, so a change to it is seen by
// every one of them.
package sitepair

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
)

// SyncUser is the sync user's name on both sites.
const SyncUser = "jirabridge"

// Password is every seeded user's password; jirasim's built-in "admin"
// keeps its own ("admin").
const Password = "pw"

// Person is one of the people seeded on both sites: the same display name
// and e-mail, a different username on each.
type Person struct{ DisplayName, Email string }

// People are the persons behind Site.People, in the same order.
func People() []Person {
	return []Person{{"Alice Smith", "alice@corp.example"}, {"Bob Jones", "bob@corp.example"}, {"Carol White", "carol@corp.example"}}
}

// Spec is what one site is seeded with.
type Spec struct {
	Name    string // "alpha" or "beta"
	Project string // project key
	// Users are the people's usernames, in the order of People().
	Users    []string
	Fields   []jirasim.FieldSpec
	Workflow *jirasim.Workflow // nil: Jira's default (To Do, In Progress, Done)
	// syncHead is the sync definition up to (not including) users.
	syncHead string
}

// Specs returns the two sites' specs, alpha first. alpha uses Jira's
// default workflow; beta a longer one (Open, In Progress, In Review,
// Closed) so reaching "done" takes several transitions.
func Specs() [2]Spec {
	return [2]Spec{{
		Name: "alpha", Project: "ALPHA", Users: []string{"alice", "bob", "carol"},
		Fields: []jirasim.FieldSpec{
			{Name: "Customer Ref", Type: "textfield"},
			{Name: "Effort", Type: "float"},
			{Name: "Severity", Type: "select", Options: []string{"S1", "S2", "S3"}},
			{Name: "Platforms", Type: "multiselect", Options: []string{"Linux", "Windows", "macOS"}},
			{Name: "Target Date", Type: "datepicker"},
			{Name: "Go Live", Type: "datetime"},
			{Name: "Reviewer", Type: "userpicker"},
		},
		syncHead: `name: partner
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
`,
	}, {
		Name: "beta", Project: "BETA", Users: []string{"asmith", "bjones", "cwhite"},
		Fields: []jirasim.FieldSpec{
			{Name: "Partner Reference", Type: "textfield"},
			{Name: "Estimate", Type: "float"},
			{Name: "Impact", Type: "select", Options: []string{"Critical", "Major", "Minor"}},
			{Name: "Operating Systems", Type: "multiselect", Options: []string{"GNU/Linux", "Win", "Mac"}},
			{Name: "Due By", Type: "datepicker"},
			{Name: "Launch", Type: "datetime"},
			{Name: "Checker", Type: "userpicker"},
		},
		Workflow: &jirasim.Workflow{Name: "beta flow", Initial: "Open", Transitions: []jirasim.Transition{
			{ID: "11", Name: "Start", From: []string{"Open"}, To: "In Progress"},
			{ID: "21", Name: "Send to review", From: []string{"In Progress"}, To: "In Review"},
			{ID: "31", Name: "Approve", From: []string{"In Review"}, To: "Closed"},
			{ID: "41", Name: "Rework", From: []string{"In Review"}, To: "In Progress"},
			{ID: "51", Name: "Reopen", From: []string{"Closed"}, To: "Open"},
			{ID: "61", Name: "Stop", From: []string{"In Progress"}, To: "Open"},
		}},
		syncHead: `name: partner
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
`,
	}}
}

// SyncOptions are the settings in which the users of the pair differ.
// The engine's tests keep the defaults (a person without a match parks
// the change; content sync is switched on per test in code); the demo and
// the bench run bridges from the file, with comments synced and unmatched
// people dropped so that nothing parks.
type SyncOptions struct {
	// DropUnknownUsers adds users.fallback: drop.
	DropUnknownUsers bool
	// Comments adds comments.enabled: true.
	Comments bool
}

// SyncYAML is the site's sync definition file.
func (sp Spec) SyncYAML(o SyncOptions) string {
	var b strings.Builder
	b.WriteString(sp.syncHead)
	b.WriteString("users:\n  mode: by_email\n")
	if o.DropUnknownUsers {
		b.WriteString("  fallback: drop\n")
	}
	if o.Comments {
		b.WriteString("comments:\n  enabled: true\n")
	}
	return b.String()
}

// Seed is what ApplySeed needs to create the site's users, fields,
// workflow and project, the sync user an administrator of it.
func (sp Spec) Seed() jirasim.Seed {
	seed := jirasim.Seed{Fields: sp.Fields}
	seed.Users = append(seed.Users, jirasim.UserSpec{Name: SyncUser, Password: Password,
		DisplayName: "jirabridge sync", Email: "sync-" + sp.Name + "@bridge.example"})
	people := People()
	for i, u := range sp.Users {
		seed.Users = append(seed.Users, jirasim.UserSpec{Name: u, Password: Password, DisplayName: people[i].DisplayName, Email: people[i].Email})
	}
	proj := jirasim.ProjectSpec{Key: sp.Project, Name: sp.Name + " project",
		Roles: map[string][]string{"Administrators": {SyncUser}, "Developers": sp.Users}}
	if sp.Workflow != nil {
		seed.Workflows = []jirasim.Workflow{*sp.Workflow}
		proj.Workflow = sp.Workflow.Name
	}
	seed.Projects = []jirasim.ProjectSpec{proj}
	return seed
}

// Options configure Start.
type Options struct {
	// Now is both jirasims' clock; nil means time.Now.
	Now func() time.Time
}

// Site is one running jirasim of the pair.
type Site struct {
	Name    string
	Project string
	Sim     *jirasim.Server
	// URL is the site's base URL (http://127.0.0.1:port).
	URL string
	// People are the usernames of the site's people: People[i] on alpha
	// is the same person as People[i] on beta, matched by e-mail.
	People []string
	Spec   Spec
	srv    *http.Server
}

// Start seeds both sites and serves them on loopback ports the OS picks.
// The caller closes both.
func Start(o Options) (alpha, beta *Site, err error) {
	var sites []*Site
	for _, sp := range Specs() {
		s, err := startSite(sp, o)
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

func startSite(sp Spec, o Options) (*Site, error) {
	sim := jirasim.New(jirasim.Options{Now: o.Now, SyncWebhooks: true, MaxLoginFailures: -1})
	if err := sim.ApplySeed(sp.Seed()); err != nil {
		return nil, fmt.Errorf("seed jirasim %s: %w", sp.Name, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for jirasim %s: %w", sp.Name, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &Site{Name: sp.Name, Project: sp.Project, Sim: sim, URL: "http://" + ln.Addr().String(),
		People: append([]string(nil), sp.Users...), Spec: sp, srv: srv}, nil
}

// Close stops serving the site.
func (s *Site) Close() {
	if s.srv != nil {
		s.srv.Close()
	}
}

// Client returns a Jira client acting as user: the sync user, one of
// People, or jirasim's built-in "admin", who sees every issue.
func (s *Site) Client(user string) (*jira.Client, error) {
	pw := Password
	if user == "admin" {
		pw = "admin"
	}
	return jira.New(jira.Options{BaseURL: s.URL, Username: user, Password: pw, Timeout: 20 * time.Second})
}

// String names the site in messages.
func (s *Site) String() string { return fmt.Sprintf("%s(%s)", s.Name, s.Project) }
