package detect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
)

// This file keeps the list of what detection leaves out on purpose (store
// content_skips, direction outgoing) for `jirabridge status`: collectors
// put the skips they see, and the ones that no longer apply, on their
// Found, so the list commits with the sent records in the issue's
// transaction and is never ahead of or behind what was sent.

// SkipKey names an outgoing skipped item of this issue.
func (in *Input) SkipKey(kind store.SkipKind, item string) store.SkipKey {
	return store.SkipKey{SyncID: in.d.o.SyncID, Direction: store.SkipOutgoing, IssueID: in.Issue.ID, Kind: kind, Item: item}
}

// Skip builds the outgoing skip record of an item of this issue; reason
// says why and what the operator can do.
func (in *Input) Skip(kind store.SkipKind, item, reason string) store.Skip {
	return store.Skip{SkipKey: in.SkipKey(kind, item), IssueKey: in.Issue.Key, Reason: reason}
}

// writeSkips records and clears the skips of the found changes that are
// written, inside the issue's transaction.
func writeSkips(tx *store.Tx, skips []store.Skip, unskips []store.SkipKey) error {
	for _, k := range unskips {
		if _, err := tx.SkipClear(k); err != nil {
			return err
		}
	}
	for _, s := range skips {
		if err := tx.SkipRecord(s); err != nil {
			return err
		}
	}
	return nil
}

func restrictedReason(cm *jira.CommentWithProps, cfg config.Comments) string {
	what := "an internal comment (Jira Service Management)"
	if !cm.Internal() && cm.Visibility != nil {
		what = fmt.Sprintf("restricted to %s %q", cm.Visibility.Type, cm.Visibility.Value)
	}
	if cfg.Restricted != config.RestrictedMap {
		return fmt.Sprintf("comment is %s and comments.restricted is skip: it never leaves this Jira; to sync such comments set comments.restricted: map and map the restriction in comments.visibility", what)
	}
	return fmt.Sprintf("comment is %s, which comments.visibility does not map: add it there to sync such comments (it is sent when next edited)", what)
}

func attachmentReason(a jira.Attachment, cfg config.Attachments) string {
	name := fmt.Sprintf("attachment %s (%s, %s)", a.Filename, humanSize(a.Size), a.MimeType)
	var why []string
	if a.Size > int64(cfg.MaxSizeMB)<<20 {
		why = append(why, fmt.Sprintf("is over attachments.max_size_mb %d", cfg.MaxSizeMB))
	}
	if !(config.Attachments{MaxSizeMB: cfg.MaxSizeMB, MIMETypes: cfg.MIMETypes}).Allows(a.Filename, a.MimeType, 0) {
		why = append(why, "has a type that attachments.mime_types does not list")
	}
	if !(config.Attachments{MaxSizeMB: cfg.MaxSizeMB, FilenamePatterns: cfg.FilenamePatterns}).Allows(a.Filename, a.MimeType, 0) {
		why = append(why, "has a name that attachments.filename_patterns does not match")
	}
	if len(why) == 0 {
		why = append(why, "is filtered")
	}
	return name + " " + strings.Join(why, " and ") + ": widen the filter to sync such attachments (this one is not sent again)"
}

func unmappableWatcherReason(u *jira.User, policy config.UsersPolicy) string {
	return fmt.Sprintf("user %s has no match under the user policy (users.mode %s sends no people): choose another users.mode to sync watchers",
		userName(u), policy.Mode)
}

func userName(u *jira.User) string {
	switch {
	case u == nil:
		return "(unknown)"
	case u.DisplayName != "" && u.DisplayName != u.Name:
		return fmt.Sprintf("%s (%s)", u.Name, u.DisplayName)
	}
	return u.Name
}

func linkTypeReason(typeName string) string {
	return fmt.Sprintf("link type %q is not in links.types of the sync definition: add it there (the link is sent once mapped, after a restart)", typeName)
}

func unsyncedLinkReason(other *jira.LinkedIs, unpaired bool) string {
	key := other.Key
	if key == "" {
		key = other.ID
	}
	if unpaired {
		return fmt.Sprintf("other end %s is no longer synced: its partner issue was deleted on the peer's side, so the link has nothing to point to there", key)
	}
	return fmt.Sprintf("other end %s is not in the sync (not matching the sync's JQL, or of an issue type not synced): the link follows when %s is brought into the sync", key, key)
}

// isSkippedLink reports whether a KindLink record is a link left out (type
// not mapped or other end not synced): such links are looked at again each
// time the issue is, so they go once the cause is fixed.
func isSkippedLink(version string) bool {
	state, _, _ := ParseLinkVersion(version)
	return state == LinkSkipped
}

// recheckSkipped runs on the first poll after a start and then every
// WatcherSweepEvery polls: it forgets the skipped items of issues that
// left the sync (or were deleted), which detection no longer looks at,
// and looks again at skipped links.
func (d *Detector) recheckSkipped(ctx context.Context, res *Result, hasCursor bool) error {
	if !hasCursor {
		return nil
	}
	first := d.skipChecks == 0
	d.skipChecks++
	if (d.skipChecks-1)%d.o.WatcherSweepEvery != 0 {
		return nil
	}
	if err := d.forgetDeparted(ctx); err != nil {
		return err
	}
	if !d.hasCollector("links") {
		return nil
	}
	return d.recheckSkippedLinks(ctx, res, first)
}

// forgetDeparted clears the outgoing skips of issues the sync no longer
// selects.
func (d *Detector) forgetDeparted(ctx context.Context) error {
	var issues []string
	if err := d.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		issues, err = tx.SkipIssues(d.o.SyncID, store.SkipOutgoing)
		return err
	}); err != nil {
		return fmt.Errorf("list issues with skipped items: %w", err)
	}
	if len(issues) == 0 {
		return nil
	}
	in, err := d.inSync(ctx, issues)
	if err != nil {
		return err
	}
	var gone []string
	for _, id := range issues {
		if !in[id] {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if err := d.o.Store.Update(ctx, func(tx *store.Tx) error {
		for _, id := range gone {
			if _, err := tx.SkipClearIssue(d.o.SyncID, store.SkipOutgoing, id); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("forget skipped items of issues that left the sync: %w", err)
	}
	d.log.Info("forgot skipped items of issues that left the sync", "issues", len(gone))
	return nil
}

// recheckSkippedLinks looks again at the issues whose links were left out:
// on the first poll after a start (the link types may have been mapped)
// every such issue; otherwise those whose other end is now in the sync.
// Nothing else would bring them back: the other end joining the sync
// leaves the issue's updated time alone.
func (d *Detector) recheckSkippedLinks(ctx context.Context, res *Result, first bool) error {
	type pending struct{ issue, other string }
	var ps []pending
	err := d.o.Store.View(ctx, func(tx *store.Tx) error {
		for off := 0; ; off += 500 {
			ss, err := tx.SkipList(d.o.SyncID, store.SkipQuery{Direction: store.SkipOutgoing, Kind: store.SkipLink, Offset: off, Limit: 500})
			if err != nil {
				return err
			}
			for _, s := range ss {
				v, ok, err := tx.SentGet(d.o.SyncID, s.IssueID, KindLink, s.Item)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				state, alias, other := ParseLinkVersion(v)
				switch {
				case state != LinkSkipped:
				case alias == "" && first:
					ps = append(ps, pending{issue: s.IssueID})
				case alias != "":
					synced, unpaired, err := pairedOrSent(tx, d.o.SyncID, other)
					if err != nil {
						return err
					}
					if unpaired {
						continue // for good: nothing brings it back
					}
					if synced {
						ps = append(ps, pending{issue: s.IssueID})
					} else {
						ps = append(ps, pending{issue: s.IssueID, other: other})
					}
				}
			}
			if len(ss) < 500 {
				return nil
			}
		}
	})
	if err != nil {
		return fmt.Errorf("list skipped links: %w", err)
	}
	// Other ends not paired nor sent: one search tells which ones the
	// sync's JQL now selects with a synced issue type.
	var others []string
	for _, p := range ps {
		if p.other != "" {
			others = append(others, p.other)
		}
	}
	inSync, err := d.inSync(ctx, dedupe(others))
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, p := range ps {
		if done[p.issue] || (p.other != "" && !inSync[p.other]) {
			continue
		}
		done[p.issue] = true
		if _, err := d.scan(ctx, fmt.Sprintf("(%s) AND id = %s", d.o.JQL, p.issue), res, mode{}); err != nil {
			return fmt.Errorf("look again at the skipped links of issue %s: %w", p.issue, err)
		}
	}
	return nil
}

// pairedOrSent reports whether a local issue is paired or was sent as new
// (synced), or had its pair dissolved because its partner was deleted
// (unpaired: it was sent once, and is not synced any more).
func pairedOrSent(tx *store.Tx, syncID, issueID string) (synced, unpaired bool, err error) {
	if _, err := tx.PairByLocal(syncID, issueID); err == nil {
		return true, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, false, err
	}
	if _, unpaired, err = tx.SentGet(syncID, issueID, KindUnpaired, ""); err != nil || unpaired {
		return false, unpaired, err
	}
	_, sent, err := tx.SentGet(syncID, issueID, KindCreate, issueID)
	return sent, false, err
}

// inSync returns which of the issue ids the sync's JQL selects with an
// issue type the sync maps, 50 ids a search.
func (d *Detector) inSync(ctx context.Context, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			out[id] = true // not an id JQL takes: leave it be
			return true
		}
		return false
	})
	for len(ids) > 0 {
		n := min(len(ids), 50)
		batch := ids[:n]
		ids = ids[n:]
		jql := fmt.Sprintf("(%s) AND id in (%s)", d.o.JQL, strings.Join(batch, ","))
		err := d.o.Jira.SearchAll(ctx, jql, []string{"issuetype"}, nil, func(is jira.Issue) error {
			var t struct{ Name string }
			if ok, _ := is.Field("issuetype", &t); ok {
				if _, ok := d.o.Mapping.IssueTypeAlias(t.Name); ok {
					out[is.ID] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("which issues does the sync select: %w", err)
		}
	}
	return out, nil
}

// hasCollector reports whether the named collector runs; the caller
// holds d.mu.
func (d *Detector) hasCollector(name string) bool {
	for _, c := range d.collectors {
		if c.Name() == name {
			return true
		}
	}
	return false
}
