package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Resync of content (comments, attachments; other kinds when their
// collector implements resyncer).
//
// A resync sends, besides the issue's fields, type and status, what the
// peer's copy of the issue must hold: every comment and attachment this
// side has sent or would send now, and every deletion it knows of. The
// peer applies only what differs: an add of something it already has (its
// copy is known through the applier's cursors or the comment property
// jirabridge.origin) is a no-op, or an edit when the text differs. The
// change ids are fresh per resync (the item is ResyncItem(stamp, ...)), so
// the peer's ledger does not drop them as duplicates of what it applied
// long ago.

// resyncer is a collector that can send its items again for a resync.
// Resync returns what Collect would return now (new items, with their
// records and counts) plus the items sent before, again, with ids made by
// ResyncItem.
type resyncer interface {
	Resync(ctx context.Context, in *Input, stamp string) ([]Found, error)
}

// resyncPrefix starts the item of a resync's content change: "rc<stamp>/".
// (The issue's own resync snapshot is "r<issue id>/<stamp>".)
const resyncPrefix = "rc"

// ResyncItem is the change item of an item sent again by the resync with
// the given stamp: "rc<stamp>/<item>", e.g. "rc1700000000000/m10010".
func ResyncItem(stamp, item string) string { return resyncPrefix + stamp + "/" + item }

// IsResyncChange reports whether a change id ("<sync>/<node>/<item>") is
// an item a resync sent again. The applier then looks for a copy it may
// have lost track of (the comment property, an attachment by the sync user
// with the same name and checksum) before it adds one.
func IsResyncChange(id string) bool {
	parts := strings.SplitN(id, "/", 3)
	if len(parts) < 3 {
		return false
	}
	item := parts[2]
	return len(item) > len(resyncPrefix) && strings.HasPrefix(item, resyncPrefix) &&
		item[len(resyncPrefix)] >= '0' && item[len(resyncPrefix)] <= '9'
}

// resyncContent runs the resync of every content collector that has one.
// Collectors the permission check turned off are not in d.collectors.
func (d *Detector) resyncContent(ctx context.Context, in *Input, stamp string) ([]Found, error) {
	var lists [][]Found
	for _, c := range d.collectors[1:] {
		r, ok := c.(resyncer)
		if !ok {
			continue
		}
		fs, err := r.Resync(ctx, in, stamp)
		if err != nil {
			return nil, fmt.Errorf("resync %s of %s: %w", c.Name(), in.Issue.Key, err)
		}
		lists = append(lists, fs)
	}
	return merge(lists), nil
}

// isNotice reports whether a peer comment id is a notice about an
// attachment the peer did not send (the applier's copy of it is a
// notice, not a person's comment).
func isNotice(peerCommentID string) bool { return strings.HasPrefix(peerCommentID, "notice-") }

// Resync of comments: what a poll would send now, then, for every other
// comment, its current state again:
//   - a person's comment here that its visibility lets leave: a
//     comment.add with its current text (and author line, visibility)
//     at its updated time; the peer adds it if it has no copy, edits its
//     copy if the text differs, and leaves it alone otherwise;
//   - the bridge's copy of a peer comment that a person here edited: the
//     edit again, to the original there (Comment.PeerID);
//   - a comment sent before and deleted since: the deletion again (of the
//     peer's copy, or with PeerID of the peer's original when a person
//     deleted the bridge's copy here).
//
// Restricted and internal comments stay here exactly as in a poll.
func (c *commentCollector) Resync(ctx context.Context, in *Input, stamp string) ([]Found, error) {
	fs, err := c.Collect(ctx, in)
	if err != nil {
		return nil, err
	}
	is := in.Issue
	covered := map[string]bool{}
	for i := range fs {
		f := &fs[i]
		cm := f.Change.Comment
		if cm == nil {
			continue
		}
		if f.Change.Kind == wire.CommentEdit && cm.PeerID == "" {
			// An edit of a person's comment: the add below carries the
			// text, and also gives the peer the copy it may lack.
			f.Change = wire.Change{}
			continue
		}
		covered[cm.ID] = true
	}
	cms, err := in.Comments(ctx)
	if err != nil {
		return nil, fmt.Errorf("read comments: %w", err)
	}
	present := map[string]bool{}
	for i := range cms {
		cm := &cms[i]
		present[cm.ID] = true
		if covered[cm.ID] {
			continue
		}
		upd := MillisVersion(cm.Updated.Time)
		if peerID, isCopy := in.SentVersion(KindCommentPeer, cm.ID); isCopy {
			if isNotice(peerID) || cm.UpdateAuthor == nil || in.IsSyncUser(cm.UpdateAuthor) {
				continue // the copy as the bridge wrote it: the peer's resync repairs it
			}
			vis, ok := c.visibility(cm)
			if !ok {
				continue
			}
			fs = append(fs, Found{At: cm.Updated.Time,
				Change: wire.Change{ID: in.ChangeID(ResyncItem(stamp, "m"+cm.ID+"/e"+upd)), IssueID: is.ID, IssueKey: is.Key,
					Kind: wire.CommentEdit, At: cm.Updated.Time, Author: in.Author(cm.UpdateAuthor),
					Comment: &wire.Comment{ID: cm.ID, PeerID: peerID, Body: StripAuthorLine(cm.Body, c.suffix), Visibility: vis}}})
			continue
		}
		if in.IsSyncUser(cm.Author) {
			continue // the bridge's own (or a notice), never sent as new
		}
		vis, ok := c.visibility(cm)
		if !ok {
			continue // restricted or internal: stays here
		}
		fs = append(fs, Found{At: cm.Updated.Time,
			Change: wire.Change{ID: in.ChangeID(ResyncItem(stamp, "m"+cm.ID)), IssueID: is.ID, IssueKey: is.Key, Kind: wire.CommentAdd,
				At: cm.Updated.Time, Author: in.Author(cm.Author), Comment: &wire.Comment{ID: cm.ID, Body: cm.Body, Visibility: vis}},
			Sent: []store.SentItem{in.SentItem(KindComment, cm.ID, upd)}})
	}
	at := is.Updated()
	for _, id := range in.sentIDs(KindComment) {
		if present[id] || covered[id] {
			continue
		}
		if v, _ := in.SentVersion(KindComment, id); v != VersionDeleted {
			continue
		}
		wc := &wire.Comment{ID: id}
		if peerID, ok := in.SentVersion(KindCommentPeer, id); ok {
			if isNotice(peerID) {
				continue
			}
			wc.PeerID = peerID
		}
		fs = append(fs, Found{At: at,
			Change: wire.Change{ID: in.ChangeID(ResyncItem(stamp, "m"+id+"/d")), IssueID: is.ID, IssueKey: is.Key, Kind: wire.CommentDelete, At: at, Comment: wc}})
	}
	sortFound(fs)
	return fs, nil
}

// Resync of attachments: what a poll would send now, then, for every
// other attachment a person added here, its bytes again if it passes the
// filters (the peer uploads it only when it has no copy with that
// SHA-256), or the notice again if it was skipped with one (the peer
// keeps one notice per attachment); and every deletion again (of the
// peer's copy, or with PeerID of the peer's original when a person
// deleted the bridge's copy here).
func (c *attachmentCollector) Resync(ctx context.Context, in *Input, stamp string) ([]Found, error) {
	fs, err := c.Collect(ctx, in)
	if err != nil {
		return nil, err
	}
	is := in.Issue
	covered := map[string]bool{}
	for _, f := range fs {
		for _, s := range f.Sent {
			if s.ItemKind == KindAttachment {
				covered[s.ItemID] = true
			}
		}
	}
	var as []jira.Attachment
	if _, err := is.Field("attachment", &as); err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, a := range as {
		present[a.ID] = true
		if covered[a.ID] {
			continue
		}
		if _, isCopy := in.SentVersion(KindAttachmentPeer, a.ID); isCopy || in.IsSyncUser(a.Author) {
			continue // the bridge's copy: the peer's resync repairs it
		}
		at := a.Created.Time
		if !c.cfg.Allows(a.Filename, a.MimeType, a.Size) {
			// Skipped: the notice again where one was sent (the peer
			// keeps a single notice per attachment).
			if v, _ := in.SentVersion(KindAttachment, a.ID); v == VersionFiltered && c.cfg.NoticeOnSkip {
				fs = append(fs, Found{At: at,
					Change: wire.Change{ID: in.ChangeID(ResyncItem(stamp, "a"+a.ID+"/n")), IssueID: is.ID, IssueKey: is.Key, Kind: wire.CommentAdd, At: at,
						Comment: &wire.Comment{ID: "notice-" + a.ID, Body: c.notice(a)}}})
			}
			continue
		}
		data, err := in.Jira.DownloadAttachment(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("download attachment %s (%s): %w", a.ID, a.Filename, err)
		}
		sum := sha256.Sum256(data)
		fs = append(fs, Found{At: at,
			Change: wire.Change{ID: in.ChangeID(ResyncItem(stamp, "a"+a.ID)), IssueID: is.ID, IssueKey: is.Key, Kind: wire.AttachmentAdd, At: at,
				Author: in.Author(a.Author), Attachment: &wire.Attachment{ID: a.ID, Filename: a.Filename, MimeType: a.MimeType,
					Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Data: data}},
			Sent: []store.SentItem{in.SentItem(KindAttachment, a.ID, "")}})
	}
	at := is.Updated()
	for _, id := range in.sentIDs(KindAttachment) {
		if present[id] || covered[id] {
			continue
		}
		if v, _ := in.SentVersion(KindAttachment, id); v != VersionDeleted {
			continue
		}
		wa := &wire.Attachment{ID: id}
		if peerID, ok := in.SentVersion(KindAttachmentPeer, id); ok {
			wa.PeerID = peerID
		}
		fs = append(fs, Found{At: at,
			Change: wire.Change{ID: in.ChangeID(ResyncItem(stamp, "a"+id+"/d")), IssueID: is.ID, IssueKey: is.Key, Kind: wire.AttachmentDelete, At: at, Attachment: wa}})
	}
	sortFound(fs)
	return fs, nil
}
