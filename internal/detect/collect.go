package detect

import (
	"context"
	"strconv"
	"time"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Collector finds one kind of change in an issue that detection fetched:
// the changelog (built in), and in later issues comments, attachments,
// watchers and links. Collectors only read: the detector writes what they
// return, with the sent records they name, in the issue's transaction.
type Collector interface {
	// Name labels the collector in errors and logs ("comments").
	Name() string
	// Needs lists the fields and expand values the issue fetch must
	// include for Collect.
	Needs() (fields, expand []string)
	// Collect returns the changes not sent yet. It may call Jira through
	// in.Jira (comments beyond the first page, watchers). An error fails
	// the poll (the cursor stays); an unmappable item is a Found with Err.
	Collect(ctx context.Context, in *Input) ([]Found, error)
}

// Found is one change a collector found.
type Found struct {
	Change wire.Change
	// At orders changes of one issue across collectors (Jira time).
	At time.Time
	// Sent is what to record as sent once the change is durable.
	Sent []store.SentItem
	// Err, when set, says the item cannot be mapped: the issue's outgoing
	// changes park here (a failure record) until fixed, retried or skipped.
	Err error
	// Skips are items left out on purpose, to list in status (see
	// Input.Skip); Unskips are listed ones that no longer apply. Both
	// are written with Sent.
	Skips   []store.Skip
	Unskips []store.SkipKey
}

// Input is what a collector gets about one issue.
type Input struct {
	Issue    *jira.Issue // with the fields and expands Needs asked for
	Mapping  *mapping.Mapping
	SyncUser string
	Jira     *jira.Client

	sent map[sentKey]string
	d    *Detector
	// deferred: a collector left part of the issue for a later poll (the
	// applier's write in flight), so the issue is not recorded as
	// examined in full (KindPolled).
	deferred bool
	// comments: the issue's comments, read once per examination (a
	// resync's comment pass reads what Collect read).
	comments     []jira.CommentWithProps
	commentsRead bool
}

// Comments returns the issue's comments with their properties, asking
// Jira once per examination of the issue.
func (in *Input) Comments(ctx context.Context) ([]jira.CommentWithProps, error) {
	if in.commentsRead {
		return in.comments, nil
	}
	cms, err := in.Jira.CommentsWithProps(ctx, in.Issue.ID)
	if err != nil {
		return nil, err
	}
	in.comments, in.commentsRead = cms, true
	return cms, nil
}

type sentKey struct{ kind, id string }

// SentVersion returns the version recorded for an item of this issue; ok
// is false when it was never sent.
func (in *Input) SentVersion(kind, itemID string) (version string, ok bool) {
	v, ok := in.sent[sentKey{kind, itemID}]
	return v, ok
}

// SentItem builds a sent record for an item of this issue.
func (in *Input) SentItem(kind, itemID, version string) store.SentItem {
	return in.d.sentItem(in.Issue.ID, kind, itemID, version)
}

// ChangeID builds the change id of an item (see Detector.ChangeID).
func (in *Input) ChangeID(item string) string { return in.d.ChangeID(item) }

// IsSyncUser reports whether u is the sync user (its changes are echoes).
func (in *Input) IsSyncUser(u *jira.User) bool {
	return u != nil && (u.Name == in.SyncUser || u.Key == in.SyncUser)
}

// Baseline is the newest history id covered by a create or resync
// snapshot: entries up to it are never sent.
func (in *Input) Baseline() int64 {
	v, _ := in.sent[sentKey{KindBaseline, ""}]
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// Author is how the user policy sends u; nil when it sends nobody.
func (in *Input) Author(u *jira.User) *wire.User {
	if u == nil {
		return nil
	}
	wu, ok := in.Mapping.OutgoingUser(u)
	if !ok {
		return nil
	}
	return &wu
}

func (in *Input) createdBySyncUser() bool {
	var creator jira.User
	if ok, _ := in.Issue.Field("creator", &creator); ok {
		return in.IsSyncUser(&creator)
	}
	return false
}

func (in *Input) issueTypeAlias() (string, bool) {
	var t struct{ Name string }
	if ok, _ := in.Issue.Field("issuetype", &t); !ok {
		return "", false
	}
	return in.Mapping.IssueTypeAlias(t.Name)
}

// echo reports whether a history entry is the bridge's own.
func (in *Input) echo(h jira.History) bool {
	if in.IsSyncUser(h.Author) {
		return true
	}
	return h.HistoryMetadata != nil && h.HistoryMetadata.Type == HistoryMetadataType
}

// changelogCollector turns people's history entries into IssueUpdate
// (fields and status) and IssueMove (issue type) changes, one per entry,
// with the id "<sync>/<node>/h<history id>".
type changelogCollector struct{}

func (changelogCollector) Name() string                     { return "changelog" }
func (changelogCollector) Needs() (fields, expand []string) { return nil, []string{"changelog"} }

func (changelogCollector) Collect(ctx context.Context, in *Input) ([]Found, error) {
	is := in.Issue
	if is.Changelog == nil {
		return nil, nil
	}
	base := in.Baseline()
	want := func(h jira.History) bool {
		if in.echo(h) {
			return false
		}
		if n, err := strconv.ParseInt(h.ID, 10, 64); err == nil && n <= base {
			return false
		}
		_, sent := in.SentVersion(KindChangelog, h.ID)
		return !sent
	}
	changes, errs, err := in.Mapping.HistoryChanges(ctx, is, want)
	if err != nil {
		return nil, err
	}
	byID := map[string]mapping.HistoryChange{}
	for _, c := range changes {
		byID[c.History.ID] = c
	}
	var out []Found
	for _, h := range is.Changelog.Histories {
		if !want(h) {
			continue
		}
		ch := wire.Change{
			ID: in.ChangeID("h" + h.ID), IssueID: is.ID, IssueKey: is.Key, Kind: wire.IssueUpdate,
			At: h.Created.Time, Author: in.Author(h.Author),
		}
		f := Found{At: h.Created.Time, Sent: []store.SentItem{in.SentItem(KindChangelog, h.ID, "")}}
		if e := errs[h.ID]; e != nil {
			f.Change, f.Err = ch, e
			out = append(out, f)
			continue
		}
		if hc, ok := byID[h.ID]; ok {
			ch.Fields = hc.Fields
		}
		for _, it := range h.Items {
			switch it.Field {
			case "issuetype":
				if it.ToString == nil {
					continue
				}
				a, ok := in.Mapping.IssueTypeAlias(*it.ToString)
				if !ok {
					f.Change, f.Err = ch, mappingTypeError(is, *it.ToString)
					break
				}
				ch.Kind, ch.IssueType = wire.IssueMove, a
			case "status":
				if it.ToString == nil {
					continue
				}
				if a, ok := in.Mapping.StatusAlias(*it.ToString); ok {
					ch.Status = a
				}
			}
		}
		if f.Err != nil {
			out = append(out, f)
			continue
		}
		if len(ch.Fields) == 0 && ch.IssueType == "" && ch.Status == "" {
			continue // touched nothing the sync carries
		}
		f.Change = ch
		out = append(out, f)
	}
	return out, nil
}

func mappingTypeError(is *jira.Issue, name string) error {
	key := is.Key
	if key == "" {
		key = is.ID
	}
	return mapping.UnmappedIssueType(key, name)
}
