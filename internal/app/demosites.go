package app

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/sitepair"
)

// The demo's pair of Jira sites is sitepair's, which the bench and the
// tests use too; the demo runs bridges from the sync files, with comments
// synced and unmatched people dropped.

const (
	demoSyncUser = sitepair.SyncUser
	demoPassword = sitepair.Password
)

// demoSite is one jirasim serving on a loopback port, with the sync
// definition file its bridge reads.
type demoSite struct {
	*sitepair.Site
	SyncYAML string
}

// startDemoSites starts both jirasims on loopback ports.
func startDemoSites(now func() time.Time) (alpha, beta *demoSite, err error) {
	a, b, err := sitepair.Start(sitepair.Options{Now: now})
	if err != nil {
		return nil, nil, err
	}
	demo := func(s *sitepair.Site) *demoSite {
		return &demoSite{Site: s, SyncYAML: s.Spec.SyncYAML(sitepair.SyncOptions{DropUnknownUsers: true, Comments: true})}
	}
	return demo(a), demo(b), nil
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
	c, err := s.Client("admin")
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

// snapshotter is a Jira site the demo (demoSite) or the bench (benchSite,
// which snapshots more fields) can read every issue of.
type snapshotter interface {
	snapshot(ctx context.Context) (map[string]demoIssue, error)
	name() string
}

func (s *demoSite) name() string { return s.Name }

// compareSites compares the two Jiras; it returns the differences, one a
// line, and how many issues the first holds.
func compareSites(ctx context.Context, a, b snapshotter) ([]string, int, error) {
	sa, err := a.snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	sb, err := b.snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	return diffSnapshots(a.name(), sa, b.name(), sb), len(sa), nil
}

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
