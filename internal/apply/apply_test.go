package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

type env struct {
	t      *testing.T
	clk    *enginetest.Clock
	alpha  *enginetest.Site
	beta   *enginetest.Site
	dbPath string
	st     *store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := enginetest.NewClock(time.Millisecond)
	alpha, beta := enginetest.NewPair(t, clk)
	e := &env{t: t, clk: clk, alpha: alpha, beta: beta, dbPath: filepath.Join(t.TempDir(), store.FileName)}
	e.open()
	if err := e.st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.SyncPut(store.Sync{ID: "s1", Name: "partner", Role: store.RoleSlave, ProjectKey: beta.Project,
			SyncUser: enginetest.SyncUser, Transport: "loopback", State: store.StateRunning, SelfNode: "beta"})
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) open() {
	st, err := store.Open(context.Background(), e.dbPath, &store.Options{Now: e.clk.Now, NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st = st
	e.t.Cleanup(func() { _ = st.Close() })
}

// reopen closes and opens the database, as a restarted bridge does.
func (e *env) reopen() {
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) applier(hooks apply.Hooks) *apply.Applier {
	a, err := apply.New(apply.Options{Jira: e.beta.Sync, Store: e.st, SyncID: "s1", Role: store.RoleSlave,
		ProjectKey: e.beta.Project, Mapping: e.beta.Mapping, PeerURL: e.alpha.URL, Now: e.clk.Now, Hooks: hooks})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func createChange(id string) wire.Change {
	return wire.Change{ID: id, IssueID: "20001", IssueKey: "ALPHA-7", Kind: wire.IssueCreate,
		At: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), IssueType: "task", Status: "done",
		Fields: map[string]wire.FieldChange{
			"summary":   {After: wire.StringValue("Printer on fire")},
			"priority":  {After: wire.StringValue("High")},
			"labels":    {After: wire.ListValue("hardware", "urgent")},
			"severity":  {After: wire.StringValue("sev2")},
			"platforms": {After: wire.ListValue("linux", "mac")},
			"effort":    {After: wire.NumberValue(3.5)},
			"target":    {After: wire.StringValue("2026-04-01")},
			"reporter":  {After: wire.UserValue(wire.User{Name: "alice", Display: "Alice Smith", Email: "alice@corp.example"})},
			"ref":       {After: wire.StringValue("CR-1")},
		}}
}

// betaIssues returns every issue of BETA, by key.
func (e *env) betaIssues() map[string]jira.Issue {
	e.t.Helper()
	out := map[string]jira.Issue{}
	err := e.beta.Client(e.t, "admin").SearchAll(context.Background(), "project = BETA", nil, nil, func(is jira.Issue) error {
		out[is.Key] = is
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func field[T any](t *testing.T, is jira.Issue, id string) T {
	t.Helper()
	var v T
	if _, err := is.Field(id, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCreateMapsFieldsStatusAndShowsPair(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.applier(apply.Hooks{})
	c := createChange("alpha-c1")
	if err := a.Apply(ctx, c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	issues := e.betaIssues()
	if len(issues) != 1 {
		t.Fatalf("BETA has %d issues, want 1", len(issues))
	}
	is := issues["BETA-1"]
	type named struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	checks := []struct{ what, got, want string }{
		{"summary", field[string](t, is, "summary"), "Printer on fire"},
		{"issuetype", field[named](t, is, "issuetype").Name, "Story"},
		{"status", field[named](t, is, "status").Name, "Closed"},
		{"priority", field[named](t, is, "priority").Name, "High"},
		{"labels", fmt.Sprint(field[[]string](t, is, "labels")), "[hardware urgent]"},
		{"impact", field[named](t, is, e.beta.Field["Impact"]).Value, "Major"},
		{"estimate", fmt.Sprint(field[float64](t, is, e.beta.Field["Estimate"])), "3.5"},
		{"due by", field[string](t, is, e.beta.Field["Due By"]), "2026-04-01"},
		{"reporter", field[named](t, is, "reporter").Name, "asmith"},
		{"ref", field[string](t, is, e.beta.Field["Partner Reference"]), "CR-1"},
	}
	os := field[[]named](t, is, e.beta.Field["Operating Systems"])
	if len(os) != 2 || os[0].Value != "GNU/Linux" || os[1].Value != "Mac" {
		t.Errorf("operating systems = %+v, want GNU/Linux, Mac", os)
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	var origin apply.Origin
	if ok, err := e.beta.Sync.IssueProperty(ctx, "BETA-1", apply.OriginProperty, &origin); err != nil || !ok {
		t.Fatalf("origin property: found %v, %v", ok, err)
	}
	if origin.ChangeID != "alpha-c1" || origin.PeerIssueID != "20001" || origin.PeerIssueKey != "ALPHA-7" {
		t.Errorf("origin = %+v", origin)
	}
	var state apply.SyncState
	if ok, err := e.beta.Sync.IssueProperty(ctx, "BETA-1", apply.SyncProperty, &state); err != nil || !ok {
		t.Fatalf("sync property: found %v, %v", ok, err)
	}
	if state.State != "synced" || state.PeerIssueKey != "ALPHA-7" {
		t.Errorf("sync state = %+v", state)
	}
	links, err := e.beta.Sync.RemoteLinks(ctx, "BETA-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].GlobalID != "jirabridge:s1:20001" || links[0].Object.URL != e.alpha.URL+"/browse/ALPHA-7" {
		t.Errorf("remote links = %+v", links)
	}
	// The pair, the ledger and the pair announcement for the peer.
	err = e.st.View(ctx, func(tx *store.Tx) error {
		p, err := tx.PairByPeer("s1", "20001")
		if err != nil {
			return err
		}
		if p.LocalKey != "BETA-1" || p.PeerKey != "ALPHA-7" {
			t.Errorf("pair = %+v", p)
		}
		if _, err := tx.LedgerGet("alpha-c1"); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		pend, err := tx.PendingList("s1", 10)
		if err != nil {
			return err
		}
		if len(pend) != 1 {
			t.Fatalf("pending = %d changes, want the pair announcement", len(pend))
		}
		var back wire.Change
		if err := json.Unmarshal(pend[0].Change, &back); err != nil {
			return err
		}
		if back.Kind != wire.IssuePair || back.IssueKey != "BETA-1" || back.PeerIssueID != "20001" {
			t.Errorf("pair announcement = %+v", back)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Applying the same change again is a no-op.
	before := e.beta.Sim.Counters()
	if err := a.Apply(ctx, c); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if n := len(e.betaIssues()); n != 1 {
		t.Errorf("after a second Apply BETA has %d issues, want 1", n)
	}
	after := e.beta.Sim.Counters()
	if after["POST /rest/api/2/issue"] != before["POST /rest/api/2/issue"] {
		t.Errorf("second Apply created again")
	}
}

// TestCrashAtEveryStep kills the apply of a create after each Jira write
// (before the ledger commit), restarts from the database, and checks that
// exactly one issue exists and the change is applied.
func TestCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	steps := []apply.Step{apply.StepCreate, apply.StepTransition, apply.StepRemoteLink, apply.StepProperty}
	for _, step := range steps {
		for _, restart := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/restart=%v", step, restart), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				ctx := context.Background()
				crash := errors.New("simulated crash")
				fired := 0
				a := e.applier(apply.Hooks{AfterWrite: func(s apply.Step, c wire.Change) error {
					if s == step && fired == 0 {
						fired++
						return crash
					}
					return nil
				}})
				c := createChange("alpha-crash")
				if err := a.Apply(ctx, c); !errors.Is(err, crash) {
					t.Fatalf("first Apply = %v, want the crash", err)
				}
				if restart {
					e.reopen()
				}
				// Later the clock has moved on (minutes, not hours).
				e.clk.Advance(3 * time.Minute)
				if err := e.applier(apply.Hooks{}).Apply(ctx, c); err != nil {
					t.Fatalf("Apply after crash: %v", err)
				}
				issues := e.betaIssues()
				if len(issues) != 1 {
					t.Fatalf("BETA has %d issues after a crash at %s, want 1", len(issues), step)
				}
				var st struct {
					Name string `json:"name"`
				}
				b1 := issues["BETA-1"]
				_, _ = b1.Field("status", &st)
				if st.Name != "Closed" {
					t.Errorf("status = %q, want Closed", st.Name)
				}
				links, err := e.beta.Sync.RemoteLinks(ctx, "BETA-1")
				if err != nil || len(links) != 1 {
					t.Errorf("remote links = %d (%v), want 1", len(links), err)
				}
				err = e.st.View(ctx, func(tx *store.Tx) error {
					if _, err := tx.LedgerGet("alpha-crash"); err != nil {
						return err
					}
					p, err := tx.PendingList("s1", 10)
					if len(p) != 1 {
						t.Errorf("pending = %d, want 1 pair announcement", len(p))
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestUpdateWritesOnlyDifferencesWithMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.applier(apply.Hooks{})
	if err := a.Apply(ctx, createChange("c1")); err != nil {
		t.Fatal(err)
	}
	up := wire.Change{ID: "c2", IssueID: "20001", IssueKey: "ALPHA-7", Kind: wire.IssueUpdate, At: e.clk.Now(),
		Status: "doing", IssueType: "bug",
		Fields: map[string]wire.FieldChange{
			"summary":  {Before: wire.StringValue("Printer on fire"), After: wire.StringValue("Printer smoking")},
			"priority": {Before: wire.StringValue("High"), After: wire.StringValue("High")},
			"severity": {Before: wire.StringValue("sev2"), After: wire.StringValue("sev1")},
			"labels":   {Before: wire.ListValue("hardware", "urgent"), After: wire.NullValue()},
		}}
	if err := a.Apply(ctx, up); err != nil {
		t.Fatalf("update: %v", err)
	}
	is, err := e.beta.Sync.GetIssue(ctx, "BETA-1", nil, []string{"changelog"})
	if err != nil {
		t.Fatal(err)
	}
	type named struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	if got := field[string](t, is, "summary"); got != "Printer smoking" {
		t.Errorf("summary = %q", got)
	}
	if got := field[named](t, is, e.beta.Field["Impact"]).Value; got != "Critical" {
		t.Errorf("impact = %q, want Critical", got)
	}
	if got := field[[]string](t, is, "labels"); len(got) != 0 {
		t.Errorf("labels = %v, want none", got)
	}
	if got := field[named](t, is, "status").Name; got != "In Progress" {
		t.Errorf("status = %q, want In Progress (Closed -> Open -> In Progress)", got)
	}
	if got := field[named](t, is, "issuetype").Name; got != "Bug" {
		t.Errorf("issuetype = %q, want Bug", got)
	}
	for _, h := range is.Changelog.Histories {
		if h.HistoryMetadata == nil || h.HistoryMetadata.Type != apply.MetadataType {
			t.Errorf("history %s by %v has no jirabridge metadata", h.ID, h.Author)
		}
		for _, it := range h.Items {
			if it.Field == "priority" {
				t.Errorf("priority was written although it did not change")
			}
		}
	}
}

// TestConflictNewerWinsTieMaster: the local person's change and the peer's
// change of one field are decided by Jira time; a tie goes to the master.
func TestConflictNewerWinsTieMaster(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		peerDelta time.Duration // peer change time minus local change time
		role      store.Role
		wantPeer  bool
	}{
		{"peer newer", time.Second, store.RoleSlave, true},
		{"local newer", -time.Second, store.RoleSlave, false},
		{"tie on slave", 0, store.RoleSlave, true},
		{"tie on master", 0, store.RoleMaster, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			a := e.applier(apply.Hooks{})
			if err := a.Apply(ctx, createChange("c1")); err != nil {
				t.Fatal(err)
			}
			// A person on beta changes the summary.
			localAt := e.clk.Now()
			e.clk.SetTick(0)
			e.clk.Advance(-time.Millisecond)
			if err := e.beta.Client(t, "asmith").EditIssue(ctx, "BETA-1", map[string]any{"summary": "local words"}, nil, nil); err != nil {
				t.Fatal(err)
			}
			e.clk.SetTick(time.Millisecond)
			ap, err := apply.New(apply.Options{Jira: e.beta.Sync, Store: e.st, SyncID: "s1", Role: tc.role,
				ProjectKey: e.beta.Project, Mapping: e.beta.Mapping, Now: e.clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			up := wire.Change{ID: "c2", IssueID: "20001", IssueKey: "ALPHA-7", Kind: wire.IssueUpdate, At: localAt.Add(tc.peerDelta),
				Fields: map[string]wire.FieldChange{"summary": {Before: wire.StringValue("Printer on fire"), After: wire.StringValue("peer words")}}}
			if err := ap.Apply(ctx, up); err != nil {
				t.Fatal(err)
			}
			is, err := e.beta.Sync.GetIssue(ctx, "BETA-1", []string{"summary"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := "local words"
			if tc.wantPeer {
				want = "peer words"
			}
			if got := field[string](t, is, "summary"); got != want {
				t.Errorf("summary = %q, want %q", got, want)
			}
			var cs []store.Conflict
			_ = e.st.View(ctx, func(tx *store.Tx) error {
				cs, err = tx.ConflictList("s1", 10)
				return err
			})
			if len(cs) != 1 || cs[0].Field != "summary" || (cs[0].Winner == "peer") != tc.wantPeer {
				t.Errorf("conflicts = %+v", cs)
			}
		})
	}
}

func TestErrorsAreClassified(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.applier(apply.Hooks{})
	// An update of an issue that was never created parks.
	up := wire.Change{ID: "u1", IssueID: "999", IssueKey: "ALPHA-99", Kind: wire.IssueUpdate, At: e.clk.Now()}
	if err := a.Apply(ctx, up); errclass.Of(err) != errclass.Permanent {
		t.Errorf("update of unpaired issue: %v (class %v), want permanent", err, errclass.Of(err))
	}
	// An alias this side does not map parks.
	c := createChange("c9")
	c.Fields["severity"] = wire.FieldChange{After: wire.StringValue("sev9")}
	if err := a.Apply(ctx, c); errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != "mapping" {
		t.Errorf("unmappable value: %v (%v, %s), want permanent mapping error", err, errclass.Of(err), errclass.ReasonOf(err))
	}
	// A field not on the create screen is Jira's 400: permanent.
	if err := e.beta.Sim.SetScreen("BETA", "summary", "priority"); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, createChange("c10")); errclass.Of(err) != errclass.Permanent {
		t.Errorf("field off screen: %v, want permanent", err)
	}
}

// TestDirectionOverridesConflicts: a field that is incoming-only here
// takes the peer's value even over a newer local change (local changes of
// it are never sent); an outgoing-only field ignores the peer's value.
func TestDirectionOverridesConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	def := *e.beta.Def
	def.Fields = append([]config.FieldMap(nil), e.beta.Def.Fields...)
	for i := range def.Fields {
		switch def.Fields[i].Alias {
		case "ref":
			def.Fields[i].Direction = config.DirIncoming
		case "effort":
			def.Fields[i].Direction = config.DirOutgoing
		}
	}
	fields, err := e.beta.Sync.Fields(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(&def, fields, mapping.Options{Users: e.beta.Sync})
	if err != nil {
		t.Fatal(err)
	}
	a, err := apply.New(apply.Options{Jira: e.beta.Sync, Store: e.st, SyncID: "s1", ProjectKey: "BETA", Mapping: m, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, createChange("c1")); err != nil {
		t.Fatal(err)
	}
	peerAt := e.clk.Now()
	ref, est := e.beta.Field["Partner Reference"], e.beta.Field["Estimate"]
	if err := e.beta.Client(t, "asmith").EditIssue(ctx, "BETA-1", map[string]any{ref: "local newer", est: 7.0}, nil, nil); err != nil {
		t.Fatal(err)
	}
	up := wire.Change{ID: "c2", IssueID: "20001", IssueKey: "ALPHA-7", Kind: wire.IssueUpdate, At: peerAt,
		Fields: map[string]wire.FieldChange{
			"ref":    {Before: wire.StringValue("CR-1"), After: wire.StringValue("peer older")},
			"effort": {Before: wire.NumberValue(3.5), After: wire.NumberValue(9)},
		}}
	if err := a.Apply(ctx, up); err != nil {
		t.Fatal(err)
	}
	is, err := e.beta.Sync.GetIssue(ctx, "BETA-1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := field[string](t, is, ref); got != "peer older" {
		t.Errorf("incoming-only field = %q, want the peer's value", got)
	}
	if got := field[float64](t, is, est); got != 7 {
		t.Errorf("outgoing-only field = %v, want the local 7", got)
	}
}
