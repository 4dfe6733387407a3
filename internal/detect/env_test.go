package detect

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

const syncID = "s1"

const testDef = `
name: t
project: SUP
issue_types: {Bug: bug, Task: task}
statuses: {"To Do": todo, "In Progress": doing, Done: done}
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - local: priority
    alias: prio
    values: {Highest: p1, High: p2, Medium: p3, Low: p4}
  - {local: labels, alias: labels}
  - {local: duedate, alias: due}
  - {local: assignee, alias: assignee}
  - {local: reporter, alias: reporter}
  - {local: Notes, alias: notes}
  - {local: Points, alias: points}
  - local: Severity
    alias: sev
    values: {S1: sev1, S2: sev2, S3: sev3}
  - {local: Platforms, alias: platforms}
  - {local: Start, alias: start}
  - {local: Deadline, alias: deadline}
  - {local: Reviewer, alias: reviewer}
users: {mode: by_username}
`

// clock is a settable clock shared by jirasim (Jira time).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t      *testing.T
	sim    *jirasim.Server
	url    string
	jclk   *clock // Jira's clock
	st     *store.Store
	m      *mapping.Mapping
	det    *Detector
	alice  *jira.Client
	syncer *jira.Client
	ctx    context.Context
}

type envOpt func(*Options)

// newEnv starts jirasim (project SUP, users alice, bob and the sync user
// "bridge", custom fields of every type), a store and a detector.
func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	return newEnvSim(t, jirasim.Options{}, opts...)
}

// newEnvSim is newEnv with jirasim options (Now is always the env's clock).
func newEnvSim(t *testing.T, so jirasim.Options, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), jclk: &clock{t: time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)}}
	so.Now, so.SyncWebhooks = e.jclk.Now, true
	e.sim = jirasim.New(so)
	hs := httptest.NewServer(e.sim)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	for _, u := range []jirasim.UserSpec{
		{Name: "alice", Password: "pw", DisplayName: "Alice Example", Email: "alice@example.org"},
		{Name: "bob", Password: "pw", DisplayName: "Bob Example", Email: "bob@example.org"},
		{Name: "bridge", Password: "pw", DisplayName: "Bridge"},
	} {
		if err := e.sim.CreateUser(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.CreateProject(jirasim.ProjectSpec{Key: "SUP", Name: "Support"}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetPermission("SUP", "MODIFY_REPORTER", "loggedin"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []jirasim.FieldSpec{
		{Name: "Notes", Type: "textarea"},
		{Name: "Points", Type: "float"},
		{Name: "Severity", Type: "select", Options: []string{"S1", "S2", "S3", "S4"}},
		{Name: "Platforms", Type: "multiselect", Options: []string{"Linux", "Mac", "Windows"}},
		{Name: "Start", Type: "datepicker"},
		{Name: "Deadline", Type: "datetime"},
		{Name: "Reviewer", Type: "userpicker"},
	} {
		if _, err := e.sim.CreateField(f); err != nil {
			t.Fatal(err)
		}
	}
	e.alice = e.client("alice")
	e.syncer = e.client("bridge")

	var err error
	e.st, err = store.Open(e.ctx, filepath.Join(t.TempDir(), "db.sqlite"), &store.Options{NoSync: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		return tx.SyncPut(store.Sync{ID: syncID, Name: "t", Role: store.RoleMaster, ProjectKey: "SUP", SyncUser: "bridge", Transport: "file", SelfNode: "a"})
	}); err != nil {
		t.Fatal(err)
	}
	def, err := config.ParseSync([]byte(testDef))
	if err != nil {
		t.Fatal(err)
	}
	fields, err := e.syncer.Fields(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.m, err = mapping.New(def, fields, mapping.Options{Users: e.syncer})
	if err != nil {
		t.Fatal(err)
	}
	// The bridge's clock is Jira's: detection carries Jira's time forward
	// by the bridge time elapsed (Settle), and a test's Jira clock only
	// moves when the test moves it.
	o := Options{Jira: e.syncer, Store: e.st, SyncID: syncID, Node: "a", SyncUser: "bridge", Mapping: e.m, Logger: quiet(), PageSize: 50, Now: e.jclk.Now}
	for _, f := range opts {
		f(&o)
	}
	e.det, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (e *env) client(user string) *jira.Client {
	e.t.Helper()
	c, err := jira.New(jira.Options{BaseURL: e.url, Username: user, Password: "pw"})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) fieldID(name string) string {
	id, ok := e.sim.FieldID(name)
	if !ok {
		e.t.Fatalf("no field %s", name)
	}
	return id
}

// create makes an issue as c and returns its key and id.
func (e *env) create(c *jira.Client, typ, summary string, fields map[string]any, props ...jira.Property) jira.Ref {
	e.t.Helper()
	f := map[string]any{"project": map[string]string{"key": "SUP"}, "issuetype": map[string]string{"name": typ}, "summary": summary}
	for k, v := range fields {
		f[k] = v
	}
	r, err := c.CreateIssue(e.ctx, f, props)
	if err != nil {
		e.t.Fatalf("create issue: %v", err)
	}
	return r
}

func (e *env) edit(c *jira.Client, key string, fields map[string]any, meta *jira.HistoryMetadata) {
	e.t.Helper()
	if err := c.EditIssue(e.ctx, key, fields, nil, meta); err != nil {
		e.t.Fatalf("edit %s %v: %v", key, fields, err)
	}
}

func (e *env) transition(c *jira.Client, key, to string) {
	e.t.Helper()
	ts, err := c.Transitions(e.ctx, key)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, tr := range ts {
		if tr.To.Name == to {
			if err := c.DoTransition(e.ctx, key, tr.ID, nil, nil); err != nil {
				e.t.Fatal(err)
			}
			return
		}
	}
	e.t.Fatalf("no transition of %s to %s", key, to)
}

func (e *env) poll() Result {
	e.t.Helper()
	r, err := e.det.Poll(e.ctx)
	if err != nil {
		e.t.Fatalf("poll: %v", err)
	}
	return r
}

// drain returns and deletes the pending changes, oldest first.
func (e *env) drain() []wire.Change {
	e.t.Helper()
	var out []wire.Change
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		ps, err := tx.PendingList(syncID, 10000)
		if err != nil {
			return err
		}
		var ids []int64
		for _, p := range ps {
			var c wire.Change
			if err := json.Unmarshal(p.Change, &c); err != nil {
				return err
			}
			if err := c.Validate(); err != nil {
				e.t.Errorf("pending change %s is not valid on the wire: %v", c.ID, err)
			}
			out = append(out, c)
			ids = append(ids, p.ID)
		}
		return tx.PendingDelete(ids...)
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func ids(cs []wire.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func sortedAliases(m map[string]wire.FieldChange) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// remap builds a mapping of def against e's Jira.
func remap(t *testing.T, e *env, def string) *mapping.Mapping {
	t.Helper()
	d, err := config.ParseSync([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	fields, err := e.syncer.Fields(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(d, fields, mapping.Options{Users: e.syncer})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
