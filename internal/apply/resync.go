package apply

import (
	"context"
	"fmt"
	"net/http"

	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/perms"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// A resync sends every comment and attachment again with fresh change ids
// (detect.ResyncItem), so the ledger cannot tell them from new ones: the
// applier itself makes a resent add of something it already has a no-op
// (or an edit when the comment's text differs), and a resent delete of
// something already gone a no-op, without writing to Jira. The copy is
// known by the cursors commentKey/attachmentKey and, when those were lost,
// by the comment property jirabridge.origin or, for an attachment, by an
// untaken upload of the sync user with the same name and SHA-256.

// sentVersion reads the record of one local item.
func (a *Applier) sentVersion(ctx context.Context, localIssue, kind, id string) (string, bool, error) {
	var v string
	var ok bool
	err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		v, ok, err = tx.SentGet(a.o.SyncID, localIssue, kind, id)
		return err
	})
	return v, ok, storeErr("read sent records", err)
}

// goneHere reports whether the local item is recorded as deleted (by a
// person, as detection saw, or by the applier): then a delete has nothing
// to do and an add must not bring it back.
func (a *Applier) goneHere(ctx context.Context, localIssue, kind, id string) (bool, error) {
	v, _, err := a.sentVersion(ctx, localIssue, kind, id)
	return v == detect.VersionDeleted, err
}

func sameVisibility(cur, want *jira.Visibility) bool {
	if cur == nil || want == nil {
		return cur == nil && want == nil
	}
	return cur.Type == want.Type && cur.Value == want.Value
}

// commentCopyKnown handles a comment.add of a peer comment this side
// already has a copy of (a resync sends every comment again): nothing
// when the copy has the text, an edit when it differs (unless a person
// here edited the copy later: that edit travels back by itself), nothing
// when the copy is gone here (a person deleted it, and detection sends
// that to the original). done is false when there is no copy: add it.
func (a *Applier) commentCopyKnown(ctx context.Context, c wire.Change, p store.IssuePair, body string, vis *jira.Visibility) (done bool, err error) {
	id, ok, err := a.cursor(ctx, a.commentKey(c.Comment.ID))
	if err != nil {
		return true, err
	}
	if !ok && detect.IsResyncChange(c.ID) {
		// The cursor may have been lost (a store restored from a backup):
		// the copy carries its origin.
		cms, err := a.o.Jira.CommentsWithProps(ctx, p.LocalID)
		if err != nil {
			return true, fmt.Errorf("look for the copy of comment %s of %s: %w", c.Comment.ID, issueName(c), err)
		}
		for i := range cms {
			var o CommentOrigin
			if cms[i].Property(OriginProperty, &o) && o.Sync == a.o.SyncID && o.PeerIssueID == c.IssueID && o.PeerCommentID == c.Comment.ID {
				id, ok = cms[i].ID, true
				a.log.Info("found the copy of a resent comment by its origin", "change_id", c.ID, "comment", id)
				break
			}
		}
	}
	if !ok {
		return false, nil
	}
	pairing := map[string]string{a.commentKey(c.Comment.ID): id}
	peerRec := []store.SentItem{{ItemKind: detect.KindCommentPeer, ItemID: id, Version: c.Comment.ID}}
	if gone, err := a.goneHere(ctx, p.LocalID, detect.KindComment, id); err != nil || gone {
		return true, errOr(err, func() error { return a.record(ctx, c, p.LocalID, "deleted here", nil, nil) })
	}
	cur, err := a.o.Jira.Comment(ctx, p.LocalID, id)
	if notFound(err) {
		a.log.Info("resent comment: its copy was deleted here", "change_id", c.ID, "comment", id)
		return true, a.record(ctx, c, p.LocalID, "deleted here", nil, nil)
	}
	if err != nil {
		return true, fmt.Errorf("read comment %s of %s: %w", id, p.LocalKey, err)
	}
	if _, had, err := a.sentVersion(ctx, p.LocalID, detect.KindComment, id); err != nil {
		return true, err
	} else if !had {
		// Records lost: detection must know the copy again, to send a
		// person's later deletion of it. A person's edit of the copy that
		// differs from the partner's text is sent ("0" is no updated time).
		v := "0"
		if cur.Body == body && sameVisibility(cur.Visibility, vis) {
			v = detect.MillisVersion(cur.Updated.Time)
		}
		peerRec = append(peerRec, store.SentItem{ItemKind: detect.KindComment, ItemID: id, Version: v})
	}
	if cur.Body == body && sameVisibility(cur.Visibility, vis) {
		return true, a.record(ctx, c, p.LocalID, id, peerRec, pairing)
	}
	if cur.UpdateAuthor != nil && !a.isSyncUser(ctx, cur.UpdateAuthor.Name) &&
		(cur.Updated.After(c.At) || (cur.Updated.Equal(c.At) && a.o.Role == store.RoleMaster)) {
		a.log.Info("resent comment lost to a newer local edit of its copy", "change_id", c.ID, "comment", id)
		return true, a.record(ctx, c, p.LocalID, "older", peerRec, pairing)
	}
	got, err := a.o.Jira.EditComment(ctx, p.LocalID, id, body, vis)
	if notFound(err) {
		return true, a.record(ctx, c, p.LocalID, "deleted here", nil, nil)
	}
	if err != nil {
		return true, fmt.Errorf("edit comment %s of %s: %w", id, p.LocalKey, err)
	}
	if err := a.after(StepComment, c); err != nil {
		return true, err
	}
	// The edit's record comes last: it replaces a "0" set above.
	return true, a.record(ctx, c, p.LocalID, id, append(peerRec,
		store.SentItem{ItemKind: detect.KindComment, ItemID: id, Version: detect.MillisVersion(got.Updated.Time)}), pairing)
}

// attachmentCopyKnown handles an attachment.add of a peer attachment this
// side already has a copy of: nothing when the copy has the same SHA-256
// or is gone here (a person deleted it; detection sends that to the
// original). A copy with other bytes is dropped and uploaded again.
// done is false when there is no copy: upload it.
func (a *Applier) attachmentCopyKnown(ctx context.Context, c wire.Change, p store.IssuePair, want string) (done bool, err error) {
	at := c.Attachment
	id, ok, err := a.cursor(ctx, a.attachmentKey(at.ID))
	if err != nil || !ok {
		return err != nil, err
	}
	if gone, err := a.goneHere(ctx, p.LocalID, detect.KindAttachment, id); err != nil || gone {
		return true, errOr(err, func() error { return a.record(ctx, c, p.LocalID, "deleted here", nil, nil) })
	}
	as, err := a.o.Jira.Attachments(ctx, p.LocalID)
	if err != nil {
		return true, fmt.Errorf("read attachments of %s: %w", p.LocalKey, err)
	}
	for _, x := range as {
		if x.ID != id {
			continue
		}
		b, err := a.o.Jira.DownloadAttachment(ctx, x)
		if err != nil {
			return true, fmt.Errorf("read attachment %s of %s: %w", x.ID, p.LocalKey, err)
		}
		if sha(b) == want {
			return true, a.record(ctx, c, p.LocalID, id, nil, nil)
		}
		// Not the partner's bytes: forget this copy first (a crash then
		// leaves at worst an orphan, never a lost file), drop it, upload.
		a.log.Warn("resent attachment: the copy here has other bytes; uploading it again", "change_id", c.ID, "attachment", id,
			"sha256", sha(b), "want", want)
		if err := storeErr("forget copy "+id, a.o.Store.Update(ctx, func(tx *store.Tx) error {
			if err := tx.SentPut(store.SentItem{SyncID: a.o.SyncID, IssueID: p.LocalID, ItemKind: detect.KindAttachment, ItemID: id, Version: detect.VersionDeleted}); err != nil {
				return err
			}
			return tx.CursorSet(a.attachmentKey(at.ID), "")
		})); err != nil {
			return true, err
		}
		if err := a.o.Jira.DeleteAttachment(ctx, id); err != nil && !notFound(err) {
			return true, fmt.Errorf("delete attachment %s of %s: %w", id, p.LocalKey, err)
		}
		return false, nil
	}
	a.log.Info("resent attachment: its copy was deleted here", "change_id", c.ID, "attachment", id)
	return true, a.record(ctx, c, p.LocalID, "deleted here", nil, nil)
}

func errOr(err error, f func() error) error {
	if err != nil {
		return err
	}
	return f()
}

// ---- write-back to originals ----

// writeBack says what a peer's edit or deletion of the bridge's copy
// needs when it is applied to the original here, which a person wrote.
type writeBack struct {
	feature    string // perms feature, refused by the permission check
	permission string // Jira permission
	what       string // "edit comment", ...
}

var (
	commentEditBack    = writeBack{perms.FeatureCommentEditsToOriginals, "EDIT_ALL_COMMENTS", "edit the original comment"}
	commentDeleteBack  = writeBack{perms.FeatureCommentDeletesToOriginals, "DELETE_ALL_COMMENTS", "delete the original comment"}
	attachmentDeleteBk = writeBack{perms.FeatureAttachmentDeletesToOriginals, "DELETE_ALL_ATTACHMENTS", "delete the original attachment"}
)

// refused parks the write-back when the permission check refused it
// (perms' message names the permission and what to do).
func (w writeBack) refused(a *Applier, c wire.Change) error { return a.refusedErr(c, w.feature) }

// jiraErr turns Jira's 403 on the original into a failure that names the
// permission, so the parked change says what to grant; other errors are
// returned as they are.
func (w writeBack) jiraErr(ctx context.Context, a *Applier, c wire.Change, id, localKey string, err error) error {
	if jira.StatusOf(err) != http.StatusForbidden || errclass.Of(err) == errclass.Pause {
		return fmt.Errorf("%s %s of %s: %w", w.what, id, localKey, err)
	}
	user, _ := a.user(ctx)
	return errclass.New(errclass.Permanent, "permission", fmt.Errorf(
		"change %s of %s: a person on the partner's side changed the bridge's copy; to %s %s of %s (a person's) the sync user %q needs %s "+
			"(feature %s): grant it in the project's permission scheme and retry this change, or skip it: %w",
		c.ID, issueName(c), w.what, id, localKey, user, w.permission, w.feature, err))
}
