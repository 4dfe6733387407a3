// Package perms checks, before the bridge writes anything, that the sync
// user holds every Jira permission the enabled features need (Jira's
// mypermissions), so a missing permission is a clear message at start
// instead of a failure on the first write.
package perms

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
)

// Features the check knows, as named in the table.
const (
	FeatureIssues      = "issues"
	FeatureWorkflows   = "workflows"
	FeatureComments    = "comments"
	FeatureAttachments = "attachments"
	FeatureWatchers    = "watchers"
	FeatureLinks       = "links"
	FeatureSubtasks    = "subtasks"

	// FeatureCommentEditsToOriginals: a person on the partner's side
	// edits the bridge's copy of a comment written here; the edit is
	// applied to the ORIGINAL here, a person's comment, as the sync user
	// (EDIT_ALL_COMMENTS; EDIT_OWN_COMMENTS covers only the bridge's own
	// copies). Without it comment sync runs, and only such edits park
	// with this feature's message.
	FeatureCommentEditsToOriginals = "comment-edits-to-originals"
	// FeatureCommentDeletesToOriginals: the same for deletions
	// (DELETE_ALL_COMMENTS).
	FeatureCommentDeletesToOriginals = "comment-deletes-to-originals"
	// FeatureAttachmentDeletesToOriginals: a person on the partner's side
	// deletes the bridge's copy of an attachment added here; the original
	// here is deleted as the sync user (DELETE_ALL_ATTACHMENTS).
	FeatureAttachmentDeletesToOriginals = "attachment-deletes-to-originals"
)

// Need is one permission a feature needs.
type Need struct {
	Feature    string
	Permission string // Jira's key, e.g. ADD_COMMENTS
	Why        string
}

// needs lists, per feature, the permissions the applier uses.
var needs = map[string][]Need{
	FeatureIssues: {
		{FeatureIssues, "BROWSE_PROJECTS", "see and poll the project's issues"},
		{FeatureIssues, "CREATE_ISSUES", "create the copies of the partner's issues"},
		{FeatureIssues, "EDIT_ISSUES", "write the partner's field changes"},
	},
	FeatureWorkflows: {
		{FeatureWorkflows, "TRANSITION_ISSUES", "move issues to the partner's status"},
		{FeatureWorkflows, "ADMINISTER_PROJECTS", "read the project's workflow to find the shortest path of transitions"},
	},
	FeatureComments: {
		{FeatureComments, "ADD_COMMENTS", "add the partner's comments"},
		{FeatureComments, "EDIT_OWN_COMMENTS", "apply edits of the partner's comments"},
		{FeatureComments, "DELETE_OWN_COMMENTS", "apply deletions of the partner's comments"},
	},
	FeatureCommentEditsToOriginals: {
		{FeatureCommentEditsToOriginals, "EDIT_ALL_COMMENTS", "apply a partner person's edit of the bridge's copy to the original comment here, " +
			"which a person wrote; without it comments still sync and only such edits park"},
	},
	FeatureCommentDeletesToOriginals: {
		{FeatureCommentDeletesToOriginals, "DELETE_ALL_COMMENTS", "apply a partner person's deletion of the bridge's copy to the original comment here, " +
			"which a person wrote; without it comments still sync and only such deletions park"},
	},
	FeatureAttachments: {
		{FeatureAttachments, "CREATE_ATTACHMENTS", "upload the partner's attachments"},
		{FeatureAttachments, "DELETE_OWN_ATTACHMENTS", "apply deletions of the partner's attachments"},
	},
	FeatureAttachmentDeletesToOriginals: {
		{FeatureAttachmentDeletesToOriginals, "DELETE_ALL_ATTACHMENTS", "apply a partner person's deletion of the bridge's copy to the original attachment here, " +
			"which a person added; without it attachments still sync and only such deletions park"},
	},
	FeatureWatchers: {
		{FeatureWatchers, "MANAGE_WATCHERS", "add and remove the partner's watchers"},
	},
	FeatureLinks: {
		{FeatureLinks, "LINK_ISSUES", "create and remove the partner's issue links"},
	},
	FeatureSubtasks: {
		{FeatureSubtasks, "CREATE_ISSUES", "create the partner's sub-tasks"},
	},
}

// Features returns the features a sync definition switches on, in table
// order. Issues and workflows are always on. Comments bring the write-back
// of edits and deletions to originals, attachments that of deletions,
// each its own feature so that a missing *_ALL_* permission refuses only
// the write-back.
func Features(def *config.SyncDef) []string {
	fs := []string{FeatureIssues, FeatureWorkflows}
	if def == nil {
		return fs
	}
	for _, f := range []struct {
		on    bool
		names []string
	}{{def.Comments.Enabled, []string{FeatureComments, FeatureCommentEditsToOriginals, FeatureCommentDeletesToOriginals}},
		{def.Attachments.Enabled, []string{FeatureAttachments, FeatureAttachmentDeletesToOriginals}},
		{def.Watchers.Enabled, []string{FeatureWatchers}}, {def.Links.Enabled, []string{FeatureLinks}}, {def.Subtasks.Enabled, []string{FeatureSubtasks}}} {
		if f.on {
			fs = append(fs, f.names...)
		}
	}
	return fs
}

// IsWriteBack reports whether a feature is the write-back of a partner's
// edit or deletion to an original here: without it the feature it belongs
// to (comments, attachments) still runs, and only such changes park.
func IsWriteBack(feature string) bool {
	switch feature {
	case FeatureCommentEditsToOriginals, FeatureCommentDeletesToOriginals, FeatureAttachmentDeletesToOriginals:
		return true
	}
	return false
}

// Needs returns what a feature needs; nil for an unknown feature.
func Needs(feature string) []Need { return append([]Need(nil), needs[feature]...) }

// Row is one line of the check: a permission a feature needs and whether
// the sync user has it.
type Row struct {
	Feature    string
	Permission string
	Present    bool
	// WhatToDo says how to fix a missing permission; empty when present.
	WhatToDo string
}

// Check asks Jira (one mypermissions call) which of the permissions the
// features need the client's user holds in the project.
func Check(ctx context.Context, c *jira.Client, projectKey string, features []string) ([]Row, error) {
	var keys []string
	seen := map[string]bool{}
	for _, f := range features {
		ns, ok := needs[f]
		if !ok {
			return nil, fmt.Errorf("check permissions: unknown feature %q (known: %s)", f, strings.Join(known(), ", "))
		}
		for _, n := range ns {
			if !seen[n.Permission] {
				seen[n.Permission] = true
				keys = append(keys, n.Permission)
			}
		}
	}
	have, err := c.MyPermissions(ctx, projectKey, keys)
	if err != nil {
		return nil, fmt.Errorf("ask Jira for the sync user's permissions in %s: %w", projectKey, err)
	}
	var rows []Row
	for _, f := range features {
		for _, n := range needs[f] {
			r := Row{Feature: f, Permission: n.Permission, Present: have[n.Permission]}
			if !r.Present {
				r.WhatToDo = fmt.Sprintf("grant %s to the sync user %q in the permission scheme of project %s (needed to %s)",
					n.Permission, c.Username(), projectKey, n.Why)
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func known() []string {
	return []string{FeatureIssues, FeatureWorkflows, FeatureComments, FeatureCommentEditsToOriginals, FeatureCommentDeletesToOriginals,
		FeatureAttachments, FeatureAttachmentDeletesToOriginals, FeatureWatchers, FeatureLinks, FeatureSubtasks}
}

// Missing returns the rows whose permission is missing.
func Missing(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if !r.Present {
			out = append(out, r)
		}
	}
	return out
}

// Blocked returns the features with at least one missing permission, in
// row order.
func Blocked(rows []Row) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rows {
		if !r.Present && !seen[r.Feature] {
			seen[r.Feature] = true
			out = append(out, r.Feature)
		}
	}
	return out
}

// Error is the refusal to start features whose permissions are missing.
type Error struct {
	Project string
	Rows    []Row // the missing ones
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the sync user lacks %d Jira permission(s) in %s; these features cannot start: %s",
		len(e.Rows), e.Project, strings.Join(Blocked(e.Rows), ", "))
	for _, r := range e.Rows {
		fmt.Fprintf(&b, "\n  - %s: %s", r.Feature, r.WhatToDo)
	}
	return b.String()
}

// Require returns an *Error when any row is missing, else nil.
func Require(project string, rows []Row) error {
	if m := Missing(rows); len(m) > 0 {
		return &Error{Project: project, Rows: m}
	}
	return nil
}

// Print writes the rows as a table: feature, permission, present or
// missing, what to do.
func Print(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tPERMISSION\tSTATUS\tWHAT TO DO")
	for _, r := range rows {
		st, todo := "present", "-"
		if !r.Present {
			st, todo = "MISSING", r.WhatToDo
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Feature, r.Permission, st, todo)
	}
	return tw.Flush()
}
