package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/sitepair"
)

// The process tests' pair of Jiras: sitepair's (the demo's) two jirasims
// on real time (the bridges run as processes on the wall clock), with
// comment sync on and unmatched people dropped, as the demo runs them.

const (
	procSyncUser = sitepair.SyncUser
	procPassword = sitepair.Password
)

type procSite struct {
	*sitepair.Site
	SyncYAML string
	admin    *jira.Client
}

func (s *procSite) client(t testing.TB, user string) *jira.Client {
	t.Helper()
	c, err := s.Client(user)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startProcSites starts both jirasims on loopback ports.
func startProcSites(t testing.TB) (alpha, beta *procSite) {
	t.Helper()
	a, b, err := sitepair.Start(sitepair.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	proc := func(s *sitepair.Site) *procSite {
		p := &procSite{Site: s, SyncYAML: s.Spec.SyncYAML(sitepair.SyncOptions{DropUnknownUsers: true, Comments: true})}
		p.admin = p.client(t, "admin")
		return p
	}
	return proc(a), proc(b)
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
