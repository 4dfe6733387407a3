package apply

import (
	"testing"

	"github.com/jirabridge/jirabridge/internal/jira"
)

func tr(id, to string) jira.Transition {
	return jira.Transition{ID: id, Name: id, To: jira.Status{Name: to}}
}

// TestNextTransition: the shortest known path wins; without one, a
// transition into a status whose exits are unknown is explored, preferring
// statuses not visited on this walk; with nothing left, no transition.
func TestNextTransition(t *testing.T) {
	t.Parallel()
	graph := map[string][]jira.Transition{
		"open":        {tr("start", "In Progress"), tr("close", "Closed")},
		"in progress": {tr("review", "In Review"), tr("stop", "Open")},
		"in review":   {tr("approve", "Done")},
		"closed":      {tr("reopen", "Open")},
	}
	cases := []struct {
		name, cur, want string
		visited         []string
		wantID          string
		wantOK          bool
	}{
		{"direct", "Open", "Closed", nil, "close", true},
		{"three steps", "Open", "Done", nil, "start", true},
		{"from the middle", "In Progress", "Done", nil, "review", true},
		{"back", "Closed", "In Progress", nil, "reopen", true},
		{"unknown target: explore towards Done, whose exits are unknown", "Open", "Waiting", nil, "start", true},
	}
	for _, c := range cases {
		a := &Applier{graph: map[string]map[string][]jira.Transition{"P/task": graph}}
		visited := map[string]bool{}
		for _, v := range c.visited {
			visited[v] = true
		}
		got, ok := a.nextTransition("P/task", c.cur, c.want, visited)
		if ok != c.wantOK || (ok && got.ID != c.wantID) {
			t.Errorf("%s: got %q, %v; want %q, %v", c.name, got.ID, ok, c.wantID, c.wantOK)
		}
	}
	// Every status known and the target not among them: no way.
	full := map[string][]jira.Transition{"open": {tr("x", "Closed")}, "closed": {tr("y", "Open")}}
	a0 := &Applier{graph: map[string]map[string][]jira.Transition{"P/task": full}}
	if got, ok := a0.nextTransition("P/task", "Open", "Done", map[string]bool{}); ok {
		t.Errorf("unreachable: got %q, want none", got.ID)
	}
	// A status whose exits are not known yet is explored.
	a := &Applier{graph: map[string]map[string][]jira.Transition{"P/task": {
		"open":   {tr("a", "Triage"), tr("b", "Backlog")},
		"triage": {tr("c", "Open")},
	}}}
	got, ok := a.nextTransition("P/task", "Open", "Done", map[string]bool{"open": true})
	if !ok || got.ID != "b" {
		t.Errorf("explore: got %q, %v; want b (Backlog, not known yet)", got.ID, ok)
	}
}
