// Package engine runs one side of a sync: detection of what people change in
// the local Jira (internal/detect) and replay of the peer's changes through
// the applier (internal/replay, internal/apply), with one store.
//
// Step does one poll and one replay round, which makes tests deterministic
// (no sleeps: they step nodes and move changes with Loopback until Settle
// sees nothing move); Run repeats Step every poll interval for the daemon.
// Until the mail link exists, Loopback stands in for it: it moves one
// bridge's pending changes into the other's replay queue.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/perms"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Config is everything one side of one sync needs. Store, Jira, Mapping,
// SyncID and Node are required.
type Config struct {
	Store   *store.Store
	Jira    *jira.Client
	Mapping *mapping.Mapping
	SyncID  string
	Node    string     // this bridge's node id (part of every change id)
	Role    store.Role // master wins conflict ties; default slave
	// SyncUser is the user the bridge acts as; default the Jira client's
	// username.
	SyncUser string
	// ProjectKey is where peer issues are created; default the sync
	// definition's project.
	ProjectKey string
	// PeerURL is the peer Jira's base URL, for the remote links that show
	// the pair; optional.
	PeerURL      string
	PollInterval time.Duration // default 5s
	Workers      int           // replay lanes in parallel; default 4, 1 is deterministic
	// BackOff is the replay wait after the n-th temporary failure; default
	// replay.DefaultBackOff. Tests return 0.
	BackOff func(n int) time.Duration
	Overlap time.Duration // detection cursor overlap; default 2m
	// WatcherSweepEvery: every this many polls the watchers of all sync
	// issues are read (watching leaves updated alone); default 12.
	WatcherSweepEvery int
	// DeleteSweepEvery: every this many steps (the first one included)
	// the paired issues are looked for in Jira, to notice the ones people
	// deleted (a deleted issue leaves no trace a poll could find); default
	// 60, five minutes at the default poll interval.
	DeleteSweepEvery int
	// Location is the sync user's time zone for JQL dates; nil: detection
	// asks Jira, the applier assumes UTC.
	Location *time.Location
	Now      func() time.Time
	Logger   *slog.Logger
	// Hooks reach into the applier (crash tests).
	Hooks apply.Hooks
	// WrapApplier, when set, decorates the applier replay calls (the
	// daemon counts outcomes in its metrics this way). The decorator must
	// keep replay.ParentChecker when the applier it wraps has it.
	WrapApplier func(replay.Applier) replay.Applier
	// Ticks, when set, replaces Run's poll interval ticker (tests send
	// ticks by hand).
	Ticks <-chan time.Time
	// OnStep, when set, is told the outcome of every step Run makes.
	OnStep func(StepResult, error)
	// CheckPermissions makes the first step ask Jira (mypermissions)
	// whether the sync user holds what every enabled feature needs. A
	// missing permission for issues or workflows refuses the whole sync
	// (every step returns the *perms.Error and makes no other call until
	// it is granted); one for comments, attachments, watchers, links or
	// sub-tasks refuses that feature only: it is neither detected nor
	// applied (its incoming changes park with the message) until the
	// bridge restarts. The daemon sets it.
	CheckPermissions bool
	// Metrics, when set, counts what only the engine sees: conflicts
	// (conflicts_total) and changes left out by a filter or a user policy
	// (changes_skipped_total by reason). Applied, parked and retried
	// changes are counted by WrapApplier (ops.MeterApplier).
	Metrics *metrics.Metrics
}

// poller is detection as the node uses it; *detect.Detector is one.
type poller interface {
	Poll(ctx context.Context) (detect.Result, error)
}

// Node is one side of one sync.
type Node struct {
	cfg      Config
	log      *slog.Logger
	detector *detect.Detector
	poller   poller
	applier  *apply.Applier
	replayer *replay.Replayer

	permsChecked bool     // CheckPermissions passed (features may be refused)
	refused      []string // features refused for missing permissions
	skips        skipCounts
	steps        int // steps that reached detection, for the delete sweep
	sweepAt      int // the step at which the next delete sweep is due
}

// NewNode builds the detector, the applier and the replayer of one side.
// It makes no Jira call.
func NewNode(cfg Config) (*Node, error) {
	if cfg.Store == nil || cfg.Jira == nil || cfg.Mapping == nil || cfg.SyncID == "" || cfg.Node == "" {
		return nil, errors.New("engine: Store, Jira, Mapping, SyncID and Node are required")
	}
	if cfg.SyncUser == "" {
		cfg.SyncUser = cfg.Jira.Username()
	}
	if cfg.ProjectKey == "" && cfg.Mapping.Def() != nil {
		cfg.ProjectKey = cfg.Mapping.Def().Project
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.DeleteSweepEvery <= 0 {
		cfg.DeleteSweepEvery = 60
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	det, err := detect.New(detect.Options{Jira: cfg.Jira, Store: cfg.Store, SyncID: cfg.SyncID, Node: cfg.Node,
		SyncUser: cfg.SyncUser, Mapping: cfg.Mapping, Overlap: cfg.Overlap, Location: cfg.Location,
		Now: cfg.Now, Logger: cfg.Logger, WatcherSweepEvery: cfg.WatcherSweepEvery})
	if err != nil {
		return nil, fmt.Errorf("build detection: %w", err)
	}
	app, err := apply.New(apply.Options{Jira: cfg.Jira, Store: cfg.Store, SyncID: cfg.SyncID, Role: cfg.Role,
		ProjectKey: cfg.ProjectKey, Mapping: cfg.Mapping, SyncUser: cfg.SyncUser, PeerURL: cfg.PeerURL,
		Location: cfg.Location, Now: cfg.Now, Hooks: cfg.Hooks, Logger: cfg.Logger,
		OnConflict:       func(store.Conflict) { cfg.Metrics.Counter(metrics.Conflicts, 1) },
		OnSkip:           func(reason string) { cfg.Metrics.Inc(metrics.Skipped, reason) },
		PropagateDeletes: cfg.Mapping.Def() != nil && cfg.Mapping.Def().Deletes == config.DeletesPropagate})
	if err != nil {
		return nil, fmt.Errorf("build applier: %w", err)
	}
	var ra replay.Applier = app
	if cfg.WrapApplier != nil {
		ra = cfg.WrapApplier(ra)
	}
	rep, err := replay.New(replay.Options{Store: cfg.Store, SyncID: cfg.SyncID, Applier: ra, Workers: cfg.Workers,
		BackOff: cfg.BackOff, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("build replay: %w", err)
	}
	return &Node{cfg: cfg, log: cfg.Logger.With("component", "engine", "sync", cfg.SyncID, "node", cfg.Node),
		detector: det, poller: det, applier: app, replayer: rep}, nil
}

// Detector is the node's detection (for webhooks and resync).
func (n *Node) Detector() *detect.Detector { return n.detector }

// Applier is the node's applier.
func (n *Node) Applier() *apply.Applier { return n.applier }

// Replayer is the node's replay (for Resume).
func (n *Node) Replayer() *replay.Replayer { return n.replayer }

// Store is the node's store.
func (n *Node) Store() *store.Store { return n.cfg.Store }

// SyncID is the node's sync.
func (n *Node) SyncID() string { return n.cfg.SyncID }

// StepResult counts what one Step did.
type StepResult struct {
	Detected int  // changes detection wrote to pending
	Applied  int  // peer changes applied
	Parked   int  // peer changes parked
	Retries  int  // peer changes put back for a later try, or woken
	Waiting  int  // peer sub-tasks set to wait for their parent
	Paused   bool // the sync is paused: no Jira call was made
}

// Moved reports whether the step changed anything (a retry scheduled for
// now counts: the next step tries again).
func (r StepResult) Moved() bool { return r.Detected+r.Applied+r.Parked+r.Retries+r.Waiting > 0 }

// Step runs a pending resync request, one poll and one replay round. A
// paused sync makes no Jira call at all; an authentication failure in
// detection pauses it like one in replay does.
func (n *Node) Step(ctx context.Context) (StepResult, error) {
	var res StepResult
	paused, err := n.replayer.Paused(ctx)
	if err != nil || paused {
		res.Paused = paused
		return res, err
	}
	if n.cfg.CheckPermissions && !n.permsChecked {
		if err := n.checkPermissions(ctx); err != nil {
			if errclass.Of(err) == errclass.Pause {
				res.Paused = true
				return res, n.replayer.Pause(ctx, replay.PauseReason)
			}
			return res, err
		}
	}
	if err := n.skipBaseline(ctx); err != nil {
		return res, err
	}
	// Detection and replay are independent: a detection failure (Jira
	// down for searches, a bad sync JQL) must not hold the peer's changes
	// back, except a pause, which stops every call.
	k, rerr := n.runResync(ctx)
	res.Detected += k
	d, derr := n.poller.Poll(ctx)
	res.Detected += d.Changes
	var serr error
	if derr == nil {
		var k int
		k, serr = n.sweepDeletes(ctx)
		res.Detected += k
	}
	var errs []error
	for _, e := range []struct {
		what string
		err  error
	}{{"resync", rerr}, {"detect", derr}, {"notice deleted issues", serr}} {
		if e.err == nil {
			continue
		}
		if errclass.Of(e.err) == errclass.Pause {
			res.Paused = true
			return res, n.replayer.Pause(ctx, replay.PauseReason)
		}
		errs = append(errs, fmt.Errorf("%s: %w", e.what, e.err))
	}
	r, err := n.replayer.Round(ctx)
	res.Applied, res.Parked, res.Retries, res.Waiting, res.Paused = r.Applied, r.Parked, r.Retries, r.Waiting, r.Paused
	if err != nil {
		errs = append(errs, fmt.Errorf("replay: %w", err))
	}
	if err := n.countSkips(ctx); err != nil {
		errs = append(errs, err)
	}
	if !res.Paused {
		if err := n.showParked(ctx); err != nil {
			if errclass.Of(err) == errclass.Pause {
				res.Paused = true
				return res, errors.Join(append(errs, n.replayer.Pause(ctx, replay.PauseReason))...)
			}
			errs = append(errs, fmt.Errorf("show parked issues in Jira: %w", err))
		}
	}
	return res, errors.Join(errs...)
}

// checkPermissions runs the permission check of the enabled features: the
// whole sync refuses to start without what issues and workflows need;
// other features are turned off one by one.
func (n *Node) checkPermissions(ctx context.Context) error {
	project := n.cfg.ProjectKey
	rows, err := perms.Check(ctx, n.cfg.Jira, project, perms.Features(n.cfg.Mapping.Def()))
	if err != nil {
		return fmt.Errorf("check permissions: %w", err)
	}
	missing := perms.Missing(rows)
	var core, other []perms.Row
	for _, r := range missing {
		if r.Feature == perms.FeatureIssues || r.Feature == perms.FeatureWorkflows {
			core = append(core, r)
		} else {
			other = append(other, r)
		}
	}
	if len(core) > 0 {
		return errclass.New(errclass.Permanent, "permission", perms.Require(project, missing))
	}
	n.permsChecked = true
	if len(other) == 0 {
		return nil
	}
	perr := perms.Require(project, other)
	why := map[string]string{}
	for _, r := range other {
		if _, ok := why[r.Feature]; !ok {
			why[r.Feature] = r.WhatToDo
		} else {
			why[r.Feature] += "; " + r.WhatToDo
		}
	}
	n.refused = perms.Blocked(other)
	n.detector.DisableCollectors(n.refused...)
	n.applier.RefuseFeatures(why)
	n.log.Error("features not started for missing Jira permissions", "features", n.refused, "err", perr)
	return nil
}

// Refused lists the features the permission check turned off.
func (n *Node) Refused() []string { return append([]string(nil), n.refused...) }

// Resume un-pauses the sync after the credentials were changed: the Jira
// client may call again (one call at a time
// until the credentials are seen to work) and replay goes on.
func (n *Node) Resume(ctx context.Context) error {
	n.cfg.Jira.ResetAuth()
	return n.replayer.Resume(ctx)
}

// Run steps every poll interval until ctx ends. Errors are logged and the
// loop goes on: the next step retries, and a pause stops Jira calls by
// itself.
func (n *Node) Run(ctx context.Context) error {
	ticks := n.cfg.Ticks
	if ticks == nil {
		t := time.NewTicker(n.cfg.PollInterval)
		defer t.Stop()
		ticks = t.C
	}
	var lastErr string
	for {
		res, err := n.Step(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n.cfg.OnStep != nil {
			n.cfg.OnStep(res, err)
		}
		switch {
		case err != nil && err.Error() != lastErr:
			n.log.Error("sync step failed", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			n.log.Info("sync step works again")
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
		}
	}
}

// Loopback moves the pending changes of from into the replay queue of to,
// in order: the stand-in for the mail link. It writes to's queue in one
// transaction and then deletes from's pending changes in another; a crash
// between the two re-enqueues the same change ids, which the queue drops as
// duplicates. It returns how many changes moved.
func Loopback(ctx context.Context, from, to *Node) (int, error) {
	var pend []store.PendingChange
	if err := from.cfg.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		pend, err = tx.PendingList(from.cfg.SyncID, 10000)
		return err
	}); err != nil {
		return 0, fmt.Errorf("loopback: list pending changes: %w", err)
	}
	if len(pend) == 0 {
		return 0, nil
	}
	ids := make([]int64, 0, len(pend))
	if err := to.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		for _, p := range pend {
			var c wire.Change
			if err := json.Unmarshal(p.Change, &c); err != nil {
				return fmt.Errorf("pending change %d: %w", p.ID, err)
			}
			if _, _, err := tx.ReplayEnqueue(to.cfg.SyncID, c.IssueID, c.ID, p.Change); err != nil {
				return err
			}
			ids = append(ids, p.ID)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("loopback: enqueue: %w", err)
	}
	if err := from.cfg.Store.Update(ctx, func(tx *store.Tx) error { return tx.PendingDelete(ids...) }); err != nil {
		return 0, fmt.Errorf("loopback: delete pending: %w", err)
	}
	return len(ids), nil
}

// Settle steps the nodes and moves changes between them (nodes[0] with
// nodes[1], nodes[2] with nodes[3], ...) until a round in which nothing
// moves, and returns the number of rounds. It gives up after maxRounds.
func Settle(ctx context.Context, nodes ...*Node) (int, error) {
	const maxRounds = 200
	for round := 1; round <= maxRounds; round++ {
		moved := 0
		for _, n := range nodes {
			r, err := n.Step(ctx)
			if err != nil {
				return round, fmt.Errorf("settle round %d, node %s: %w", round, n.cfg.Node, err)
			}
			if r.Moved() {
				moved++
			}
		}
		for i := 0; i+1 < len(nodes); i += 2 {
			for _, p := range [][2]*Node{{nodes[i], nodes[i+1]}, {nodes[i+1], nodes[i]}} {
				k, err := Loopback(ctx, p[0], p[1])
				if err != nil {
					return round, err
				}
				moved += k
			}
		}
		if moved == 0 {
			return round, nil
		}
	}
	return maxRounds, fmt.Errorf("settle: still moving after %d rounds", maxRounds)
}
