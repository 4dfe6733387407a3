package perms_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
	"github.com/jirabridge/jirabridge/internal/perms"
)

func site(t *testing.T) (*jirasim.Server, *jira.Client) {
	t.Helper()
	sim := jirasim.New(jirasim.Options{})
	if err := sim.CreateUser(jirasim.UserSpec{Name: "bridge", Password: "pw", DisplayName: "Bridge"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.CreateProject(jirasim.ProjectSpec{Key: "P", Name: "P", Roles: map[string][]string{"Administrators": {"bridge"}}}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	c, err := jira.New(jira.Options{BaseURL: hs.URL, Username: "bridge", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func TestCheckReportsExactlyTheMissingPermissions(t *testing.T) {
	t.Parallel()
	all := []string{perms.FeatureIssues, perms.FeatureWorkflows, perms.FeatureComments, perms.FeatureAttachments,
		perms.FeatureWatchers, perms.FeatureLinks, perms.FeatureSubtasks}
	tests := []struct {
		name    string
		revoke  []string
		missing []string // feature/permission
	}{
		{"all present", nil, nil},
		{"watchers and links", []string{"MANAGE_WATCHERS", "LINK_ISSUES"}, []string{"watchers/MANAGE_WATCHERS", "links/LINK_ISSUES"}},
		{"comments edit own", []string{"EDIT_OWN_COMMENTS"}, []string{"comments/EDIT_OWN_COMMENTS"}},
		{"create issues blocks issues and subtasks", []string{"CREATE_ISSUES"}, []string{"issues/CREATE_ISSUES", "subtasks/CREATE_ISSUES"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, c := site(t)
			for _, p := range tc.revoke {
				if err := sim.SetPermission("P", p); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := perms.Check(context.Background(), c, "P", all)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range perms.Missing(rows) {
				got = append(got, r.Feature+"/"+r.Permission)
				if !strings.Contains(r.WhatToDo, r.Permission) || !strings.Contains(r.WhatToDo, `"bridge"`) {
					t.Errorf("what to do for %s: %q", r.Permission, r.WhatToDo)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.missing, ",") {
				t.Errorf("missing = %v, want %v", got, tc.missing)
			}
			if n := len(rows); n != 13 {
				t.Errorf("%d rows, want 13", n)
			}
			err = perms.Require("P", rows)
			var pe *perms.Error
			if (len(tc.missing) > 0) != errors.As(err, &pe) {
				t.Errorf("Require = %v", err)
			}
			var buf bytes.Buffer
			if err := perms.Print(&buf, rows); err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Count(buf.String(), "MISSING"), len(tc.missing); got != want {
				t.Errorf("table shows %d MISSING, want %d:\n%s", got, want, buf.String())
			}
		})
	}
}

func TestFeaturesFollowTheSwitches(t *testing.T) {
	t.Parallel()
	def := &config.SyncDef{}
	def.Comments.Enabled = true
	def.Links.Enabled = true
	got := strings.Join(perms.Features(def), ",")
	if want := "issues,workflows,comments,comment-edits-to-originals,comment-deletes-to-originals,links"; got != want {
		t.Errorf("Features = %s, want %s", got, want)
	}
	if _, err := perms.Check(context.Background(), nil, "P", []string{"nope"}); err == nil {
		t.Error("unknown feature accepted")
	}
}

// The write-back of a partner's edits and deletions to the originals here
// needs the *_ALL_* permissions; without them only the write-back is
// refused, never comments or attachments as a whole.
func TestWriteBackToOriginalsIsItsOwnFeature(t *testing.T) {
	t.Parallel()
	def := &config.SyncDef{}
	def.Comments.Enabled = true
	def.Attachments.Enabled = true
	sim, c := site(t)
	// The sync user is no project administrator: it keeps what every
	// logged-in user has (the *_OWN_* ones), not the *_ALL_* ones.
	for _, p := range []string{"EDIT_ALL_COMMENTS", "DELETE_ALL_COMMENTS", "DELETE_ALL_ATTACHMENTS"} {
		if err := sim.SetPermission("P", p); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := perms.Check(context.Background(), c, "P", perms.Features(def))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range perms.Missing(rows) {
		got = append(got, r.Feature+"/"+r.Permission)
		if !strings.Contains(r.WhatToDo, "grant "+r.Permission) || !strings.Contains(r.WhatToDo, "still sync") {
			t.Errorf("what to do for %s: %q", r.Permission, r.WhatToDo)
		}
	}
	want := "comment-edits-to-originals/EDIT_ALL_COMMENTS,comment-deletes-to-originals/DELETE_ALL_COMMENTS," +
		"attachment-deletes-to-originals/DELETE_ALL_ATTACHMENTS"
	if strings.Join(got, ",") != want {
		t.Errorf("missing = %v, want %s", got, want)
	}
	blocked := strings.Join(perms.Blocked(rows), ",")
	if blocked != "comment-edits-to-originals,comment-deletes-to-originals,attachment-deletes-to-originals" {
		t.Errorf("blocked = %s: comments and attachments themselves must not be", blocked)
	}
	var buf bytes.Buffer
	if err := perms.Print(&buf, rows); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && (f[0] == "comments" || f[0] == "attachments") && f[2] != "present" {
			t.Errorf("comments or attachments shown missing: %q", line)
		}
	}
	if n := len(perms.Needs(perms.FeatureCommentEditsToOriginals)); n != 1 {
		t.Errorf("Needs(%s) = %d rows", perms.FeatureCommentEditsToOriginals, n)
	}
}
