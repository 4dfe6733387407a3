package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// maxTransitionSteps bounds the walk to a target status, so a workflow in
// which the target cannot be reached ends in a clear error, not a loop.
const maxTransitionSteps = 25

// reachStatus moves the issue to the status named want along the shortest
// path of transitions. Jira only tells which transitions leave the current
// status, so the applier learns the workflow graph as it goes (per project
// and issue type, across issues), searches it breadth first, and when the
// known graph has no path it steps into a status it has not seen yet. The
// available transitions are read again after every step.
func (a *Applier) reachStatus(ctx context.Context, c wire.Change, key, want string) error {
	is, err := a.o.Jira.GetIssue(ctx, key, []string{"status", "issuetype"}, nil)
	if err != nil {
		return fmt.Errorf("read status of %s: %w", key, err)
	}
	cur := statusName(is)
	var it struct {
		Name string `json:"name"`
	}
	_, _ = is.Field("issuetype", &it)
	gk := a.o.ProjectKey + "/" + strings.ToLower(it.Name)
	visited := map[string]bool{}
	for step := 0; ; step++ {
		if strings.EqualFold(cur, want) {
			return nil
		}
		if step >= maxTransitionSteps {
			break
		}
		trs, err := a.o.Jira.Transitions(ctx, key)
		if err != nil {
			return fmt.Errorf("read transitions of %s: %w", key, err)
		}
		visited[strings.ToLower(cur)] = true
		a.learn(gk, cur, trs)
		tr, ok := a.nextTransition(gk, cur, want, visited)
		if !ok {
			break
		}
		if err := a.o.Jira.DoTransition(ctx, key, tr.ID, nil, a.meta(c)); err != nil {
			return fmt.Errorf("transition %s from %s to %s (%s): %w", key, cur, tr.To.Name, tr.Name, err)
		}
		if err := a.after(StepTransition, c); err != nil {
			return err
		}
		cur = tr.To.Name
	}
	return errclass.New(errclass.Permanent, "status_unreachable",
		fmt.Errorf("change %s: status %q cannot be reached from %q on %s through the workflow's transitions", c.ID, want, cur, key))
}

func (a *Applier) learn(gk, from string, trs []jira.Transition) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.graph[gk]
	if g == nil {
		g = map[string][]jira.Transition{}
		a.graph[gk] = g
	}
	g[strings.ToLower(from)] = trs
}

// nextTransition picks the first transition of a shortest known path from
// cur to want; without one, a transition into a status whose exits are not
// known yet (exploring), preferring statuses not visited on this walk.
func (a *Applier) nextTransition(gk, cur, want string, visited map[string]bool) (jira.Transition, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.graph[gk]
	start, goal := strings.ToLower(cur), strings.ToLower(want)
	type node struct {
		status string
		first  jira.Transition
	}
	seen := map[string]bool{start: true}
	queue := []node{}
	for _, t := range g[start] {
		to := strings.ToLower(t.To.Name)
		if !seen[to] {
			seen[to] = true
			queue = append(queue, node{to, t})
		}
	}
	var explore []node
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n.status == goal {
			return n.first, true
		}
		exits, known := g[n.status]
		if !known {
			explore = append(explore, n)
			continue
		}
		for _, t := range exits {
			to := strings.ToLower(t.To.Name)
			if !seen[to] {
				seen[to] = true
				queue = append(queue, node{to, n.first})
			}
		}
	}
	for _, n := range explore {
		if !visited[n.status] {
			return n.first, true
		}
	}
	if len(explore) > 0 {
		return explore[0].first, true
	}
	return jira.Transition{}, false
}
