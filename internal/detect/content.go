package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Sent item kinds of the content collectors. Detection and the applier
// share them: the applier records the items it writes so detection never
// sends them back, and records the pairing of a copy with its original.
const (
	// KindComment: a comment (ItemID its id) was sent or written by the
	// bridge; Version is its updated time in ms, or VersionDeleted.
	KindComment = "comment"
	// KindCommentPeer: the comment (ItemID) is the bridge's copy of the
	// peer's comment whose id is Version.
	KindCommentPeer = "comment-peer"
	// KindAttachment: an attachment (ItemID) was sent or written by the
	// bridge; Version is "", VersionDeleted or VersionFiltered.
	KindAttachment = "attachment"
	// KindAttachmentPeer: the attachment (ItemID) is the bridge's copy of
	// the peer's attachment whose id is Version.
	KindAttachmentPeer = "attachment-peer"
	// KindWatchers: the watcher snapshot last sent or written (ItemID "",
	// Version the sorted local usernames, one a line).
	KindWatchers = "watchers"
	// KindLink: an issue link (ItemID) where this issue is the outward
	// end; Version is LinkVersion(state, type alias, other issue id).
	KindLink = "link"
)

// Versions of content sent items.
const (
	VersionDeleted  = "deleted"
	VersionFiltered = "filtered"
	// versionRestricted+<updated ms>: a comment seen restricted and not
	// sent; sent when it becomes public.
	versionRestricted = "restricted@"
)

// Link states in a KindLink version.
const (
	LinkActive  = "active"
	LinkRemoved = "removed"
	LinkSkipped = "skipped" // the other end is not synced, or the type is not mapped
)

// LinkVersion builds the version of a KindLink record.
func LinkVersion(state, typeAlias, otherIssueID string) string {
	return state + "|" + typeAlias + "|" + otherIssueID
}

// ParseLinkVersion splits a KindLink version.
func ParseLinkVersion(v string) (state, typeAlias, otherIssueID string) {
	parts := strings.SplitN(v, "|", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

// MillisVersion is the version of a KindComment record: Jira's updated
// time in milliseconds.
func MillisVersion(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// ContentStats counts what the content collectors left out, for status.
type ContentStats struct {
	// UnmappableWatchers: watchers the user policy cannot send.
	UnmappableWatchers atomic.Int64
	// SkippedLinks: links whose other end is not synced or whose type is
	// not mapped.
	SkippedLinks atomic.Int64
	// FilteredAttachments: attachments over the size limit or filtered by
	// type or name.
	FilteredAttachments atomic.Int64
	// RestrictedComments: comments not sent for their visibility.
	RestrictedComments atomic.Int64
}

// ContentCollectors returns the collectors the sync definition switches
// on (comments, attachments, watchers, links, sub-tasks), in that order.
// stats may be nil.
func ContentCollectors(def *config.SyncDef, stats *ContentStats) []Collector {
	if def == nil {
		return nil
	}
	if stats == nil {
		stats = &ContentStats{}
	}
	var out []Collector
	if def.Comments.Enabled {
		out = append(out, &commentCollector{cfg: def.Comments, suffix: def.Users.DisplaySuffix, stats: stats})
	}
	if def.Attachments.Enabled {
		out = append(out, &attachmentCollector{cfg: def.Attachments, stats: stats})
	}
	if def.Watchers.Enabled {
		out = append(out, &watcherCollector{stats: stats})
	}
	if def.Links.Enabled {
		out = append(out, &linkCollector{stats: stats})
	}
	if def.Subtasks.Enabled {
		out = append(out, subtaskCollector{})
	}
	return out
}

// ---- comments ----

type commentCollector struct {
	cfg    config.Comments
	suffix string
	stats  *ContentStats
}

func (*commentCollector) Name() string                     { return "comments" }
func (*commentCollector) Needs() (fields, expand []string) { return nil, nil }

// visibility maps a local restriction to the wire; send is false when the
// comment must not leave this Jira.
func (c *commentCollector) visibility(cm *jira.CommentWithProps) (v *wire.Visibility, send bool) {
	internal := cm.Internal()
	if !internal && cm.Visibility == nil {
		return nil, true
	}
	if c.cfg.Restricted != config.RestrictedMap {
		return nil, false
	}
	for _, m := range c.cfg.Visibility {
		switch {
		case internal && m.Type == "internal":
			return &wire.Visibility{Type: "internal", Value: m.Alias}, true
		case !internal && cm.Visibility != nil && m.Type == cm.Visibility.Type && m.Value == cm.Visibility.Value:
			return &wire.Visibility{Type: m.Type, Value: m.Alias}, true
		}
	}
	return nil, false
}

func (c *commentCollector) Collect(ctx context.Context, in *Input) ([]Found, error) {
	is := in.Issue
	cms, err := in.Comments(ctx)
	if err != nil {
		return nil, fmt.Errorf("read comments: %w", err)
	}
	var out []Found
	present := map[string]bool{}
	for i := range cms {
		cm := &cms[i]
		present[cm.ID] = true
		ver, sent := in.SentVersion(KindComment, cm.ID)
		peerID, isCopy := in.SentVersion(KindCommentPeer, cm.ID)
		upd := MillisVersion(cm.Updated.Time)
		if sent && (ver == upd || ver == VersionDeleted || ver == versionRestricted+upd) {
			continue
		}
		if strings.HasPrefix(ver, versionRestricted) {
			sent = false // never sent: it was restricted when last seen
		}
		vis, ok := c.visibility(cm)
		if !ok {
			// Never leaves: internal or restricted without a mapping. The
			// record keeps it from being counted again until it changes.
			if !sent {
				c.stats.RestrictedComments.Add(1)
				out = append(out, Found{At: cm.Updated.Time, Sent: []store.SentItem{in.SentItem(KindComment, cm.ID, versionRestricted+upd)},
					Skips: []store.Skip{in.Skip(store.SkipComment, cm.ID, restrictedReason(cm, c.cfg))}})
			}
			continue
		}
		if !sent {
			if in.IsSyncUser(cm.Author) {
				continue // the bridge's copy (or notice): an echo
			}
			out = append(out, Found{At: cm.Created.Time,
				Change: wire.Change{ID: in.ChangeID("m" + cm.ID), IssueID: is.ID, IssueKey: is.Key, Kind: wire.CommentAdd,
					At: cm.Created.Time, Author: in.Author(cm.Author), Comment: &wire.Comment{ID: cm.ID, Body: cm.Body, Visibility: vis}},
				Sent: []store.SentItem{in.SentItem(KindComment, cm.ID, upd)}, Unskips: []store.SkipKey{in.SkipKey(store.SkipComment, cm.ID)}})
			continue
		}
		// Sent before and updated since.
		if in.IsSyncUser(cm.UpdateAuthor) {
			continue // the bridge's own edit; the applier records it
		}
		body := cm.Body
		wc := &wire.Comment{ID: cm.ID, Body: body, Visibility: vis}
		author := in.Author(cm.Author)
		if isCopy {
			wc.PeerID = peerID
			wc.Body = StripAuthorLine(body, c.suffix)
			author = in.Author(cm.UpdateAuthor)
		}
		out = append(out, Found{At: cm.Updated.Time,
			Change: wire.Change{ID: in.ChangeID("m" + cm.ID + "/e" + upd), IssueID: is.ID, IssueKey: is.Key, Kind: wire.CommentEdit,
				At: cm.Updated.Time, Author: author, Comment: wc},
			Sent: []store.SentItem{in.SentItem(KindComment, cm.ID, upd)}})
	}
	// Deletions: sent (or bridge-written) comments that are gone.
	for _, id := range in.sentIDs(KindComment) {
		if present[id] {
			continue
		}
		v, _ := in.SentVersion(KindComment, id)
		if strings.HasPrefix(v, versionRestricted) { // never sent: no longer listed as skipped
			out = append(out, Found{At: is.Updated(), Sent: []store.SentItem{in.SentItem(KindComment, id, VersionDeleted)}, Unskips: []store.SkipKey{in.SkipKey(store.SkipComment, id)}})
		}
		if v == VersionDeleted || strings.HasPrefix(v, versionRestricted) {
			continue
		}
		wc := &wire.Comment{ID: id}
		if peerID, ok := in.SentVersion(KindCommentPeer, id); ok {
			wc.PeerID = peerID
		}
		at := is.Updated()
		out = append(out, Found{At: at,
			Change: wire.Change{ID: in.ChangeID("m" + id + "/d"), IssueID: is.ID, IssueKey: is.Key, Kind: wire.CommentDelete, At: at, Comment: wc},
			Sent:   []store.SentItem{in.SentItem(KindComment, id, VersionDeleted)}})
	}
	sortFound(out)
	return out, nil
}

// AuthorLine is the first line of the bridge's copy of a comment: who wrote
// it on the other side, e.g. "Alice Smith (Partner Jira):".
func AuthorLine(who string) string { return who + ":" }

// StripAuthorLine removes the author line the bridge put in front of a
// copied comment, so an edit of the copy carries only the text. suffix is
// the policy's display suffix ("(Partner Jira)"); a first line that ends
// with it and a colon, or that is a user mention, is the author line.
func StripAuthorLine(body, suffix string) string {
	first, rest, ok := strings.Cut(body, "\n")
	if !ok {
		return body
	}
	first = strings.TrimSpace(first)
	switch {
	case suffix != "" && strings.HasSuffix(first, suffix+":"):
		return rest
	case strings.HasPrefix(first, "[~") && strings.HasSuffix(first, "]:"):
		return rest
	}
	return body
}

// ---- attachments ----

type attachmentCollector struct {
	cfg   config.Attachments
	stats *ContentStats
}

func (*attachmentCollector) Name() string { return "attachments" }
func (*attachmentCollector) Needs() (fields, expand []string) {
	return []string{"attachment"}, nil
}

func (c *attachmentCollector) Collect(ctx context.Context, in *Input) ([]Found, error) {
	is := in.Issue
	var as []jira.Attachment
	if _, err := is.Field("attachment", &as); err != nil {
		return nil, err
	}
	var out []Found
	present := map[string]bool{}
	for _, a := range as {
		present[a.ID] = true
		if _, sent := in.SentVersion(KindAttachment, a.ID); sent {
			continue
		}
		if in.IsSyncUser(a.Author) {
			continue // the bridge's copy: an echo
		}
		at := a.Created.Time
		if !c.cfg.Allows(a.Filename, a.MimeType, a.Size) {
			c.stats.FilteredAttachments.Add(1)
			f := Found{At: at, Sent: []store.SentItem{in.SentItem(KindAttachment, a.ID, VersionFiltered)},
				Skips: []store.Skip{in.Skip(store.SkipAttachment, a.ID, attachmentReason(a, c.cfg))}}
			if c.cfg.NoticeOnSkip {
				f.Change = wire.Change{ID: in.ChangeID("a" + a.ID + "/n"), IssueID: is.ID, IssueKey: is.Key, Kind: wire.CommentAdd, At: at,
					Comment: &wire.Comment{ID: "notice-" + a.ID, Body: c.notice(a)}}
			} else {
				f.Change = wire.Change{} // recorded only
			}
			out = append(out, f)
			continue
		}
		data, err := in.Jira.DownloadAttachment(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("download attachment %s (%s): %w", a.ID, a.Filename, err)
		}
		sum := sha256.Sum256(data)
		out = append(out, Found{At: at,
			Change: wire.Change{ID: in.ChangeID("a" + a.ID), IssueID: is.ID, IssueKey: is.Key, Kind: wire.AttachmentAdd, At: at,
				Author: in.Author(a.Author), Attachment: &wire.Attachment{ID: a.ID, Filename: a.Filename, MimeType: a.MimeType,
					Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Data: data}},
			Sent: []store.SentItem{in.SentItem(KindAttachment, a.ID, "")}})
	}
	for _, id := range in.sentIDs(KindAttachment) {
		v, _ := in.SentVersion(KindAttachment, id)
		if !present[id] && v == VersionFiltered { // never sent: no longer listed as skipped
			out = append(out, Found{At: is.Updated(), Sent: []store.SentItem{in.SentItem(KindAttachment, id, VersionDeleted)}, Unskips: []store.SkipKey{in.SkipKey(store.SkipAttachment, id)}})
		}
		if present[id] || v == VersionDeleted || v == VersionFiltered {
			continue
		}
		wa := &wire.Attachment{ID: id}
		if peerID, ok := in.SentVersion(KindAttachmentPeer, id); ok {
			wa.PeerID = peerID
		}
		at := is.Updated()
		out = append(out, Found{At: at,
			Change: wire.Change{ID: in.ChangeID("a" + id + "/d"), IssueID: is.ID, IssueKey: is.Key, Kind: wire.AttachmentDelete, At: at, Attachment: wa},
			Sent:   []store.SentItem{in.SentItem(KindAttachment, id, VersionDeleted)}})
	}
	sortFound(out)
	return out, nil
}

func (c *attachmentCollector) notice(a jira.Attachment) string {
	why := "its type or name is not synced"
	if a.Size > int64(c.cfg.MaxSizeMB)<<20 {
		why = fmt.Sprintf("it is larger than %d MB", c.cfg.MaxSizeMB)
	}
	return fmt.Sprintf("Attachment %q (%s) was not synced: %s.", a.Filename, humanSize(a.Size), why)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// ---- watchers ----

type watcherCollector struct{ stats *ContentStats }

func (*watcherCollector) Name() string                     { return "watchers" }
func (*watcherCollector) Needs() (fields, expand []string) { return []string{"reporter"}, nil }

// WatcherSnapshot is the version of a KindWatchers record with sequence
// 0; see WatcherRecord.
func WatcherSnapshot(names []string) string { return WatcherRecord(0, names) }

// WatcherRecord is the version of a KindWatchers record: "#<seq>" and the
// sorted local usernames, one a line. seq counts the snapshots detection
// sent, so a watcher who leaves and comes back gets a new change id.
func WatcherRecord(seq int, names []string) string {
	s := append([]string(nil), names...)
	sort.Strings(s)
	return strings.Join(append([]string{"#" + strconv.Itoa(seq)}, s...), "\n")
}

// ParseWatcherRecord splits a KindWatchers version.
func ParseWatcherRecord(v string) (seq int, names []string) {
	lines := strings.Split(v, "\n")
	if len(lines) > 0 && strings.HasPrefix(lines[0], "#") {
		seq, _ = strconv.Atoi(lines[0][1:])
		lines = lines[1:]
	}
	for _, l := range lines {
		if l != "" {
			names = append(names, l)
		}
	}
	return seq, names
}

// ParseWatcherSnapshot returns the usernames of a KindWatchers version.
func ParseWatcherSnapshot(v string) []string {
	_, names := ParseWatcherRecord(v)
	return names
}

func (c *watcherCollector) Collect(ctx context.Context, in *Input) ([]Found, error) {
	is := in.Issue
	if busy, err := in.busy(ctx, KindWatchers); err != nil || busy {
		return nil, err // the applier's write in flight: look again later
	}
	ws, err := in.Jira.Watchers(ctx, is.ID)
	if err != nil {
		return nil, fmt.Errorf("read watchers: %w", err)
	}
	cur := map[string]jira.User{}
	var names []string
	for _, u := range ws {
		if in.IsSyncUser(&u) || u.Name == "" {
			continue
		}
		cur[u.Name] = u
		names = append(names, u.Name)
	}
	prevV, had := in.SentVersion(KindWatchers, "")
	seq, prevNames := ParseWatcherRecord(prevV)
	if had && slices.Equal(prevNames, sorted(names)) {
		return nil, nil
	}
	rec := []store.SentItem{in.SentItem(KindWatchers, "", WatcherRecord(seq+1, names))}
	at := is.Updated()
	if !had {
		var rep jira.User
		hasRep, _ := is.Field("reporter", &rep)
		hasRep = hasRep && rep.Name != "" && !in.IsSyncUser(&rep)
		_, repSynced := in.Mapping.FieldByID("reporter")
		switch {
		case in.createdBySyncUser():
			// The bridge's copy without a record (the applier writes one
			// at create): only the reporter, whom Jira adds by itself,
			// came with the peer's issue; anyone else is a person's change.
			if hasRep && cur[rep.Name].Name != "" {
				prevNames = []string{rep.Name}
			}
		case hasRep && repSynced:
			// A person's issue seen for the first time: its copy on the
			// peer starts with the reporter watching (Jira adds them), so
			// that is the state to diff against; a reporter who stopped
			// watching is sent as a removal.
			prevNames = []string{rep.Name}
		}
	}
	prev := map[string]bool{}
	for _, n := range prevNames {
		prev[n] = true
	}
	var out []Found
	var skips []store.Skip
	var unskips []store.SkipKey
	stamp := strconv.Itoa(seq + 1)
	clocks := in.stamper(KindWatcherClock) // the conflict rule's times: see clock.go
	sort.Strings(names)
	for _, n := range names {
		if prev[n] {
			continue
		}
		u := cur[n]
		wu := in.Author(&u)
		if wu == nil {
			c.stats.UnmappableWatchers.Add(1)
			skips = append(skips, in.Skip(store.SkipWatcher, n, unmappableWatcherReason(&u, in.Mapping.Def().Users)))
			continue
		}
		wat, clk := clocks.next(n)
		out = append(out, Found{At: at, Change: wire.Change{ID: in.ChangeID("w" + is.ID + "/" + stamp + "/+" + n), IssueID: is.ID, IssueKey: is.Key,
			Kind: wire.WatcherAdd, At: wat, Watcher: wu}, Sent: []store.SentItem{clk}})
	}
	gone := prevNames
	for _, n := range gone {
		if _, ok := cur[n]; ok {
			continue
		}
		unskips = append(unskips, in.SkipKey(store.SkipWatcher, n)) // gone: no longer skipped
		u, found, err := in.Jira.UserByName(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("read former watcher %s: %w", n, err)
		}
		if !found {
			u = jira.User{Name: n, DisplayName: n}
		}
		wu := in.Author(&u)
		if wu == nil {
			c.stats.UnmappableWatchers.Add(1)
			continue
		}
		wat, clk := clocks.next(n)
		out = append(out, Found{At: at, Change: wire.Change{ID: in.ChangeID("w" + is.ID + "/" + stamp + "/-" + n), IssueID: is.ID, IssueKey: is.Key,
			Kind: wire.WatcherRemove, At: wat, Watcher: wu}, Sent: []store.SentItem{clk}})
	}
	if len(out) == 0 {
		return []Found{{At: at, Sent: rec, Skips: skips, Unskips: unskips}}, nil
	}
	last := &out[len(out)-1]
	last.Sent, last.Skips, last.Unskips = append(last.Sent, rec...), skips, unskips
	return out, nil
}

// ---- links ----

type linkCollector struct{ stats *ContentStats }

func (*linkCollector) Name() string                     { return "links" }
func (*linkCollector) Needs() (fields, expand []string) { return []string{"issuelinks"}, nil }

func (c *linkCollector) Collect(ctx context.Context, in *Input) ([]Found, error) {
	is := in.Issue
	if busy, err := in.busy(ctx, KindLink); err != nil || busy {
		return nil, err // the applier's write in flight: look again later
	}
	var ls []jira.IssueLink
	if _, err := is.Field("issuelinks", &ls); err != nil {
		return nil, err
	}
	at := is.Updated()
	var out []Found
	present := map[string]bool{}
	for _, l := range ls {
		if l.OutwardIssue != nil && l.ID != "" {
			present[l.ID] = true
		}
	}
	// Removals go first: a link removed and made again (a new id, the
	// same element) must end up made on the peer, and its stamps must
	// grow in that order too.
	clocks := in.stamper(KindLinkClock) // the conflict rule's times: see clock.go
	for _, id := range in.sentIDs(KindLink) {
		if present[id] {
			continue
		}
		v, _ := in.SentVersion(KindLink, id)
		state, alias, other := ParseLinkVersion(v)
		if state == LinkSkipped { // never sent: no longer listed as skipped
			out = append(out, Found{At: at, Sent: []store.SentItem{in.SentItem(KindLink, id, LinkVersion(LinkRemoved, alias, other))}, Unskips: []store.SkipKey{in.SkipKey(store.SkipLink, id)}})
		}
		if state != LinkActive {
			continue
		}
		lat, clk := clocks.next(LinkClockID(alias, other))
		out = append(out, Found{At: at,
			Change: wire.Change{ID: in.ChangeID("l" + id + "/d"), IssueID: is.ID, IssueKey: is.Key, Kind: wire.LinkRemove, At: lat,
				Link: &wire.Link{ID: id, Type: alias, OtherIssueID: other, Direction: "outward"}},
			Sent: []store.SentItem{in.SentItem(KindLink, id, LinkVersion(LinkRemoved, alias, other)), clk}})
	}
	for _, l := range ls {
		if l.OutwardIssue == nil || l.ID == "" {
			continue // sent from the other end, where it is outward
		}
		v, sent := in.SentVersion(KindLink, l.ID)
		if sent && !isSkippedLink(v) {
			continue // a skipped one is looked at again: its cause may be gone
		}
		alias, ok := in.Mapping.LinkTypeAlias(l.Type.Name)
		if !ok {
			if !sent {
				c.stats.SkippedLinks.Add(1)
				in.d.log.Info("link not synced: its type is not mapped", "issue", is.Key, "link_type", l.Type.Name)
			}
			out = append(out, Found{At: at, Sent: []store.SentItem{in.SentItem(KindLink, l.ID, LinkVersion(LinkSkipped, "", l.OutwardIssue.ID))},
				Skips: []store.Skip{in.Skip(store.SkipLink, l.ID, linkTypeReason(l.Type.Name))}})
			continue
		}
		synced, unpaired, err := in.synced(ctx, l.OutwardIssue.ID)
		if err != nil {
			return nil, err
		}
		if !synced {
			if !sent {
				c.stats.SkippedLinks.Add(1)
				in.d.log.Info("link not synced: the other issue is not synced", "issue", is.Key, "other", l.OutwardIssue.Key)
			}
			out = append(out, Found{At: at, Sent: []store.SentItem{in.SentItem(KindLink, l.ID, LinkVersion(LinkSkipped, alias, l.OutwardIssue.ID))},
				Skips: []store.Skip{in.Skip(store.SkipLink, l.ID, unsyncedLinkReason(l.OutwardIssue, unpaired))}})
			continue
		}
		lat, clk := clocks.next(LinkClockID(alias, l.OutwardIssue.ID))
		out = append(out, Found{At: at,
			Change: wire.Change{ID: in.ChangeID("l" + l.ID), IssueID: is.ID, IssueKey: is.Key, Kind: wire.LinkAdd, At: lat,
				Link: &wire.Link{ID: l.ID, Type: alias, OtherIssueID: l.OutwardIssue.ID, Direction: "outward"}},
			Sent: []store.SentItem{in.SentItem(KindLink, l.ID, LinkVersion(LinkActive, alias, l.OutwardIssue.ID)), clk}, Unskips: []store.SkipKey{in.SkipKey(store.SkipLink, l.ID)}})
	}
	return out, nil
}

// pairedHere reports whether this bridge paired the issue (it applied the
// peer's create, or sent the issue's own). A store error counts as not
// paired: the caller then treats the issue as found by the initial sync,
// which is what it did before pairs were consulted.
func (in *Input) pairedHere(ctx context.Context) bool {
	d := in.d
	var ok bool
	_ = d.o.Store.View(ctx, func(tx *store.Tx) error {
		_, err := tx.PairByLocal(d.o.SyncID, in.Issue.ID)
		ok = err == nil
		return nil
	})
	return ok
}

// synced reports whether a local issue takes part in the sync: paired,
// sent as new, or matching the sync's JQL (it will be sent). An issue
// whose partner was deleted (unpaired) does not, though it still matches
// the JQL and was sent once: a link to it would wait on the peer forever.
func (in *Input) synced(ctx context.Context, issueID string) (ok, unpaired bool, err error) {
	d := in.d
	err = d.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		ok, unpaired, err = pairedOrSent(tx, d.o.SyncID, issueID)
		return err
	})
	if err != nil || ok || unpaired {
		return ok, unpaired, err
	}
	sel, err := d.inSync(ctx, []string{issueID})
	if err != nil {
		return false, false, fmt.Errorf("is issue %s synced: %w", issueID, err)
	}
	return sel[issueID], false, nil
}

// ---- sub-tasks ----

// subtaskCollector only asks for the parent field: IssueCreate carries
// ParentIssueID so the peer creates the sub-task under the peer parent.
type subtaskCollector struct{}

func (subtaskCollector) Name() string                     { return "subtasks" }
func (subtaskCollector) Needs() (fields, expand []string) { return []string{"parent"}, nil }
func (subtaskCollector) Collect(context.Context, *Input) ([]Found, error) {
	return nil, nil
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// sentIDs lists the item ids of one kind recorded for the issue, sorted.
func (in *Input) sentIDs(kind string) []string {
	var ids []string
	for k := range in.sent {
		if k.kind == kind {
			ids = append(ids, k.id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return numLess(ids[i], ids[j]) })
	return ids
}

func numLess(a, b string) bool {
	x, e1 := strconv.ParseInt(a, 10, 64)
	y, e2 := strconv.ParseInt(b, 10, 64)
	if e1 == nil && e2 == nil {
		return x < y
	}
	return a < b
}

// sortFound orders a collector's list by time, stable.
func sortFound(fs []Found) {
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].At.Before(fs[j].At) })
}

// DisableCollectors stops the named content collectors ("comments",
// "attachments", "watchers", "links", "subtasks"): the engine turns off a
// feature whose Jira permissions the sync user lacks. The changelog
// always runs.
func (d *Detector) DisableCollectors(names ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := d.collectors[:1:1]
	for _, c := range d.collectors[1:] {
		if !slices.Contains(names, c.Name()) {
			keep = append(keep, c)
		}
	}
	d.collectors = keep
}

// sweepWatchers reads the watchers of every sync issue every
// WatcherSweepEvery polls: a watcher change leaves the issue's updated
// time alone, so no poll query finds it.
func (d *Detector) sweepWatchers(ctx context.Context, res *Result, hasCursor bool) error {
	var wc Collector
	for _, c := range d.collectors {
		if _, ok := c.(*watcherCollector); ok {
			wc = c
		}
	}
	if wc == nil || !hasCursor {
		return nil
	}
	d.polls++
	if d.polls%d.o.WatcherSweepEvery != 0 {
		return nil
	}
	sub := Result{}
	// Only what the watcher collector and the create check read: no
	// changelog, no synced fields.
	err := d.o.Jira.SearchAll(ctx, "("+d.o.JQL+") ORDER BY updated ASC", []string{"creator", "reporter", "issuetype", "updated"}, nil,
		func(is jira.Issue) error { return d.processIssue(ctx, &is, &sub, mode{only: wc}) })
	res.Changes += sub.Changes
	res.Parked += sub.Parked
	if err != nil {
		return fmt.Errorf("sweep watchers: %w", err)
	}
	return nil
}

// BusyCursor names the store cursor in which the applier holds the id of
// a change that is writing watchers or links (kind) of a local issue, from
// just before the Jira write until its record is committed.
func BusyCursor(syncID, issueID, kind string) string {
	return "busy/" + syncID + "/" + issueID + "/" + kind
}

// busy reports whether the applier is in the middle of writing kind on
// the issue: a busy marker whose change is still unfinished in the replay
// queue (a change the operator skipped no longer counts).
func (in *Input) busy(ctx context.Context, kind string) (bool, error) {
	d := in.d
	var busy bool
	err := d.o.Store.View(ctx, func(tx *store.Tx) error {
		id, _, err := tx.CursorGet(BusyCursor(d.o.SyncID, in.Issue.ID, kind))
		if err != nil || id == "" {
			return err
		}
		it, err := tx.ReplayGetByChange(d.o.SyncID, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		busy = it.State == store.ReplayPending || it.State == store.ReplayParked || it.State == store.ReplayWaitingParent
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read busy marker of %s: %w", in.Issue.Key, err)
	}
	in.deferred = in.deferred || busy
	return busy, nil
}
