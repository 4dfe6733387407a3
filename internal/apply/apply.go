// Package apply writes the peer's changes into the local Jira as the sync
// user, exactly once: a ledger of applied change ids, a durable intent
// before every write that is not idempotent (creating an issue), and a
// marker written in the same Jira call (the issue property
// "jirabridge.origin") so that after a crash between the Jira write and the
// ledger commit the applier finds what it already did instead of writing
// again.
//
// Every edit and transition carries historyMetadata of type "jirabridge"
// with the change id, so detection recognises the bridge's own writes even
// when the sync user is shared with people.
//
// Pairs: after creating the copy of a peer issue, the applier records the
// pair and, in the same transaction, queues an issue.pair change for the
// peer (IssueID: the copy, PeerIssueID: the original), so the origin side
// records the pair too and can route the copy's later changes. Both issues
// show the pair in Jira: a remote link with global id
// "jirabridge:<sync>:<peer issue id>" and the issue property
// "jirabridge.sync".
//
// Conflicts, per field (and for status and issue type): the peer's value
// wins when its Jira time is newer than the newest local change of the
// field by a person (counted as detection counts it: an entry that changed
// the field's wire value), a tie goes to the master, and a field this side
// only receives always takes the peer's value. A conflict is recorded
// (store Conflict) unless the peer's change started from our current value.
// The losing side's value is not written; the winner's own change reaches
// the other side by itself, so both converge.
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Entity property keys the applier writes.
const (
	// OriginProperty marks an issue the bridge created, with the change
	// that created it; written in the create call itself.
	OriginProperty = "jirabridge.origin"
	// SyncProperty shows the sync state of a paired issue in Jira.
	SyncProperty = "jirabridge.sync"
	// MetadataType is the historyMetadata type of the bridge's own edits.
	MetadataType = "jirabridge"
	// ReasonNotPaired is the errclass reason of a change of a peer issue
	// that has no local issue yet. The replay looks for the peer's pair
	// announcement further down the lane before it parks such a change: a
	// person may edit a new copy before the bridge that created it has
	// announced the pair.
	ReasonNotPaired = "not_paired"
)

// Step names a Jira write inside one Apply, for Hooks.
type Step string

// Steps, in the order a create goes through them.
const (
	StepCreate     Step = "create"
	StepTransition Step = "transition"
	StepEdit       Step = "edit"
	StepRemoteLink Step = "remotelink"
	StepProperty   Step = "property"
	StepDelete     Step = "delete"
	StepNotice     Step = "notice"
)

// Hooks let tests stop an Apply between a Jira write and the ledger commit.
type Hooks struct {
	// AfterWrite runs after each successful Jira write of a change. An
	// error stops Apply at once and is returned unchanged: to the caller it
	// looks as if the bridge died right after the write.
	AfterWrite func(step Step, c wire.Change) error
}

// Options configure an Applier. Jira, Store, SyncID, ProjectKey and Mapping
// are required; the rest have defaults.
type Options struct {
	Jira       *jira.Client
	Store      *store.Store
	SyncID     string
	Role       store.Role // master wins conflict ties; default slave
	ProjectKey string     // the local project new issues are created in
	Mapping    Mapping
	// SyncUser is the sync user's username, for the marker search after a
	// crash; default the Jira client's username (or /myself with a token).
	SyncUser string
	// PeerURL is the peer Jira's base URL, for the remote link to the peer
	// issue; empty gives a "jirabridge:" link.
	PeerURL string
	// PeerName is shown in the remote link's title; default "Partner Jira".
	PeerName string
	// Location is the sync user's time zone, in which JQL reads dates;
	// nil asks Jira (GET myself) the first time a marker search needs it.
	Location *time.Location
	Now      func() time.Time
	Hooks    Hooks
	Logger   *slog.Logger
	// OnConflict, when set, is told of each conflict once it is recorded
	// (committed with its change): the engine counts conflicts_total.
	OnConflict func(store.Conflict)
	// OnSkip, when set, is told of each change recorded as done without
	// a write, by reason (ReasonPairDissolved): changes_skipped_total.
	OnSkip func(reason string)
	// PropagateDeletes deletes the local issue when the peer deleted its
	// partner (the sync definition's deletes: propagate); otherwise the
	// local issue stays, unpaired, with a comment saying why.
	PropagateDeletes bool
}

// Applier applies inbound changes to the local Jira. It is safe for
// concurrent use on changes of different issues; changes of one issue must
// come one at a time, in order (the replay lanes see to it).
type Applier struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	syncUser string
	loc      *time.Location
	graph    map[string]map[string][]jira.Transition
	refused  map[string]string // feature -> why it may not run (permissions)
}

// New checks the options and builds an Applier; it makes no call.
func New(o Options) (*Applier, error) {
	var miss []string
	if o.Jira == nil {
		miss = append(miss, "Jira")
	}
	if o.Store == nil {
		miss = append(miss, "Store")
	}
	if o.SyncID == "" {
		miss = append(miss, "SyncID")
	}
	if o.ProjectKey == "" {
		miss = append(miss, "ProjectKey")
	}
	if o.Mapping == nil {
		miss = append(miss, "Mapping")
	}
	if len(miss) > 0 {
		return nil, fmt.Errorf("apply: options missing: %s", strings.Join(miss, ", "))
	}
	if o.Role == "" {
		o.Role = store.RoleSlave
	}
	if o.PeerName == "" {
		o.PeerName = "Partner Jira"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Applier{o: o, log: o.Logger.With("component", "apply", "sync", o.SyncID),
		syncUser: o.SyncUser, loc: o.Location, graph: map[string]map[string][]jira.Transition{}}, nil
}

// Origin is the value of the OriginProperty on an issue the bridge created.
type Origin struct {
	Sync         string `json:"sync"`
	ChangeID     string `json:"change_id"`
	PeerIssueID  string `json:"peer_issue_id"`
	PeerIssueKey string `json:"peer_issue_key,omitempty"`
}

// SyncState is the value of the SyncProperty: what Backbone's sync panel
// shows, in Jira's own terms.
type SyncState struct {
	Sync          string    `json:"sync"`
	State         string    `json:"state"` // StateSynced, StateParked or StateUnpaired
	PeerIssueID   string    `json:"peer_issue_id"`
	PeerIssueKey  string    `json:"peer_issue_key,omitempty"`
	LastChangeID  string    `json:"last_change_id,omitempty"`
	LastAppliedAt time.Time `json:"last_applied_at"`
	// While parked: the reason (error class), the `jirabridge messages`
	// id, since when, and whether the parked change came from the peer
	// ("incoming") or was to be sent ("outgoing").
	Reason      string    `json:"reason,omitempty"`
	MessageID   int64     `json:"message_id,omitempty"`
	ParkedSince time.Time `json:"parked_since,omitzero"`
	Direction   string    `json:"direction,omitempty"`
	// Note says in words what the state means for a person reading the
	// property.
	Note string `json:"note,omitempty"`
}

// States of the SyncProperty.
const (
	StateSynced = "synced"
	// StateParked: a change of the issue could not be applied (or sent)
	// and waits for an operator; later changes of the issue wait behind
	// it, so the issue is not syncing.
	StateParked = "parked"
	// StateUnpaired: the partner issue was deleted; this issue is no
	// longer synced.
	StateUnpaired = "unpaired"
)

// Apply writes one inbound change to the local Jira unless the ledger says
// it was applied already. Errors are errclass errors: Permanent parks the
// issue's lane, Temporary and BackOff retry, Pause stops the sync.
func (a *Applier) Apply(ctx context.Context, c wire.Change) error {
	if c.ID == "" || c.IssueID == "" {
		return errclass.New(errclass.Permanent, "bad_change", errors.New("change without id or issue id"))
	}
	done, dissolved, err := a.appliedOrDissolved(ctx, c)
	if err != nil || done {
		return err
	}
	if dissolved {
		return a.skipDissolved(ctx, c)
	}
	switch c.Kind {
	case wire.IssueCreate:
		return a.create(ctx, c)
	case wire.IssueUpdate, wire.IssueMove:
		p, found, err := a.pairByPeer(ctx, c.IssueID)
		if err != nil {
			return err
		}
		if !found {
			return errclass.New(errclass.Permanent, ReasonNotPaired,
				fmt.Errorf("change %s of %s: the peer issue has no local issue yet (its creation was not applied)", c.ID, issueName(c)))
		}
		return a.update(ctx, c, p)
	case wire.IssuePair:
		return a.pair(ctx, c)
	case wire.IssueDelete:
		return a.deleted(ctx, c)
	default:
		if IsContent(c.Kind) {
			return a.ApplyContent(ctx, c)
		}
		return errclass.New(errclass.Permanent, "kind_not_supported",
			fmt.Errorf("change %s of %s: kind %q is not applied by this version", c.ID, issueName(c), c.Kind))
	}
}

func issueName(c wire.Change) string {
	if c.IssueKey != "" {
		return "peer issue " + c.IssueKey
	}
	return "peer issue " + c.IssueID
}

func storeErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return errclass.New(errclass.Temporary, "store", fmt.Errorf("%s: %w", what, err))
}

// unmappable keeps a mapping error's class (Permanent, reason "mapping")
// and says which change it stopped.
func unmappable(c wire.Change, err error) error {
	err = fmt.Errorf("change %s of %s: %w", c.ID, issueName(c), err)
	var ce *errclass.Error
	if errors.As(err, &ce) {
		return err
	}
	return errclass.New(errclass.Permanent, "mapping", err)
}

func (a *Applier) applied(ctx context.Context, changeID string) (bool, error) {
	done, _, err := a.appliedOrDissolved(ctx, wire.Change{ID: changeID})
	return done, err
}

// appliedOrDissolved says whether change c is in the ledger already and
// whether its peer issue's pair was dissolved (one of the two issues was
// deleted).
func (a *Applier) appliedOrDissolved(ctx context.Context, c wire.Change) (done, dissolved bool, err error) {
	err = a.o.Store.View(ctx, func(tx *store.Tx) error {
		_, err := tx.LedgerGet(c.ID)
		if err == nil {
			done = true
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if c.IssueID == "" {
			return nil
		}
		_, dissolved, err = tx.CursorGet(DissolvedCursor(a.o.SyncID, c.IssueID))
		return err
	})
	return done, dissolved, storeErr("read ledger", err)
}

func (a *Applier) pairByPeer(ctx context.Context, peerID string) (store.IssuePair, bool, error) {
	var p store.IssuePair
	var found bool
	err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		p, err = tx.PairByPeer(a.o.SyncID, peerID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return p, found, storeErr("read issue pair", err)
}

func (a *Applier) after(step Step, c wire.Change) error {
	if a.o.Hooks.AfterWrite == nil {
		return nil
	}
	return a.o.Hooks.AfterWrite(step, c)
}

func (a *Applier) meta(c wire.Change) *jira.HistoryMetadata {
	return &jira.HistoryMetadata{Type: MetadataType, Description: "jirabridge sync",
		ExtraData: map[string]string{"change_id": c.ID, "sync": a.o.SyncID}}
}

// intentKey names the cursor that holds the time a create was about to be
// sent; it exists from just before the Jira call until the ledger commit.
func (a *Applier) intentKey(changeID string) string {
	return "intent/" + a.o.SyncID + "/" + changeID
}

// create creates the local copy of a peer issue. The intent is durable
// before the call, the marker travels in the call, and a retry after a
// crash looks for the marker instead of creating a second issue.
func (a *Applier) create(ctx context.Context, c wire.Change) error {
	if p, found, err := a.pairByPeer(ctx, c.IssueID); err != nil {
		return err
	} else if found {
		// Already paired (a resync, or an initial sync the peer repeats):
		// bring the existing issue to the sent state instead.
		return a.update(ctx, c, p)
	}
	typeName, err := a.o.Mapping.IssueTypeName(c.IssueKey, c.IssueType)
	if err != nil {
		return unmappable(c, err)
	}
	fields := map[string]any{
		"project":   map[string]string{"key": a.o.ProjectKey},
		"issuetype": map[string]string{"name": typeName},
	}
	for _, alias := range sortedKeys(c.Fields) {
		fc := c.Fields[alias]
		if fc.After.Kind() == wire.ValueNull {
			continue
		}
		as, ok, err := a.o.Mapping.Incoming(ctx, c.IssueKey, alias, fc.After)
		if err != nil {
			return unmappable(c, err)
		}
		if ok {
			fields[as.FieldID] = as.Value
		}
	}
	if c.ParentIssueID != "" {
		// A sub-task goes under the local copy of its parent; without one
		// yet it waits (ReasonWaitingParent) without holding other issues.
		parent, err := a.ParentField(ctx, c)
		if err != nil {
			return err
		}
		fields["parent"] = parent
	}
	var wantStatus string
	if c.Status != "" {
		if wantStatus, err = a.o.Mapping.StatusName(c.IssueKey, c.Status); err != nil {
			return unmappable(c, err)
		}
	}

	key := a.intentKey(c.ID)
	var intent string
	var hasIntent bool
	if err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		intent, hasIntent, err = tx.CursorGet(key)
		return err
	}); err != nil {
		return storeErr("read create intent", err)
	}
	var ref jira.Ref
	found := false
	if hasIntent && intent != "" {
		at, perr := time.Parse(time.RFC3339Nano, intent)
		if perr != nil {
			at = a.o.Now().Add(-24 * time.Hour)
		}
		if ref, found, err = a.findMarker(ctx, c, at); err != nil {
			return err
		}
	} else {
		if err := a.o.Store.Update(ctx, func(tx *store.Tx) error {
			return tx.CursorSet(key, a.o.Now().UTC().Format(time.RFC3339Nano))
		}); err != nil {
			return storeErr("record create intent", err)
		}
	}
	if !found {
		props := []jira.Property{{Key: OriginProperty, Value: Origin{Sync: a.o.SyncID, ChangeID: c.ID, PeerIssueID: c.IssueID, PeerIssueKey: c.IssueKey}}}
		if ref, err = a.o.Jira.CreateIssue(ctx, fields, props); err != nil {
			return fmt.Errorf("create copy of %s: %w", issueName(c), err)
		}
		a.log.Info("created issue", "change_id", c.ID, "peer_issue", c.IssueKey, "issue", ref.Key)
		if err := a.after(StepCreate, c); err != nil {
			return err
		}
	}
	if ref.Key == "" {
		is, err := a.o.Jira.GetIssue(ctx, ref.ID, []string{"summary"}, nil)
		if err != nil {
			return err
		}
		ref.Key = is.Key
	}
	var conflicts []store.Conflict
	if wantStatus != "" {
		move := true
		if found {
			// Recovered after a crash: a person may have changed the new
			// issue's status since it was created; the newer change wins.
			is, err := a.o.Jira.GetIssue(ctx, ref.ID, []string{"status"}, []string{"changelog"})
			if err != nil {
				return fmt.Errorf("read %s after a crash: %w", ref.Key, err)
			}
			if err := a.fullChangelog(ctx, &is); err != nil {
				return fmt.Errorf("read history of %s after a crash: %w", ref.Key, err)
			}
			if cur := statusName(is); !strings.EqualFold(cur, wantStatus) {
				curAlias, _ := a.o.Mapping.StatusAlias(cur)
				win, cf := a.decide(ctx, is, c, "status", wire.StringValue(curAlias), wire.StringValue(c.Status), wire.Value{}, false)
				if cf != nil {
					conflicts = append(conflicts, *cf)
				}
				move = win
			}
		}
		if move {
			if err := a.reachStatus(ctx, c, ref.Key, wantStatus); err != nil {
				return err
			}
		}
	}
	if err := a.showPair(ctx, c, ref.ID, ref.Key, c.IssueID, c.IssueKey); err != nil {
		return err
	}
	back := wire.Change{Version: wire.ChangeVersion, ID: "pair-" + c.ID, IssueID: ref.ID, IssueKey: ref.Key,
		Kind: wire.IssuePair, At: a.o.Now().UTC().Truncate(time.Millisecond), PeerIssueID: c.IssueID, PeerIssueKey: c.IssueKey}
	backJSON, err := json.Marshal(back)
	if err != nil {
		return fmt.Errorf("encode pair change: %w", err)
	}
	watchers, err := a.newCopyWatchers(ctx, ref.ID)
	if err != nil {
		return err
	}
	if err := storeErr("commit create", a.o.Store.Update(ctx, func(tx *store.Tx) error {
		if watchers != nil {
			if err := tx.SentPut(*watchers); err != nil {
				return err
			}
		}
		for _, cf := range conflicts {
			cf.At = tx.Now()
			if _, err := tx.ConflictAdd(cf); err != nil {
				return err
			}
		}
		if err := tx.PairPut(store.IssuePair{SyncID: a.o.SyncID, LocalID: ref.ID, LocalKey: ref.Key, PeerID: c.IssueID, PeerKey: c.IssueKey}); err != nil {
			return err
		}
		if _, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: ref.ID, Result: ref.Key, AppliedAt: tx.Now()}); err != nil {
			return err
		}
		if _, err := tx.PendingAdd(a.o.SyncID, ref.ID, backJSON); err != nil {
			return err
		}
		return tx.CursorSet(key, "")
	})); err != nil {
		return err
	}
	a.conflicted(conflicts)
	a.waitingLinks(ctx)
	return nil
}

// waitingLinks makes the links that waited for an issue that is now
// paired. A failure is only logged: the links stay set aside and the next
// create or pair tries again; the change itself is applied.
func (a *Applier) waitingLinks(ctx context.Context) {
	if n, err := a.ApplyWaitingLinks(ctx); err != nil {
		a.log.Warn("links waiting for their other end", "err", err)
	} else if n > 0 {
		a.log.Info("made links that waited for their other end", "links", n)
	}
}

// findMarker looks for an issue the sync user created since the intent
// (minus a minute: JQL dates have minute precision) whose origin property
// names change c.
func (a *Applier) findMarker(ctx context.Context, c wire.Change, intent time.Time) (jira.Ref, bool, error) {
	user, err := a.user(ctx)
	if err != nil {
		return jira.Ref{}, false, err
	}
	loc, err := a.location(ctx)
	if err != nil {
		return jira.Ref{}, false, err
	}
	since := intent.Add(-time.Minute).In(loc).Format("2006-01-02 15:04")
	jql := fmt.Sprintf(`project = %q AND creator = %q AND created >= %q ORDER BY created ASC`, a.o.ProjectKey, user, since)
	var ref jira.Ref
	found := false
	errFound := errors.New("found")
	err = a.o.Jira.SearchAll(ctx, jql, []string{"summary"}, nil, func(is jira.Issue) error {
		var o Origin
		ok, err := a.o.Jira.IssueProperty(ctx, is.ID, OriginProperty, &o)
		if err != nil {
			return err
		}
		if ok && o.ChangeID == c.ID && o.Sync == a.o.SyncID {
			ref, found = jira.Ref{ID: is.ID, Key: is.Key}, true
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return jira.Ref{}, false, fmt.Errorf("look for the issue change %s may have created: %w", c.ID, err)
	}
	if found {
		a.log.Info("found issue created before a crash", "change_id", c.ID, "issue", ref.Key)
	}
	return ref, found, nil
}

func (a *Applier) location(ctx context.Context) (*time.Location, error) {
	a.mu.Lock()
	loc := a.loc
	a.mu.Unlock()
	if loc != nil {
		return loc, nil
	}
	loc, err := a.o.Jira.TimeZone(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the sync user's time zone: %w", err)
	}
	a.mu.Lock()
	a.loc = loc
	a.mu.Unlock()
	return loc, nil
}

func (a *Applier) user(ctx context.Context) (string, error) {
	a.mu.Lock()
	u := a.syncUser
	a.mu.Unlock()
	if u != "" {
		return u, nil
	}
	if u = a.o.Jira.Username(); u == "" {
		me, err := a.o.Jira.Myself(ctx)
		if err != nil {
			return "", err
		}
		u = me.Name
	}
	a.mu.Lock()
	a.syncUser = u
	a.mu.Unlock()
	return u, nil
}

// showPair makes the pair visible in Jira: a remote link to the peer issue
// (upserted by a stable global id) and the sync state property. Both calls
// are idempotent.
func (a *Applier) showPair(ctx context.Context, c wire.Change, localID, localKey, peerID, peerKey string) error {
	url := "jirabridge:" + a.o.SyncID + "/" + peerKey
	if a.o.PeerURL != "" {
		url = strings.TrimSuffix(a.o.PeerURL, "/") + "/browse/" + peerKey
	}
	title := peerKey
	if title == "" {
		title = peerID
	}
	rl := jira.RemoteLink{GlobalID: "jirabridge:" + a.o.SyncID + ":" + peerID, Relationship: "synced with",
		Object: jira.RemoteLinkObject{URL: url, Title: title + " (" + a.o.PeerName + ")", Summary: "kept in sync by jirabridge, sync " + a.o.SyncID}}
	if err := a.o.Jira.UpsertRemoteLink(ctx, localKey, rl); err != nil {
		return fmt.Errorf("link %s to its peer issue: %w", localKey, err)
	}
	if err := a.after(StepRemoteLink, c); err != nil {
		return err
	}
	return a.setSyncProperty(ctx, c, localID, localKey, peerID, peerKey)
}

func (a *Applier) setSyncProperty(ctx context.Context, c wire.Change, localID, localKey, peerID, peerKey string) error {
	st := SyncState{Sync: a.o.SyncID, State: StateSynced, PeerIssueID: peerID, PeerIssueKey: peerKey,
		LastChangeID: c.ID, LastAppliedAt: a.o.Now().UTC().Truncate(time.Millisecond)}
	// A change of the issue parked the other way (outgoing) still holds:
	// applying the peer's changes must not hide it.
	if pk, err := a.parkedShown(ctx, localID); err != nil {
		return err
	} else if pk != nil {
		st.State, st.Reason, st.MessageID, st.ParkedSince, st.Direction, st.Note = pk.State, pk.Reason, pk.MessageID, pk.ParkedSince, pk.Direction, pk.Note
	}
	if err := a.o.Jira.SetIssueProperty(ctx, localKey, SyncProperty, st); err != nil {
		return fmt.Errorf("set sync state of %s: %w", localKey, err)
	}
	return a.after(StepProperty, c)
}

// pair records the pair the peer announces after creating its copy of one
// of our issues, and shows it on our issue.
func (a *Applier) pair(ctx context.Context, c wire.Change) error {
	if c.PeerIssueID == "" {
		return errclass.New(errclass.Permanent, "bad_change", fmt.Errorf("pair change %s names no local issue", c.ID))
	}
	is, err := a.o.Jira.GetIssue(ctx, c.PeerIssueID, []string{"summary"}, nil)
	if err != nil {
		return fmt.Errorf("read issue %s the peer paired with %s: %w", c.PeerIssueKey, issueName(c), err)
	}
	if err := a.showPair(ctx, c, is.ID, is.Key, c.IssueID, c.IssueKey); err != nil {
		return err
	}
	if err := storeErr("commit pair", a.o.Store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PairPut(store.IssuePair{SyncID: a.o.SyncID, LocalID: is.ID, LocalKey: is.Key, PeerID: c.IssueID, PeerKey: c.IssueKey}); err != nil {
			return err
		}
		_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: is.ID, AppliedAt: tx.Now()})
		return err
	})); err != nil {
		return err
	}
	a.waitingLinks(ctx)
	return nil
}

// update brings the local issue of pair p to the state change c describes:
// issue type, then fields (only those that differ), then status. Each
// field that a person also changed locally since the peer's last view is a
// conflict, decided by Jira time (tie: master).
func (a *Applier) update(ctx context.Context, c wire.Change, p store.IssuePair) error {
	is, err := a.o.Jira.GetIssue(ctx, p.LocalID, nil, []string{"changelog"})
	if err != nil {
		return fmt.Errorf("read %s to apply change %s: %w", p.LocalKey, c.ID, err)
	}
	if err := a.fullChangelog(ctx, &is); err != nil {
		return fmt.Errorf("read history of %s to apply change %s: %w", p.LocalKey, c.ID, err)
	}
	var conflicts []store.Conflict
	meta := a.meta(c)

	if c.IssueType != "" {
		want, err := a.o.Mapping.IssueTypeName(c.IssueKey, c.IssueType)
		if err != nil {
			return unmappable(c, err)
		}
		var cur struct {
			Name string `json:"name"`
		}
		if _, err := is.Field("issuetype", &cur); err != nil {
			return errclass.New(errclass.Permanent, "jira_bad_answer", err)
		}
		if !strings.EqualFold(cur.Name, want) {
			curAlias, _ := a.o.Mapping.IssueTypeAlias(cur.Name)
			win, cf := a.decide(ctx, is, c, "issuetype", wire.StringValue(curAlias), wire.StringValue(c.IssueType), wire.Value{}, false)
			if cf != nil {
				conflicts = append(conflicts, *cf)
			}
			if win {
				if err := a.o.Jira.EditIssue(ctx, is.Key, map[string]any{"issuetype": map[string]string{"name": want}}, nil, meta); err != nil {
					return fmt.Errorf("change issue type of %s to %s: %w", is.Key, want, err)
				}
				if err := a.after(StepEdit, c); err != nil {
					return err
				}
			}
		}
	}

	edits := map[string]any{}
	var current map[string]wire.Value
	if len(c.Fields) > 0 {
		if current, err = a.o.Mapping.AllValues(ctx, &is); err != nil {
			return unmappable(c, err)
		}
	}
	for _, alias := range sortedKeys(c.Fields) {
		fc := c.Fields[alias]
		as, ok, err := a.o.Mapping.Incoming(ctx, is.Key, alias, fc.After)
		if err != nil {
			return unmappable(c, err)
		}
		if !ok {
			continue
		}
		cur := current[alias]
		if cur.Equal(fc.After) {
			continue
		}
		win, cf := a.decide(ctx, is, c, alias, cur, fc.After, fc.Before, true)
		if cf != nil {
			conflicts = append(conflicts, *cf)
		}
		if win {
			edits[as.FieldID] = as.Value
		}
	}
	if len(edits) > 0 {
		if err := a.o.Jira.EditIssue(ctx, is.Key, edits, nil, meta); err != nil {
			return fmt.Errorf("edit %s for change %s: %w", is.Key, c.ID, err)
		}
		if err := a.after(StepEdit, c); err != nil {
			return err
		}
	}

	if c.Status != "" {
		want, err := a.o.Mapping.StatusName(is.Key, c.Status)
		if err != nil {
			return unmappable(c, err)
		}
		cur := statusName(is)
		if !strings.EqualFold(cur, want) {
			curAlias, _ := a.o.Mapping.StatusAlias(cur)
			win, cf := a.decide(ctx, is, c, "status", wire.StringValue(curAlias), wire.StringValue(c.Status), wire.Value{}, false)
			if cf != nil {
				conflicts = append(conflicts, *cf)
			}
			if win {
				if err := a.reachStatus(ctx, c, is.Key, want); err != nil {
					return err
				}
			}
		}
	}

	if err := a.setSyncProperty(ctx, c, p.LocalID, is.Key, p.PeerID, p.PeerKey); err != nil {
		return err
	}
	err = storeErr("commit update", a.o.Store.Update(ctx, func(tx *store.Tx) error {
		for _, cf := range conflicts {
			cf.At = tx.Now()
			if _, err := tx.ConflictAdd(cf); err != nil {
				return err
			}
		}
		if (c.IssueKey != "" && c.IssueKey != p.PeerKey) || is.Key != p.LocalKey {
			if c.IssueKey != "" {
				p.PeerKey = c.IssueKey
			}
			p.LocalKey = is.Key
			if err := tx.PairPut(p); err != nil {
				return err
			}
		}
		_, err := tx.LedgerRecord(store.Applied{ChangeID: c.ID, SyncID: a.o.SyncID, Issue: p.LocalID, AppliedAt: tx.Now()})
		return err
	}))
	if err == nil {
		a.conflicted(conflicts)
	}
	return err
}

// conflicted tells OnConflict of conflicts just committed.
func (a *Applier) conflicted(cs []store.Conflict) {
	if a.o.OnConflict == nil {
		return
	}
	for _, cf := range cs {
		a.o.OnConflict(cf)
	}
}

// fullChangelog completes an issue's changelog when expand=changelog
// returned only part of it (Jira caps it), so conflict decisions see the
// newest entries.
func (a *Applier) fullChangelog(ctx context.Context, is *jira.Issue) error {
	cl := is.Changelog
	if cl == nil || len(cl.Histories) >= cl.Total {
		return nil
	}
	var all []jira.History
	for len(all) < cl.Total {
		page, err := a.o.Jira.Changelog(ctx, is.ID, len(all), 100)
		if err != nil {
			return err
		}
		if len(page.Histories) == 0 {
			break
		}
		all = append(all, page.Histories...)
	}
	is.Changelog = &jira.Changelog{Total: len(all), MaxResults: len(all), Histories: all}
	return nil
}

func statusName(is jira.Issue) string {
	var st jira.Status
	_, _ = is.Field("status", &st)
	return st.Name
}

// decide says whether the peer's value of one field wins over the local
// one and, when both sides changed it independently, the conflict to
// record. cur is the local value, want the peer's, before the peer's value
// before its change (known says whether it is meaningful: statuses and
// issue types travel without it).
func (a *Applier) decide(ctx context.Context, is jira.Issue, c wire.Change, alias string, cur, want, before wire.Value, known bool) (bool, *store.Conflict) {
	if f, ok := a.o.Mapping.FieldByAlias(alias); ok && !f.Direction.Sends() {
		// Incoming only: local changes are never sent, so the peer's
		// value is the truth; keeping ours would diverge for good.
		return true, nil
	}
	localAt := a.lastPersonChange(ctx, is, alias)
	if localAt.IsZero() {
		return true, nil // nobody changed it here; the value came from the bridge
	}
	peerWins := c.At.After(localAt) || (c.At.Equal(localAt) && a.o.Role != store.RoleMaster)
	if peerWins && known && cur.Equal(before) {
		// The peer changed the value we have: it saw ours, no conflict.
		// (Equal values are not enough on their own: a newer local
		// change back to the old value must still win.)
		return true, nil
	}
	winner := "local"
	if peerWins {
		winner = "peer"
	}
	a.log.Info("conflict", "issue", is.Key, "field", alias, "winner", winner, "local_at", localAt, "peer_at", c.At)
	return peerWins, &store.Conflict{SyncID: a.o.SyncID, Issue: is.Key, Field: alias,
		LocalValue: valueText(cur), LocalAt: localAt, PeerValue: valueText(want), PeerAt: c.At, Winner: winner}
}

func valueText(v wire.Value) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// lastPersonChange returns the Jira time of the newest change of a field
// (a mapped field's alias, or "status" or "issuetype") in the local
// changelog made by a person: not the sync user, not tagged by the bridge.
// For fields it counts only entries that changed the field's wire value,
// exactly what detection sends (a person re-saving labels in another order
// changes nothing the peer would ever hear of). Zero when there is none.
func (a *Applier) lastPersonChange(ctx context.Context, is jira.Issue, alias string) time.Time {
	if is.Changelog == nil {
		return time.Time{}
	}
	user, _ := a.user(ctx)
	person := func(h jira.History) bool {
		if h.HistoryMetadata != nil && h.HistoryMetadata.Type == MetadataType {
			return false
		}
		return h.Author == nil || user == "" || !(strings.EqualFold(h.Author.Name, user) || strings.EqualFold(h.Author.Key, user))
	}
	var last time.Time
	if alias == "status" || alias == "issuetype" {
		for _, h := range is.Changelog.Histories {
			if !person(h) {
				continue
			}
			for _, it := range h.Items {
				match := strings.EqualFold(it.Field, alias) || strings.EqualFold(it.FieldID, alias) ||
					(alias == "issuetype" && strings.EqualFold(it.Field, "issue type"))
				if match && h.Created.After(last) {
					last = h.Created.Time
				}
			}
		}
		return last
	}
	changes, _, err := a.o.Mapping.HistoryChanges(ctx, &is, person)
	if err != nil {
		a.log.Warn("cannot read the local changes of a field; treating it as unchanged here", "issue", is.Key, "field", alias, "err", err)
		return time.Time{}
	}
	for _, hc := range changes {
		if _, ok := hc.Fields[alias]; ok && hc.History.Created.After(last) {
			last = hc.History.Created.Time
		}
	}
	return last
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ShowParked sets the SyncProperty of the local issue of pair p to
// "parked" with failure f, so a person in Jira sees that the issue is not
// syncing and which `jirabridge messages` id holds it. What the property
// said about the last applied change is kept.
func (a *Applier) ShowParked(ctx context.Context, p store.IssuePair, f store.Failure, direction string) error {
	st := a.currentSyncState(ctx, p)
	st.State, st.Reason, st.MessageID, st.ParkedSince, st.Direction = StateParked, f.ErrorClass, f.ID, f.FirstSeenAt.UTC(), direction
	st.Note = fmt.Sprintf("Not syncing: a change of this issue is parked (jirabridge messages show %d); later changes wait behind it.", f.ID)
	if err := a.o.Jira.SetIssueProperty(ctx, p.LocalID, SyncProperty, st); err != nil {
		return fmt.Errorf("show %s as parked: %w", p.LocalKey, err)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode parked state of %s: %w", p.LocalKey, err)
	}
	return storeErr("record parked state of "+p.LocalKey, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.CursorSet(a.parkedKey(p.LocalID), string(raw))
	}))
}

// parkedKey names the store cursor that holds the parked state the
// property of a local issue shows (empty: none), so that applying a
// change of the issue keeps showing a park of its other direction.
func (a *Applier) parkedKey(localID string) string {
	return "parked-shown/" + a.o.SyncID + "/" + localID
}

// parkedShown returns the parked state the property of a local issue
// shows, or nil.
func (a *Applier) parkedShown(ctx context.Context, localID string) (*SyncState, error) {
	if localID == "" {
		return nil, nil
	}
	var raw string
	if err := a.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		raw, _, err = tx.CursorGet(a.parkedKey(localID))
		return err
	}); err != nil {
		return nil, storeErr("read parked state", err)
	}
	if raw == "" {
		return nil, nil
	}
	var st SyncState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		a.log.Warn("parked state unreadable; ignored", "issue", localID, "err", err)
		return nil, nil
	}
	return &st, nil
}

// ShowSynced sets the SyncProperty of the local issue of pair p back to
// "synced" after its parked change was retried or skipped.
func (a *Applier) ShowSynced(ctx context.Context, p store.IssuePair) error {
	st := a.currentSyncState(ctx, p)
	st.State, st.Reason, st.MessageID, st.ParkedSince, st.Direction, st.Note = StateSynced, "", 0, time.Time{}, "", ""
	if err := storeErr("clear parked state of "+p.LocalKey, a.o.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.CursorSet(a.parkedKey(p.LocalID), "")
	})); err != nil {
		return err
	}
	if err := a.o.Jira.SetIssueProperty(ctx, p.LocalID, SyncProperty, st); err != nil {
		return fmt.Errorf("show %s as synced: %w", p.LocalKey, err)
	}
	return nil
}

// currentSyncState reads the SyncProperty of p's local issue; a missing or
// unreadable one gives a fresh state of the pair.
func (a *Applier) currentSyncState(ctx context.Context, p store.IssuePair) SyncState {
	var st SyncState
	if ok, err := a.o.Jira.IssueProperty(ctx, p.LocalID, SyncProperty, &st); err != nil || !ok {
		st = SyncState{}
	}
	st.Sync, st.PeerIssueID, st.PeerIssueKey = a.o.SyncID, p.PeerID, p.PeerKey
	return st
}
