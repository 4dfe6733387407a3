// Package replay applies the peer's changes from the store's replay queue in
// per-issue lanes: the changes of one issue in order, different issues in
// parallel. A change that fails permanently parks its lane (a failure
// record the operator sees in `jirabridge messages`) while every other
// issue goes on; temporary failures retry with back-off; a 429 waits as
// long as Jira asked; an authentication failure pauses the whole sync at
// once so the sync user is never pushed into Jira's CAPTCHA lock.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// PauseReason is the reason a sync is PAUSED with after Jira refused the
// sync user's credentials.
const PauseReason = "authentication"

// Applier writes one change to the local Jira; *apply.Applier is one. Its
// errors are errclass errors and decide what happens to the lane.
type Applier interface {
	Apply(ctx context.Context, c wire.Change) error
}

// Options configure a Replayer. Store, SyncID and Applier are required.
type Options struct {
	Store   *store.Store
	SyncID  string
	Applier Applier
	// Workers is how many lanes are applied in parallel; default 4. With
	// 1, lanes are applied one after the other in queue order, which makes
	// a round deterministic (tests). After an authentication failure no
	// worker starts another change, but calls already in flight on other
	// lanes finish (and fail): with N workers at most N calls fail.
	Workers int
	// BackOff is the wait before the next try after the n-th temporary
	// failure (n from 1); default 2s doubling up to 5 minutes. Tests give a
	// function that returns 0.
	BackOff func(n int) time.Duration
	// MaxRetryAfter caps the wait a 429 asks for; default 10 minutes.
	MaxRetryAfter time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Replayer runs rounds over the replay queue of one sync.
type Replayer struct {
	o      Options
	log    *slog.Logger
	paused atomic.Bool
}

// Result counts what one round did.
type Result struct {
	Applied int  // changes applied (or found in the ledger)
	Parked  int  // changes parked by a permanent error
	Retries int  // changes put back for a later try, or woken from waiting
	Waiting int  // sub-tasks set to wait for their parent
	Paused  bool // the sync is paused: no Jira call was or will be made
}

// ParentChecker is what an Applier offers (optionally) for sub-tasks that
// wait for their parent: whether the parent has arrived. *apply.Applier
// implements it.
type ParentChecker interface {
	ParentReady(ctx context.Context, c wire.Change) (bool, error)
}

// New checks the options and builds a Replayer.
func New(o Options) (*Replayer, error) {
	if o.Store == nil || o.SyncID == "" || o.Applier == nil {
		return nil, errors.New("replay: Store, SyncID and Applier are required")
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.BackOff == nil {
		o.BackOff = DefaultBackOff
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Replayer{o: o, log: o.Logger.With("component", "replay", "sync", o.SyncID)}, nil
}

// DefaultBackOff waits 2s after the first temporary failure, doubling up to
// 5 minutes.
func DefaultBackOff(n int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// Paused reports whether the sync is paused, from the store (so a pause
// survives a restart) or from a failure seen in this process.
func (r *Replayer) Paused(ctx context.Context) (bool, error) {
	if r.paused.Load() {
		return true, nil
	}
	var paused bool
	err := r.o.Store.View(ctx, func(tx *store.Tx) error {
		s, err := tx.SyncGet(r.o.SyncID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		paused = err == nil && s.State == store.StatePaused
		return err
	})
	if err != nil {
		return false, fmt.Errorf("read state of sync %s: %w", r.o.SyncID, err)
	}
	if paused {
		r.paused.Store(true)
	}
	return paused, nil
}

// Pause stops every Jira call of the sync at once and records PAUSED with
// the reason. The engine calls it too when detection hits a Pause error.
func (r *Replayer) Pause(ctx context.Context, reason string) error {
	r.paused.Store(true)
	err := r.o.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.SyncSetState(r.o.SyncID, store.StatePaused, reason)
	})
	if err != nil {
		return fmt.Errorf("pause sync %s: %w", r.o.SyncID, err)
	}
	r.log.Warn("sync paused", "reason", reason)
	return nil
}

// Resume sets the sync RUNNING again, after the operator changed the
// credentials; the next round makes Jira calls again.
func (r *Replayer) Resume(ctx context.Context) error {
	err := r.o.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.SyncSetState(r.o.SyncID, store.StateRunning, "")
	})
	if err != nil {
		return fmt.Errorf("resume sync %s: %w", r.o.SyncID, err)
	}
	r.paused.Store(false)
	return nil
}

// Round applies what is ready now: the head of every lane and, while they
// succeed, the changes behind it. Lanes run in parallel up to Workers.
// A paused sync makes no call.
func (r *Replayer) Round(ctx context.Context) (Result, error) {
	var res Result
	paused, err := r.Paused(ctx)
	if err != nil || paused {
		res.Paused = paused
		return res, err
	}
	if err := r.wake(ctx, &res); err != nil {
		return res, err
	}
	var heads []store.ReplayItem
	if err := r.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		heads, err = tx.ReplayReady(r.o.SyncID, r.o.Now(), 1000)
		return err
	}); err != nil {
		return res, fmt.Errorf("list ready changes of sync %s: %w", r.o.SyncID, err)
	}
	var mu sync.Mutex
	var firstErr error
	add := func(lr Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Applied += lr.Applied
		res.Parked += lr.Parked
		res.Retries += lr.Retries
		res.Waiting += lr.Waiting
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if r.o.Workers == 1 {
		for _, h := range heads {
			add(r.lane(ctx, h))
		}
	} else {
		sem := make(chan struct{}, r.o.Workers)
		var wg sync.WaitGroup
		for _, h := range heads {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				add(r.lane(ctx, h))
			}()
		}
		wg.Wait()
	}
	res.Paused = r.paused.Load()
	return res, firstErr
}

// lane applies item and the changes behind it in the same lane until one
// does not succeed or the lane is empty.
func (r *Replayer) lane(ctx context.Context, item store.ReplayItem) (Result, error) {
	var res Result
	for {
		if r.paused.Load() || ctx.Err() != nil {
			return res, nil
		}
		ok, err := r.one(ctx, item, &res)
		if err != nil || !ok {
			return res, err
		}
		var next []store.ReplayItem
		if err := r.o.Store.View(ctx, func(tx *store.Tx) error {
			var err error
			next, err = tx.ReplayLane(r.o.SyncID, item.Issue)
			return err
		}); err != nil {
			return res, fmt.Errorf("read lane %s: %w", item.Issue, err)
		}
		if len(next) == 0 || next[0].State != store.ReplayPending || next[0].NextAttemptAt.After(r.o.Now()) {
			return res, nil
		}
		item = next[0]
	}
}

// one applies one change and records the outcome; ok says the lane may go
// on. err is only a store failure.
func (r *Replayer) one(ctx context.Context, item store.ReplayItem, res *Result) (bool, error) {
	var c wire.Change
	aerr := json.Unmarshal(item.Change, &c)
	if aerr != nil {
		aerr = errclass.New(errclass.Permanent, "undecodable", fmt.Errorf("decode change %s: %w", item.ChangeID, aerr))
		c = wire.Change{ID: item.ChangeID, IssueID: item.Issue}
	} else {
		aerr = r.o.Applier.Apply(ctx, c)
		if errclass.ReasonOf(aerr) == apply.ReasonNotPaired {
			// The pair announcement may sit behind this change in the
			// lane; it does not depend on order, so it goes first.
			ok, err := r.pairAhead(ctx, item, res)
			if err != nil {
				return false, err
			}
			if ok {
				aerr = r.o.Applier.Apply(ctx, c)
			} else if item.Attempts < notPairedTries {
				aerr = errclass.New(errclass.Temporary, apply.ReasonNotPaired, aerr)
			}
		}
	}
	if aerr != nil && ctx.Err() != nil {
		return false, nil // shutting down: the change stays pending
	}
	now := r.o.Now()
	log := r.log.With("change_id", c.ID, "issue", c.IssueKey, "kind", string(c.Kind))
	switch {
	case aerr == nil:
		res.Applied++
		return true, r.update(ctx, "record applied change "+c.ID, func(tx *store.Tx) error {
			if err := tx.ReplaySetState(item.ID, store.ReplayApplied, "", time.Time{}, true); err != nil {
				return err
			}
			f, err := tx.FailureByChange(r.o.SyncID, c.ID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if f.State == store.FailureOpen || f.State == store.FailureRetrying {
				return tx.FailureResolve(f.ID)
			}
			return nil
		})
	case errclass.Of(aerr) == errclass.Pause:
		r.paused.Store(true)
		log.Warn("jira refused the sync user: pausing the sync", "err", aerr)
		return false, r.update(ctx, "pause sync", func(tx *store.Tx) error {
			if err := tx.ReplaySetState(item.ID, store.ReplayPending, aerr.Error(), time.Time{}, true); err != nil {
				return err
			}
			return tx.SyncSetState(r.o.SyncID, store.StatePaused, PauseReason)
		})
	case errclass.ReasonOf(aerr) == apply.ReasonWaitingParent:
		// A sub-task before its parent: it waits (holding only its own
		// lane) until the parent's issue is paired; see wake.
		res.Waiting++
		log.Info("change waits for its parent", "err", aerr)
		return false, r.update(ctx, "set change "+c.ID+" waiting", func(tx *store.Tx) error {
			return tx.ReplaySetState(item.ID, store.ReplayWaitingParent, aerr.Error(), time.Time{}, true)
		})
	case errclass.IsRetryable(aerr):
		res.Retries++
		wait := r.o.BackOff(item.Attempts + 1)
		if d := errclass.RetryAfter(aerr); d > 0 {
			wait = min(d, r.o.MaxRetryAfter)
		}
		log.Info("change will be tried again", "err", aerr, "wait", wait)
		return false, r.update(ctx, "reschedule change "+c.ID, func(tx *store.Tx) error {
			return tx.ReplaySetState(item.ID, store.ReplayPending, aerr.Error(), now.Add(wait), true)
		})
	default:
		res.Parked++
		log.Warn("change parked", "err", aerr, "reason", errclass.ReasonOf(aerr))
		return false, r.update(ctx, "park change "+c.ID, func(tx *store.Tx) error {
			if err := tx.ReplaySetState(item.ID, store.ReplayParked, aerr.Error(), time.Time{}, true); err != nil {
				return err
			}
			key := issueLabel(c)
			if p, err := tx.PairByPeer(r.o.SyncID, c.IssueID); err == nil && p.LocalKey != "" {
				key = p.LocalKey // the operator here knows the local issue
			}
			_, err := tx.FailureRecord(store.Failure{SyncID: r.o.SyncID, ChangeID: c.ID, IssueKey: key,
				Kind: string(c.Kind), ErrorClass: errclass.ReasonOf(aerr), ErrorText: aerr.Error()})
			return err
		})
	}
}

// wake puts the changes waiting for a parent back in line when the parent
// has arrived.
func (r *Replayer) wake(ctx context.Context, res *Result) error {
	pc, ok := r.o.Applier.(ParentChecker)
	if !ok {
		return nil
	}
	var waiting []store.ReplayItem
	if err := r.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		waiting, err = tx.ReplayByState(r.o.SyncID, store.ReplayWaitingParent, 1000)
		return err
	}); err != nil {
		return fmt.Errorf("list changes waiting for a parent: %w", err)
	}
	for _, it := range waiting {
		var c wire.Change
		if json.Unmarshal(it.Change, &c) != nil {
			continue
		}
		ready, err := pc.ParentReady(ctx, c)
		if err != nil {
			return fmt.Errorf("check parent of change %s: %w", c.ID, err)
		}
		if !ready {
			continue
		}
		res.Retries++
		if err := r.update(ctx, "wake change "+c.ID, func(tx *store.Tx) error {
			return tx.ReplaySetState(it.ID, store.ReplayPending, "", time.Time{}, false)
		}); err != nil {
			return err
		}
	}
	return nil
}

// notPairedTries is how often a change of a peer issue with no local issue
// is tried again (its pair announcement may still be on its way) before it
// is parked.
const notPairedTries = 5

// pairAhead applies the first pair announcement waiting in item's lane, if
// there is one; ok reports that it did.
func (r *Replayer) pairAhead(ctx context.Context, item store.ReplayItem, res *Result) (bool, error) {
	var lane []store.ReplayItem
	if err := r.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		lane, err = tx.ReplayLane(r.o.SyncID, item.Issue)
		return err
	}); err != nil {
		return false, fmt.Errorf("read lane %s: %w", item.Issue, err)
	}
	for _, it := range lane {
		var c wire.Change
		if it.ID == item.ID || it.State != store.ReplayPending || json.Unmarshal(it.Change, &c) != nil || c.Kind != wire.IssuePair {
			continue
		}
		if err := r.o.Applier.Apply(ctx, c); err != nil {
			r.log.Info("pair announcement ahead of its turn failed", "change_id", c.ID, "err", err)
			return false, nil
		}
		res.Applied++
		return true, r.update(ctx, "record applied pair "+c.ID, func(tx *store.Tx) error {
			return tx.ReplaySetState(it.ID, store.ReplayApplied, "", time.Time{}, true)
		})
	}
	return false, nil
}

func issueLabel(c wire.Change) string {
	if c.IssueKey != "" {
		return c.IssueKey
	}
	return c.IssueID
}

func (r *Replayer) update(ctx context.Context, what string, fn func(*store.Tx) error) error {
	if err := r.o.Store.Update(ctx, fn); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Retry moves a parked change back into its lane (`messages retry`): the
// failure becomes retrying and the next round applies the change again,
// resolving the failure when it succeeds.
func Retry(ctx context.Context, st *store.Store, failureID int64) (store.Failure, error) {
	var f store.Failure
	err := st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if f, err = tx.FailureGet(failureID); err != nil {
			return err
		}
		if err := tx.FailureRetry(failureID); err != nil {
			return err
		}
		return unpark(tx, f, store.ReplayPending)
	})
	if err != nil {
		return f, fmt.Errorf("retry message %d: %w", failureID, err)
	}
	return f, nil
}

// Skip gives up on a parked change (`messages skip`): the change is marked
// skipped and its lane moves on to the next change. A skipped create is
// recorded (apply.CreateSkipped) so that links and sub-tasks waiting for
// that issue stop waiting for it.
func Skip(ctx context.Context, st *store.Store, failureID int64) (store.Failure, error) {
	var f store.Failure
	err := st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if f, err = tx.FailureGet(failureID); err != nil {
			return err
		}
		if err := tx.FailureSkip(failureID); err != nil {
			return err
		}
		if err := unpark(tx, f, store.ReplaySkipped); err != nil {
			return err
		}
		return createSkipped(tx, f)
	})
	if err != nil {
		return f, fmt.Errorf("skip message %d: %w", failureID, err)
	}
	return f, nil
}

func unpark(tx *store.Tx, f store.Failure, to store.ReplayState) error {
	if f.ChangeID == "" {
		return nil
	}
	it, err := tx.ReplayGetByChange(f.SyncID, f.ChangeID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // purged, or a failure of another kind
	}
	if err != nil {
		return err
	}
	if it.State == store.ReplayApplied || it.State == store.ReplaySkipped {
		return nil
	}
	return tx.ReplaySetState(it.ID, to, it.LastError, time.Time{}, false)
}

// createSkipped tells the applier's records that the skipped change f was
// the create of a peer issue, which will now never be created here.
func createSkipped(tx *store.Tx, f store.Failure) error {
	if f.Kind != string(wire.IssueCreate) || f.ChangeID == "" {
		return nil
	}
	it, err := tx.ReplayGetByChange(f.SyncID, f.ChangeID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var c wire.Change
	if json.Unmarshal(it.Change, &c) != nil || c.IssueID == "" {
		return nil
	}
	if _, err := tx.PairByPeer(f.SyncID, c.IssueID); err == nil {
		return nil // created after all (e.g. found by its marker)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return apply.CreateSkipped(tx, f.SyncID, c.IssueID, f.ID)
}
