package apply

import (
	"context"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Mapping is what the applier needs from the sync's mapping: aliases on the
// wire to the local Jira's names and values, and the local values back to
// wire values so the applier writes only what differs. *mapping.Mapping
// implements it.
//
// Errors from the mapping are mapping errors (errclass Permanent, reason
// "mapping"): the applier returns them so the issue's lane parks, never a
// silent drop.
type Mapping interface {
	IssueTypeName(issue, alias string) (string, error)
	IssueTypeAlias(name string) (alias string, ok bool)
	StatusName(issue, alias string) (string, error)
	StatusAlias(name string) (alias string, ok bool)
	// Incoming translates the peer's value of a field; ok is false when
	// nothing is written here (not mapped, direction, user policy).
	Incoming(ctx context.Context, issue, alias string, v wire.Value) (a mapping.Assignment, ok bool, err error)
	// AllValues is the current wire value of every mapped field.
	AllValues(ctx context.Context, is *jira.Issue) (map[string]wire.Value, error)
	// HistoryChanges gives, per changelog entry that want accepts, the
	// wire before and after of each sent field it really changed.
	HistoryChanges(ctx context.Context, is *jira.Issue, want func(jira.History) bool) ([]mapping.HistoryChange, map[string]error, error)
	// FieldByAlias finds a mapped field (for its direction).
	FieldByAlias(alias string) (*mapping.Field, bool)
	// FieldByHistory finds the mapped field a changelog item is about.
	FieldByHistory(it jira.HistoryItem) (*mapping.Field, bool)
}

var _ Mapping = (*mapping.Mapping)(nil)
