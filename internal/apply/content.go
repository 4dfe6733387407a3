package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Steps of content changes, for Hooks.
const (
	StepComment    Step = "comment"
	StepAttachment Step = "attachment"
	StepWatcher    Step = "watcher"
	StepLink       Step = "link"
)

// ReasonWaitingParent is the errclass reason of a sub-task whose parent has
// no local issue yet: the replay puts the change in state waiting_parent and
// applies it when the parent exists, without blocking other issues.
const ReasonWaitingParent = "waiting_parent"

// CommentOrigin is the value of the OriginProperty on a comment the bridge
// wrote, with the change that wrote it; it travels in the add call.
type CommentOrigin struct {
	Sync          string `json:"sync"`
	ChangeID      string `json:"change_id"`
	PeerIssueID   string `json:"peer_issue_id"`
	PeerCommentID string `json:"peer_comment_id,omitempty"`
}

// ContentMapping is what content changes need from the mapping beyond
// Mapping; *mapping.Mapping implements it.
type ContentMapping interface {
	Def() *config.SyncDef
	UserText(u wire.User) string
	IncomingUser(ctx context.Context, issue string, u wire.User) (name string, ok bool, err error)
	LinkTypeName(issue, alias string) (string, error)
	// For the sets a resync sends: which local watchers and links this
	// side syncs at all.
	OutgoingUser(u *jira.User) (wire.User, bool)
	LinkTypeAlias(name string) (string, bool)
}

// IsContent reports whether ApplyContent handles the kind.
func IsContent(k wire.ChangeKind) bool {
	switch k {
	case wire.CommentAdd, wire.CommentEdit, wire.CommentDelete, wire.AttachmentAdd, wire.AttachmentDelete,
		wire.WatcherAdd, wire.WatcherRemove, wire.LinkAdd, wire.LinkRemove, wire.WatcherSet, wire.LinkSet:
		return true
	}
	return false
}

// ApplyContent applies a comment, attachment, watcher or link change,
// exactly once (the ledger), as the sync user. Apply calls it for those
// kinds; it is exported for the engine's tests.
func (a *Applier) ApplyContent(ctx context.Context, c wire.Change) error {
	if !IsContent(c.Kind) {
		return errclass.New(errclass.Permanent, "kind_not_supported", fmt.Errorf("change %s: %q is not a content change", c.ID, c.Kind))
	}
	done, err := a.applied(ctx, c.ID)
	if err != nil || done {
		return err
	}
	if err := a.refusedErr(c, FeatureOf(c.Kind)); err != nil {
		return err
	}
	cm, ok := a.o.Mapping.(ContentMapping)
	if !ok {
		return errclass.New(errclass.Permanent, "kind_not_supported", fmt.Errorf("change %s: the mapping cannot map %s changes", c.ID, c.Kind))
	}
	if !enabled(cm.Def(), c) {
		// This side's sync definition has the feature off: nothing is
		// written, and the change is done.
		a.log.Info("change of a feature switched off here", "change_id", c.ID, "kind", string(c.Kind))
		return storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Result: "disabled", AppliedAt: tx.Now()})
			return err
		}))
	}
	p, found, err := a.pairByPeer(ctx, c.IssueID)
	if err != nil {
		return err
	}
	if !found {
		return errclass.New(errclass.Permanent, ReasonNotPaired,
			fmt.Errorf("change %s of %s: the peer issue has no local issue yet (its creation was not applied)", c.ID, issueName(c)))
	}
	switch c.Kind {
	case wire.CommentAdd:
		return a.commentAdd(ctx, cm, c, p)
	case wire.CommentEdit:
		return a.commentEdit(ctx, cm, c, p)
	case wire.CommentDelete:
		return a.commentDelete(ctx, c, p)
	case wire.AttachmentAdd:
		return a.attachmentAdd(ctx, c, p)
	case wire.AttachmentDelete:
		return a.attachmentDelete(ctx, c, p)
	case wire.WatcherAdd, wire.WatcherRemove:
		return a.watcher(ctx, cm, c, p)
	case wire.WatcherSet:
		return a.watcherSet(ctx, cm, c, p)
	case wire.LinkSet:
		return a.linkSet(ctx, cm, c, p)
	default:
		return a.link(ctx, cm, c, p)
	}
}

func badChange(c wire.Change, what string) error {
	return errclass.New(errclass.Permanent, "bad_change", fmt.Errorf("change %s of %s: %s", c.ID, issueName(c), what))
}

func notFound(err error) bool { return jira.StatusOf(err) == http.StatusNotFound }

// record commits the ledger entry of c with the sent items and cursors
// that keep detection from sending the write back.
func (a *Applier) record(ctx context.Context, c wire.Change, localIssue, result string, sent []store.SentItem, cursors map[string]string) error {
	return storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		for _, s := range sent {
			s.SyncID, s.IssueID = a.o.SyncID, localIssue
			if err := putSent(tx, s); err != nil {
				return err
			}
		}
		for k, v := range cursors {
			if err := tx.CursorSet(k, v); err != nil {
				return err
			}
		}
		_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: localIssue, Result: result, AppliedAt: tx.Now()})
		return err
	}))
}

func (a *Applier) cursor(ctx context.Context, key string) (string, bool, error) {
	var v string
	var ok bool
	err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		v, ok, err = tx.CursorGet(key)
		return err
	})
	return v, ok && v != "", storeErr("read cursor "+key, err)
}

// setIntent records that a non-idempotent write of c is about to be sent;
// had is true when an earlier try already recorded one (look for the
// marker before writing again).
func (a *Applier) setIntent(ctx context.Context, c wire.Change) (had bool, err error) {
	key := a.intentKey(c.ID)
	_, had, err = a.cursor(ctx, key)
	if err != nil || had {
		return had, err
	}
	return false, storeErr("record intent of "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.CursorSet(key, a.o.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	}))
}

func (a *Applier) commentKey(originID string) string {
	return "comment/" + a.o.SyncID + "/" + originID
}

func (a *Applier) attachmentKey(originID string) string {
	return "attachment/" + a.o.SyncID + "/" + originID
}

// ---- comments ----

// commentBody puts the author line in front of the text, by the user
// policy: the mapped local user as a mention (comment_author: map) or the
// person as text ("Alice Smith (Partner Jira):").
func (a *Applier) commentBody(ctx context.Context, cm ContentMapping, c wire.Change, body string) (string, error) {
	if c.Author == nil {
		return body, nil
	}
	who := cm.UserText(*c.Author)
	if cm.Def().Users.CommentAuthor == config.AuthorMap {
		name, ok, err := cm.IncomingUser(ctx, c.IssueKey, *c.Author)
		if err != nil {
			return "", unmappable(c, err)
		}
		if ok {
			who = "[~" + name + "]"
		}
	}
	return detect.AuthorLine(who) + "\n" + body, nil
}

// visibility maps a wire visibility to the local restriction; internal
// is true for a Jira Service Management internal comment.
func (a *Applier) visibility(cm ContentMapping, c wire.Change) (vis *jira.Visibility, internal bool, err error) {
	v := c.Comment.Visibility
	if v == nil {
		return nil, false, nil
	}
	for _, m := range cm.Def().Comments.Visibility {
		if m.Alias != v.Value || (m.Type == "internal") != (v.Type == "internal") {
			continue
		}
		if m.Type == "internal" {
			return nil, true, nil
		}
		return &jira.Visibility{Type: m.Type, Value: m.Value}, false, nil
	}
	// Never show a restricted comment to everybody: park it.
	return nil, false, errclass.New(errclass.Permanent, "mapping",
		fmt.Errorf("change %s of %s: comment visibility %s %q has no local restriction in comments.visibility", c.ID, issueName(c), v.Type, v.Value))
}

func (a *Applier) commentAdd(ctx context.Context, cm ContentMapping, c wire.Change, p store.IssuePair) error {
	if c.Comment == nil {
		return badChange(c, "comment change without a comment")
	}
	vis, internal, err := a.visibility(cm, c)
	if err != nil {
		return err
	}
	body, err := a.commentBody(ctx, cm, c, c.Comment.Body)
	if err != nil {
		return err
	}
	if done, err := a.commentCopyKnown(ctx, c, p, body, vis); done || err != nil {
		return err // resent (resync): see resync.go
	}
	had, err := a.setIntent(ctx, c)
	if err != nil {
		return err
	}
	var got *jira.Comment
	if had {
		cms, err := a.o.Jira.CommentsWithProps(ctx, p.LocalID)
		if err != nil {
			return fmt.Errorf("look for the comment change %s may have added: %w", c.ID, err)
		}
		for i := range cms {
			var o CommentOrigin
			if cms[i].Property(OriginProperty, &o) && o.ChangeID == c.ID && o.Sync == a.o.SyncID {
				got = &cms[i].Comment
				a.log.Info("found comment added before a crash", "change_id", c.ID, "comment", got.ID)
				break
			}
		}
	}
	if got == nil {
		props := []jira.Property{{Key: OriginProperty, Value: CommentOrigin{Sync: a.o.SyncID, ChangeID: c.ID, PeerIssueID: c.IssueID, PeerCommentID: c.Comment.ID}}}
		if internal {
			props = append(props, jira.Property{Key: jira.InternalCommentProperty, Value: map[string]bool{"internal": true}})
		}
		added, err := a.o.Jira.AddComment(ctx, p.LocalID, body, vis, props)
		if err != nil {
			return fmt.Errorf("add comment of %s to %s: %w", issueName(c), p.LocalKey, err)
		}
		got = &added
		if err := a.after(StepComment, c); err != nil {
			return err
		}
	}
	return a.record(ctx, c, p.LocalID, got.ID, []store.SentItem{
		{ItemKind: detect.KindComment, ItemID: got.ID, Version: detect.MillisVersion(got.Updated.Time)},
		{ItemKind: detect.KindCommentPeer, ItemID: got.ID, Version: c.Comment.ID},
	}, map[string]string{a.commentKey(c.Comment.ID): got.ID, a.intentKey(c.ID): ""})
}

// localComment finds the local comment a peer's edit or delete is about:
// the original here (PeerID) or the bridge's copy of the peer's comment.
func (a *Applier) localComment(ctx context.Context, c wire.Change) (id string, copy bool, ok bool, err error) {
	if c.Comment.PeerID != "" {
		// A notice is no comment of the receiver's: nothing to change there.
		return c.Comment.PeerID, false, !strings.HasPrefix(c.Comment.PeerID, "notice-"), nil
	}
	id, ok, err = a.cursor(ctx, a.commentKey(c.Comment.ID))
	return id, true, ok, err
}

func (a *Applier) commentEdit(ctx context.Context, cm ContentMapping, c wire.Change, p store.IssuePair) error {
	if c.Comment == nil {
		return badChange(c, "comment change without a comment")
	}
	id, isCopy, ok, err := a.localComment(ctx, c)
	if err != nil {
		return err
	}
	if !ok {
		// The add was never applied here (skipped by the operator).
		a.log.Info("edit of a comment that has no copy here", "change_id", c.ID, "comment", c.Comment.ID)
		return a.record(ctx, c, p.LocalID, "", nil, nil)
	}
	// Conflict: a person here edited the comment after the peer's edit
	// was made (by Jira time); the newer edit wins, and it travels to the
	// peer by itself. A tie goes to the master.
	cur, err := a.o.Jira.Comment(ctx, p.LocalID, id)
	if notFound(err) {
		a.log.Info("edited comment is gone here", "change_id", c.ID, "comment", id)
		return a.record(ctx, c, p.LocalID, "", nil, nil)
	}
	if err != nil {
		return fmt.Errorf("read comment %s of %s: %w", id, p.LocalKey, err)
	}
	if cur.UpdateAuthor != nil && !a.isSyncUser(ctx, cur.UpdateAuthor.Name) &&
		(cur.Updated.After(c.At) || (cur.Updated.Equal(c.At) && a.o.Role == store.RoleMaster)) {
		a.log.Info("comment edit lost to a newer local edit", "change_id", c.ID, "comment", id)
		return a.record(ctx, c, p.LocalID, "older", nil, nil)
	}
	body := c.Comment.Body
	if isCopy {
		if body, err = a.commentBody(ctx, cm, c, body); err != nil {
			return err
		}
	}
	vis, _, err := a.visibility(cm, c)
	if err != nil {
		return err
	}
	if cur.Body == body && sameVisibility(cur.Visibility, vis) {
		return a.record(ctx, c, p.LocalID, id, nil, nil) // already so (a resync sends edits again)
	}
	if !isCopy {
		if err := commentEditBack.refused(a, c); err != nil {
			return err
		}
	}
	got, err := a.o.Jira.EditComment(ctx, p.LocalID, id, body, vis)
	if notFound(err) {
		a.log.Info("edited comment is gone here", "change_id", c.ID, "comment", id)
		return a.record(ctx, c, p.LocalID, "", nil, nil)
	}
	if err != nil && !isCopy {
		return commentEditBack.jiraErr(ctx, a, c, id, p.LocalKey, err)
	}
	if err != nil {
		return fmt.Errorf("edit comment %s of %s: %w", id, p.LocalKey, err)
	}
	if err := a.after(StepComment, c); err != nil {
		return err
	}
	return a.record(ctx, c, p.LocalID, id, []store.SentItem{
		{ItemKind: detect.KindComment, ItemID: id, Version: detect.MillisVersion(got.Updated.Time)}}, nil)
}

func (a *Applier) commentDelete(ctx context.Context, c wire.Change, p store.IssuePair) error {
	if c.Comment == nil {
		return badChange(c, "comment change without a comment")
	}
	id, isCopy, ok, err := a.localComment(ctx, c)
	if err != nil {
		return err
	}
	if !ok {
		return a.record(ctx, c, p.LocalID, "", nil, nil)
	}
	if gone, err := a.goneHere(ctx, p.LocalID, detect.KindComment, id); err != nil || gone {
		return errOr(err, func() error { return a.record(ctx, c, p.LocalID, "", nil, nil) }) // a resync sends deletes again
	}
	if !isCopy {
		if err := commentDeleteBack.refused(a, c); err != nil {
			if _, gerr := a.o.Jira.Comment(ctx, p.LocalID, id); notFound(gerr) {
				return a.record(ctx, c, p.LocalID, "", nil, nil) // gone already: nothing to refuse
			}
			return err
		}
	}
	if err := a.o.Jira.DeleteComment(ctx, p.LocalID, id); err != nil && !notFound(err) {
		if !isCopy {
			return commentDeleteBack.jiraErr(ctx, a, c, id, p.LocalKey, err)
		}
		return fmt.Errorf("delete comment %s of %s: %w", id, p.LocalKey, err)
	}
	if err := a.after(StepComment, c); err != nil {
		return err
	}
	return a.record(ctx, c, p.LocalID, id, []store.SentItem{
		{ItemKind: detect.KindComment, ItemID: id, Version: detect.VersionDeleted}}, nil)
}

func (a *Applier) isSyncUser(ctx context.Context, name string) bool {
	u, err := a.user(ctx)
	return err == nil && u == name
}

// ---- attachments ----

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (a *Applier) attachmentAdd(ctx context.Context, c wire.Change, p store.IssuePair) error {
	at := c.Attachment
	if at == nil {
		return badChange(c, "attachment change without an attachment")
	}
	if at.Data == nil && at.ChunkRef != "" {
		return errclass.New(errclass.Permanent, "kind_not_supported", fmt.Errorf("change %s of %s: attachment %q travels in chunks, which this version cannot read", c.ID, issueName(c), at.Filename))
	}
	if at.SHA256 != "" && sha(at.Data) != at.SHA256 {
		return badChange(c, fmt.Sprintf("attachment %q does not match its checksum", at.Filename))
	}
	want := sha(at.Data)
	if done, err := a.attachmentCopyKnown(ctx, c, p, want); done || err != nil {
		return err // resent (resync): see resync.go
	}
	had, err := a.setIntent(ctx, c)
	if err != nil {
		return err
	}
	var got *jira.Attachment
	if had || detect.IsResyncChange(c.ID) {
		// The marker: an attachment by the sync user with the same name,
		// size and content.
		user, err := a.user(ctx)
		if err != nil {
			return err
		}
		as, err := a.o.Jira.Attachments(ctx, p.LocalID)
		if err != nil {
			return fmt.Errorf("look for the attachment change %s may have added: %w", c.ID, err)
		}
		for i := range as {
			x := as[i]
			if x.Filename != at.Filename || x.Size != int64(len(at.Data)) || x.Author == nil || x.Author.Name != user {
				continue
			}
			if taken, err := a.attachmentTaken(ctx, p.LocalID, x.ID, at.ID); err != nil || taken {
				if err != nil {
					return err
				}
				continue
			}
			b, err := a.o.Jira.DownloadAttachment(ctx, x)
			if err != nil {
				return fmt.Errorf("read attachment %s of %s: %w", x.ID, p.LocalKey, err)
			}
			if sha(b) == want {
				got = &x
				a.log.Info("found attachment added before a crash", "change_id", c.ID, "attachment", x.ID)
				break
			}
		}
	}
	if got == nil {
		up, err := a.o.Jira.AddAttachment(ctx, p.LocalID, at.Filename, at.Data)
		if err != nil {
			return fmt.Errorf("upload attachment %q of %s to %s: %w", at.Filename, issueName(c), p.LocalKey, err)
		}
		if err := a.after(StepAttachment, c); err != nil {
			return err
		}
		// Verify what Jira stored before recording it.
		b, err := a.o.Jira.DownloadAttachment(ctx, up)
		if err != nil {
			return fmt.Errorf("verify attachment %s of %s: %w", up.ID, p.LocalKey, err)
		}
		if !bytes.Equal(b, at.Data) {
			_ = a.o.Jira.DeleteAttachment(ctx, up.ID)
			return errclass.New(errclass.Temporary, "checksum", fmt.Errorf("attachment %q uploaded to %s came back with sha256 %s, want %s; removed, will upload again", at.Filename, p.LocalKey, sha(b), want))
		}
		got = &up
	}
	return a.record(ctx, c, p.LocalID, got.ID, []store.SentItem{
		{ItemKind: detect.KindAttachment, ItemID: got.ID},
		{ItemKind: detect.KindAttachmentPeer, ItemID: got.ID, Version: at.ID},
	}, map[string]string{a.attachmentKey(at.ID): got.ID, a.intentKey(c.ID): ""})
}

// attachmentTaken reports whether a local attachment is already the copy
// of another peer attachment than peerID (two uploads of the same file).
func (a *Applier) attachmentTaken(ctx context.Context, localIssue, id, peerID string) (bool, error) {
	var ok bool
	err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		v, had, err := tx.SentGet(a.o.SyncID, localIssue, detect.KindAttachmentPeer, id)
		ok = had && v != peerID
		return err
	})
	return ok, storeErr("read attachment records", err)
}

func (a *Applier) attachmentDelete(ctx context.Context, c wire.Change, p store.IssuePair) error {
	at := c.Attachment
	if at == nil {
		return badChange(c, "attachment change without an attachment")
	}
	id := at.PeerID
	if id == "" {
		var ok bool
		var err error
		if id, ok, err = a.cursor(ctx, a.attachmentKey(at.ID)); err != nil {
			return err
		} else if !ok {
			return a.record(ctx, c, p.LocalID, "", nil, nil) // never copied here
		}
	}
	if gone, err := a.goneHere(ctx, p.LocalID, detect.KindAttachment, id); err != nil || gone {
		return errOr(err, func() error { return a.record(ctx, c, p.LocalID, "", nil, nil) }) // a resync sends deletes again
	}
	if at.PeerID != "" {
		if err := attachmentDeleteBk.refused(a, c); err != nil {
			if _, gerr := a.o.Jira.Attachment(ctx, id); notFound(gerr) {
				return a.record(ctx, c, p.LocalID, "", nil, nil) // gone already: nothing to refuse
			}
			return err
		}
	}
	if err := a.o.Jira.DeleteAttachment(ctx, id); err != nil && !notFound(err) {
		if at.PeerID != "" {
			return attachmentDeleteBk.jiraErr(ctx, a, c, id, p.LocalKey, err)
		}
		return fmt.Errorf("delete attachment %s of %s: %w", id, p.LocalKey, err)
	}
	if err := a.after(StepAttachment, c); err != nil {
		return err
	}
	return a.record(ctx, c, p.LocalID, id, []store.SentItem{{ItemKind: detect.KindAttachment, ItemID: id, Version: detect.VersionDeleted}}, nil)
}

// ---- watchers ----

func (a *Applier) watcher(ctx context.Context, cm ContentMapping, c wire.Change, p store.IssuePair) error {
	if c.Watcher == nil {
		return badChange(c, "watcher change without a watcher")
	}
	name, ok, err := cm.IncomingUser(ctx, c.IssueKey, *c.Watcher)
	if err != nil && !errors.Is(err, context.Canceled) {
		// A watcher nobody here matches is skipped, not parked.
		a.log.Info("watcher not mapped here", "change_id", c.ID, "err", err)
		return a.unmappedWatcher(ctx, cm, c, p)
	}
	if err != nil {
		return err
	}
	if !ok {
		return a.unmappedWatcher(ctx, cm, c, p)
	}
	ws, err := a.o.Jira.Watchers(ctx, p.LocalID)
	if err != nil {
		return fmt.Errorf("read watchers of %s: %w", p.LocalKey, err)
	}
	watching := slices.ContainsFunc(ws, func(u jira.User) bool { return u.Name == name })
	add := c.Kind == wire.WatcherAdd
	localAt, err := a.elementTime(ctx, p.LocalID, detect.KindWatcherClock, name)
	if err != nil {
		return err
	}
	if add != watching && !a.peerWins(c.At, localAt) {
		return a.lost(ctx, c, p.LocalID, a.elementConflict(c, p.LocalKey, "watcher "+name, watchState(watching), watchState(add), localAt))
	}
	if add != watching {
		if err := a.setBusy(ctx, p.LocalID, detect.KindWatchers, c.ID); err != nil {
			return err
		}
	}
	switch {
	case add && !watching:
		err = a.o.Jira.AddWatcher(ctx, p.LocalID, name)
	case !add && watching:
		err = a.o.Jira.RemoveWatcher(ctx, p.LocalID, name)
	}
	if err != nil {
		return fmt.Errorf("change watcher %s of %s: %w", name, p.LocalKey, err)
	}
	if err := a.after(StepWatcher, c); err != nil {
		return err
	}
	// Move the recorded snapshot by this one name only, so a person's
	// own watcher change here that detection has not seen yet is still
	// sent.
	return storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		prev, had, err := tx.SentGet(a.o.SyncID, p.LocalID, detect.KindWatchers, "")
		if err != nil {
			return err
		}
		if had {
			seq, names := detect.ParseWatcherRecord(prev)
			names = slices.DeleteFunc(names, func(n string) bool { return n == name })
			if add {
				names = append(names, name)
			}
			if err := tx.SentPut(store.SentItem{SyncID: a.o.SyncID, IssueID: p.LocalID, ItemKind: detect.KindWatchers, Version: detect.WatcherRecord(seq, names)}); err != nil {
				return err
			}
		}
		clk := clockItem(detect.KindWatcherClock, name, c.At)
		clk.SyncID, clk.IssueID = a.o.SyncID, p.LocalID
		if err := detect.MergeClock(tx, clk); err != nil {
			return err
		}
		if err := tx.CursorSet(detect.BusyCursor(a.o.SyncID, p.LocalID, detect.KindWatchers), ""); err != nil {
			return err
		}
		if _, err := tx.SkipClear(a.watcherSkip(c, p)); err != nil {
			return err
		}
		_, err = tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: p.LocalID, Result: name, AppliedAt: tx.Now()})
		return err
	}))
}

// setBusy tells detection that the change is about to write kind on the
// local issue: until its record is committed, detection leaves the
// issue's watchers (or links) alone, so a crash between the Jira write
// and the record cannot send the bridge's own write back (watchers and
// links carry no author to recognise it by).
func (a *Applier) setBusy(ctx context.Context, localIssue, kind, changeID string) error {
	return storeErr("record intent of "+changeID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.CursorSet(detect.BusyCursor(a.o.SyncID, localIssue, kind), changeID)
	}))
}

// newCopyWatchers is the watcher record of an issue the bridge created:
// of its watchers only the one Jira adds by itself (the reporter) came
// with the peer's issue; anyone else watching is a person's change here
// and is sent. Nil when watchers are not synced.
func (a *Applier) newCopyWatchers(ctx context.Context, issueID string) (*store.SentItem, error) {
	cm, ok := a.o.Mapping.(ContentMapping)
	if !ok || cm.Def() == nil || !cm.Def().Watchers.Enabled {
		return nil, nil
	}
	is, err := a.o.Jira.GetIssue(ctx, issueID, []string{"reporter"}, nil)
	if err != nil {
		return nil, fmt.Errorf("read reporter of new issue %s: %w", issueID, err)
	}
	var rep jira.User
	var names []string
	if ok, _ := is.Field("reporter", &rep); ok && rep.Name != "" && !a.isSyncUser(ctx, rep.Name) {
		ws, err := a.o.Jira.Watchers(ctx, issueID)
		if err != nil {
			return nil, fmt.Errorf("read watchers of new issue %s: %w", issueID, err)
		}
		if slices.ContainsFunc(ws, func(u jira.User) bool { return u.Name == rep.Name }) {
			names = append(names, rep.Name)
		}
	}
	return &store.SentItem{SyncID: a.o.SyncID, IssueID: issueID, ItemKind: detect.KindWatchers, Version: detect.WatcherRecord(0, names)}, nil
}

// UnmappedWatchersCursor is the store cursor counting the peer's
// watchers the user policy could not map here (skipped, for status).
func UnmappedWatchersCursor(syncID string) string { return "watchers-unmapped/" + syncID }

// unmappedWatcher skips a peer's watcher that maps to nobody here, in one
// transaction: the peer watcher record (detect.KindPeerWatcher, so a
// resync from this side leaves them watching on the peer), the entry in
// the list of skipped items, the count and the ledger.
func (a *Applier) unmappedWatcher(ctx context.Context, cm ContentMapping, c wire.Change, p store.IssuePair) error {
	return storeErr("commit change "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		state := "1"
		if c.Kind == wire.WatcherRemove {
			state = "0"
		}
		if err := tx.SentPut(store.SentItem{SyncID: a.o.SyncID, IssueID: p.LocalID, ItemKind: detect.KindPeerWatcher,
			ItemID: detect.PeerWatcherID(*c.Watcher), Version: state}); err != nil {
			return err
		}
		// Listed for status while the peer's person watches; a removal
		// ends it.
		if c.Kind == wire.WatcherRemove {
			if _, err := tx.SkipClear(a.watcherSkip(c, p)); err != nil {
				return err
			}
		} else if err := tx.SkipRecord(store.Skip{SkipKey: a.watcherSkip(c, p), IssueKey: p.LocalKey,
			Reason: unmappedWatcherReason(*c.Watcher, cm.Def())}); err != nil {
			return err
		}
		v, _, err := tx.CursorGet(UnmappedWatchersCursor(a.o.SyncID))
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(v)
		if err := tx.CursorSet(UnmappedWatchersCursor(a.o.SyncID), strconv.Itoa(n+1)); err != nil {
			return err
		}
		_, err = tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: p.LocalID, Result: "unmapped", AppliedAt: tx.Now()})
		return err
	}))
}

// ---- links ----

// waitingLinksKey is the cursor holding link changes whose other end has
// no local issue yet (JSON array of changes).
func (a *Applier) waitingLinksKey() string { return waitingLinksCursor(a.o.SyncID) }

func waitingLinksCursor(syncID string) string { return "links-waiting/" + syncID }

func (a *Applier) link(ctx context.Context, cm ContentMapping, c wire.Change, p store.IssuePair) error {
	if c.Link == nil || c.Link.ID == "" || c.Link.OtherIssueID == "" {
		return badChange(c, "link change without a link, or its link without an id or other issue")
	}
	other, found, err := a.pairByPeer(ctx, c.Link.OtherIssueID)
	if err != nil {
		return err
	}
	if c.Kind == wire.LinkRemove {
		// A removal of a link that still waits drops it from the list.
		if err := a.unwait(ctx, c, p.LocalID, func(w wire.Change) bool {
			return w.Link != nil && w.Link.ID == c.Link.ID && w.IssueID == c.IssueID
		}); err != nil {
			return err
		}
	}
	_, typeErr := cm.LinkTypeName(c.IssueKey, c.Link.Type)
	if !found || typeErr != nil {
		if c.Kind == wire.LinkAdd {
			// The other end has not arrived, or the type has no local
			// name: set the link aside without holding the lane, listed
			// for status; it is made when both ends are paired and the
			// type is mapped.
			reason := waitingLinkReason(c)
			if typeErr != nil {
				reason = linkTypeReason(c)
			}
			return storeErr("set link aside "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
				result := "waiting"
				if !found {
					// An other end that will never come here: the link
					// is listed as not made instead of waiting.
					why, err := awaitedGone(tx, a.o.SyncID, c.Link.OtherIssueID)
					if err != nil {
						return err
					}
					if why != "" {
						reason, result = goneLinkReason(c, why), "other_end_gone"
					}
				}
				a.log.Info("link set aside", "change_id", c.ID, "other_peer_issue", c.Link.OtherIssueID, "reason", reason)
				if result == "waiting" {
					if err := a.editWaitingTx(tx, func(ws []wire.Change) []wire.Change { return append(ws, c) }); err != nil {
						return err
					}
				}
				if err := tx.SkipRecord(store.Skip{SkipKey: a.linkSkip(c, p.LocalID), IssueKey: p.LocalKey, Reason: reason}); err != nil {
					return err
				}
				_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: p.LocalID, Result: result, AppliedAt: tx.Now()})
				return err
			}))
		}
		// A removal of a link never made here: nothing to remove.
		return a.record(ctx, c, p.LocalID, "", nil, nil)
	}
	return a.linkBetween(ctx, cm, c, p, other)
}

// linkBetween makes or removes the link between two paired issues. Links
// are idempotent (type and ends), so no intent is needed.
func (a *Applier) linkBetween(ctx context.Context, cm ContentMapping, c wire.Change, from, to store.IssuePair) error {
	typeName, err := cm.LinkTypeName(c.IssueKey, c.Link.Type)
	if err != nil {
		return unmappable(c, err)
	}
	from.LocalID, to.LocalID = orID(from), orID(to)
	ls, err := a.o.Jira.IssueLinks(ctx, from.LocalID)
	if err != nil {
		return fmt.Errorf("read links of %s: %w", from.LocalKey, err)
	}
	var have *jira.IssueLink
	for i := range ls {
		l := ls[i]
		if l.OutwardIssue != nil && l.OutwardIssue.ID == to.LocalID && l.Type.Name == typeName {
			have = &l
			break
		}
	}
	alias := c.Link.Type
	clockID := detect.LinkClockID(alias, to.LocalID)
	localAt, err := a.elementTime(ctx, from.LocalID, detect.KindLinkClock, clockID)
	if err != nil {
		return err
	}
	if want := c.Kind == wire.LinkAdd; want != (have != nil) && !a.peerWins(c.At, localAt) {
		return a.lost(ctx, c, from.LocalID, a.elementConflict(c, from.LocalKey, "link "+typeName+" "+to.LocalKey, linkState(have != nil), linkState(want), localAt))
	}
	clk := clockItem(detect.KindLinkClock, clockID, c.At)
	if c.Kind == wire.LinkRemove {
		if have == nil {
			return a.record(ctx, c, from.LocalID, "", []store.SentItem{clk}, nil)
		}
		if err := a.setBusy(ctx, from.LocalID, detect.KindLink, c.ID); err != nil {
			return err
		}
		if err := a.o.Jira.DeleteLink(ctx, have.ID); err != nil && !notFound(err) {
			return fmt.Errorf("remove link %s of %s: %w", have.ID, from.LocalKey, err)
		}
		if err := a.after(StepLink, c); err != nil {
			return err
		}
		return a.record(ctx, c, from.LocalID, have.ID, []store.SentItem{
			{ItemKind: detect.KindLink, ItemID: have.ID, Version: detect.LinkVersion(detect.LinkRemoved, alias, to.LocalID)}, clk},
			map[string]string{detect.BusyCursor(a.o.SyncID, from.LocalID, detect.KindLink): ""})
	}
	if have == nil {
		if err := a.setBusy(ctx, from.LocalID, detect.KindLink, c.ID); err != nil {
			return err
		}
		if err := a.o.Jira.CreateLink(ctx, typeName, from.LocalKey, to.LocalKey); err != nil {
			return fmt.Errorf("link %s to %s: %w", from.LocalKey, to.LocalKey, err)
		}
		if err := a.after(StepLink, c); err != nil {
			return err
		}
		if ls, err = a.o.Jira.IssueLinks(ctx, from.LocalID); err != nil {
			return fmt.Errorf("read links of %s: %w", from.LocalKey, err)
		}
		for i := range ls {
			l := ls[i]
			if l.OutwardIssue != nil && l.OutwardIssue.ID == to.LocalID && l.Type.Name == typeName {
				have = &l
				break
			}
		}
		if have == nil {
			return errclass.New(errclass.Temporary, "jira_bad_answer", fmt.Errorf("link %s %s %s was made but is not listed", from.LocalKey, typeName, to.LocalKey))
		}
	}
	return a.record(ctx, c, from.LocalID, have.ID, []store.SentItem{
		{ItemKind: detect.KindLink, ItemID: have.ID, Version: detect.LinkVersion(detect.LinkActive, alias, to.LocalID)}, clk},
		map[string]string{detect.BusyCursor(a.o.SyncID, from.LocalID, detect.KindLink): ""})
}

func orID(p store.IssuePair) string {
	if p.LocalID != "" {
		return p.LocalID
	}
	return p.LocalKey
}

// unwait drops the waiting links that match (the one made, or removed by
// the peer) and their entry in the list of skipped items.
func (a *Applier) unwait(ctx context.Context, c wire.Change, localIssue string, match func(wire.Change) bool) error {
	return storeErr("update waiting links", a.o.Store.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.SkipClear(a.linkSkip(c, localIssue)); err != nil {
			return err
		}
		return a.editWaitingTx(tx, func(ws []wire.Change) []wire.Change { return slices.DeleteFunc(ws, match) })
	}))
}

func (a *Applier) editWaitingTx(tx *store.Tx, fn func([]wire.Change) []wire.Change) error {
	return editWaiting(tx, a.o.SyncID, fn)
}

func editWaiting(tx *store.Tx, syncID string, fn func([]wire.Change) []wire.Change) error {
	key := waitingLinksCursor(syncID)
	v, _, err := tx.CursorGet(key)
	if err != nil {
		return err
	}
	var ws []wire.Change
	if v != "" {
		if err := json.Unmarshal([]byte(v), &ws); err != nil {
			return fmt.Errorf("decode waiting links: %w", err)
		}
	}
	ws = fn(ws)
	if len(ws) == 0 {
		return tx.CursorSet(key, "")
	}
	b, err := json.Marshal(ws)
	if err != nil {
		return err
	}
	return tx.CursorSet(key, string(b))
}

// ApplyWaitingLinks makes the links that were set aside for a missing
// other end, where both ends are now paired. Apply calls it after a create
// or pair; links that still wait stay. It returns how many it made.
func (a *Applier) ApplyWaitingLinks(ctx context.Context) (int, error) {
	var ws []wire.Change
	v, ok, err := a.cursor(ctx, a.waitingLinksKey())
	if err != nil || !ok {
		return 0, err
	}
	if err := json.Unmarshal([]byte(v), &ws); err != nil {
		return 0, errclass.New(errclass.Permanent, "store", fmt.Errorf("decode waiting links: %w", err))
	}
	cm, ok := a.o.Mapping.(ContentMapping)
	if !ok {
		return 0, nil
	}
	n := 0
	for _, c := range ws {
		from, f1, err := a.pairByPeer(ctx, c.IssueID)
		if err != nil {
			return n, err
		}
		to, f2, err := a.pairByPeer(ctx, c.Link.OtherIssueID)
		if err != nil {
			return n, err
		}
		if !f1 || !f2 {
			continue
		}
		if _, terr := cm.LinkTypeName(c.IssueKey, c.Link.Type); terr != nil {
			// Both ends are here but the type is not mapped: it waits
			// for the mapping, and status says so.
			if err := storeErr("list link "+c.ID, a.o.Store.Update(ctx, func(tx *store.Tx) error {
				return tx.SkipRecord(store.Skip{SkipKey: a.linkSkip(c, from.LocalID), IssueKey: from.LocalKey, Reason: linkTypeReason(c)})
			})); err != nil {
				return n, err
			}
			continue
		}
		// The ledger already holds c (set aside): linkBetween records
		// again, which the ledger takes as a duplicate.
		if err := a.linkBetween(ctx, cm, c, from, to); err != nil {
			return n, err
		}
		if err := a.unwait(ctx, c, from.LocalID, func(w wire.Change) bool { return w.ID == c.ID }); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ---- sub-tasks ----

// ParentField returns the create field that puts a sub-task under the
// local copy of its peer parent. A parent that has no local issue yet is a
// ReasonWaitingParent error.
func (a *Applier) ParentField(ctx context.Context, c wire.Change) (map[string]string, error) {
	if c.ParentIssueID == "" {
		return nil, nil
	}
	if err := a.refusedErr(c, "subtasks"); err != nil {
		return nil, err
	}
	p, found, err := a.pairByPeer(ctx, c.ParentIssueID)
	if err != nil {
		return nil, err
	}
	if !found {
		why, err := a.awaitedGone(ctx, c.ParentIssueID)
		if err != nil {
			return nil, err
		}
		if why != "" {
			return nil, errclass.New(errclass.Permanent, ReasonParentGone, parentGoneErr(c, why))
		}
		return nil, errclass.New(errclass.Permanent, ReasonWaitingParent,
			fmt.Errorf("sub-task %s waits for its parent (peer issue %s) to be created here", issueName(c), c.ParentIssueID))
	}
	return map[string]string{"key": p.LocalKey}, nil
}

// ParentReady reports whether a change waiting for its parent can go now:
// the parent has arrived, or it never will (its create was skipped, or it
// was deleted), and then the change parks with ReasonParentGone.
func (a *Applier) ParentReady(ctx context.Context, c wire.Change) (bool, error) {
	if c.ParentIssueID == "" {
		return true, nil
	}
	_, found, err := a.pairByPeer(ctx, c.ParentIssueID)
	if err != nil || found {
		return found, err
	}
	why, err := a.awaitedGone(ctx, c.ParentIssueID)
	return why != "", err
}

// FeatureOf names the sync definition feature a content kind belongs to
// ("comments", "attachments", "watchers", "links"); "" for other kinds.
func FeatureOf(k wire.ChangeKind) string {
	switch k {
	case wire.CommentAdd, wire.CommentEdit, wire.CommentDelete:
		return "comments"
	case wire.AttachmentAdd, wire.AttachmentDelete:
		return "attachments"
	case wire.WatcherAdd, wire.WatcherRemove, wire.WatcherSet:
		return "watchers"
	case wire.LinkAdd, wire.LinkRemove, wire.LinkSet:
		return "links"
	}
	return ""
}

// RefuseFeatures stops applying the changes of features the sync user
// lacks Jira permissions for: they park with why (the permission check's
// message) instead of failing on their first write. An empty map lifts
// every refusal.
func (a *Applier) RefuseFeatures(why map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refused = maps.Clone(why)
}

func (a *Applier) refusedErr(c wire.Change, feature string) error {
	a.mu.Lock()
	why, ok := a.refused[feature]
	a.mu.Unlock()
	if !ok {
		return nil
	}
	return errclass.New(errclass.Permanent, "permission",
		fmt.Errorf("change %s of %s: %s is not started: %s", c.ID, issueName(c), feature, why))
}

// enabled reports whether this side's sync definition switches on the
// feature of c. A notice about a filtered attachment belongs to
// attachments.
func enabled(def *config.SyncDef, c wire.Change) bool {
	if def == nil {
		return true
	}
	switch FeatureOf(c.Kind) {
	case "comments":
		if c.Kind == wire.CommentAdd && c.Comment != nil && strings.HasPrefix(c.Comment.ID, "notice-") {
			return def.Attachments.Enabled || def.Comments.Enabled
		}
		return def.Comments.Enabled
	case "attachments":
		return def.Attachments.Enabled
	case "watchers":
		return def.Watchers.Enabled
	case "links":
		return def.Links.Enabled
	}
	return true
}
