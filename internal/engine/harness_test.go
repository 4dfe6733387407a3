package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

const syncID = "partner"

// bridge is one side: a site, its store and its node; restart rebuilds
// the node from the database as a restarted process does.
type bridge struct {
	t      testing.TB
	clk    *enginetest.Clock
	site   *enginetest.Site
	role   store.Role
	peer   *enginetest.Site
	dbPath string
	hooks  apply.Hooks
	// checkPerms turns the engine's permission check on.
	checkPerms bool
	jira       *jira.Client // the sync user's client; tests swap it for bad credentials
	metrics    *metrics.Metrics
	// deleteSweep is Config.DeleteSweepEvery (0: the default).
	deleteSweep int
	st          *store.Store
	node        *engine.Node
}

func (b *bridge) start() {
	b.t.Helper()
	st, err := store.Open(context.Background(), b.dbPath, &store.Options{Now: b.clk.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.t.Fatal(err)
	}
	b.st = st
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		if _, err := tx.SyncGet(syncID); err == nil {
			return nil
		}
		return tx.SyncPut(store.Sync{ID: syncID, Name: "partner", Role: b.role, ProjectKey: b.site.Project,
			SyncUser: enginetest.SyncUser, Transport: "loopback", State: store.StateRunning, SelfNode: b.site.Name, PeerNode: b.peer.Name})
	}); err != nil {
		b.t.Fatal(err)
	}
	if b.jira == nil {
		b.jira = b.site.Sync
	}
	b.node, err = engine.NewNode(engine.Config{Store: st, Jira: b.jira, Mapping: b.site.Mapping, SyncID: syncID,
		Node: b.site.Name, Role: b.role, SyncUser: enginetest.SyncUser, PeerURL: b.peer.URL, Workers: 1,
		BackOff: func(int) time.Duration { return 0 }, Location: time.UTC, Now: b.clk.Now, Hooks: b.hooks,
		CheckPermissions: b.checkPerms, WatcherSweepEvery: 1, Metrics: b.metrics,
		DeleteSweepEvery: b.deleteSweep})
	if err != nil {
		b.t.Fatal(err)
	}
}

func (b *bridge) stop() {
	if b.st != nil {
		_ = b.st.Close()
		b.st = nil
	}
}

func (b *bridge) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

type world struct {
	t            testing.TB
	clk          *enginetest.Clock
	alpha, beta  *enginetest.Site
	a, b         *bridge
	sentAB       map[wire.ChangeKind]int // changes moved alpha -> beta
	sentBA       map[wire.ChangeKind]int
	settleRounds int
	// ctx is what settle steps with; crash tests cancel it to kill a step.
	ctx context.Context
}

func newWorld(t testing.TB) *world {
	t.Helper()
	clk := enginetest.NewClock(time.Millisecond)
	alpha, beta := enginetest.NewPair(t, clk)
	dir := t.TempDir()
	w := &world{t: t, clk: clk, alpha: alpha, beta: beta, sentAB: map[wire.ChangeKind]int{}, sentBA: map[wire.ChangeKind]int{}, ctx: context.Background()}
	w.a = &bridge{t: t, clk: clk, site: alpha, peer: beta, role: store.RoleMaster, dbPath: filepath.Join(dir, "alpha", store.FileName)}
	w.b = &bridge{t: t, clk: clk, site: beta, peer: alpha, role: store.RoleSlave, dbPath: filepath.Join(dir, "beta", store.FileName)}
	w.a.start()
	w.b.start()
	t.Cleanup(func() { w.a.stop(); w.b.stop() })
	return w
}

// count records the kinds of the pending changes of from before they move.
func count(t testing.TB, from *bridge, into map[wire.ChangeKind]int) {
	t.Helper()
	err := from.st.View(context.Background(), func(tx *store.Tx) error {
		ps, err := tx.PendingList(syncID, 10000)
		for _, p := range ps {
			var c wire.Change
			if err := json.Unmarshal(p.Change, &c); err != nil {
				return err
			}
			into[c.Kind]++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// settle steps both nodes and moves changes both ways until nothing moves.
func (w *world) settle() {
	w.t.Helper()
	if err := w.trySettle(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) trySettle() error {
	ctx := w.ctx
	for round := 1; round <= 100; round++ {
		moved := 0
		for _, b := range []*bridge{w.a, w.b} {
			r, err := b.node.Step(ctx)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, b.site.Name, err)
			}
			if r.Moved() {
				moved++
			}
		}
		count(w.t, w.a, w.sentAB)
		n, err := engine.Loopback(ctx, w.a.node, w.b.node)
		if err != nil {
			return err
		}
		moved += n
		count(w.t, w.b, w.sentBA)
		if n, err = engine.Loopback(ctx, w.b.node, w.a.node); err != nil {
			return err
		}
		moved += n
		if moved == 0 {
			w.settleRounds = round
			return nil
		}
	}
	return errors.New("still moving after 100 rounds")
}

// person returns a client for people[i] on the site.
func person(t testing.TB, s *enginetest.Site, i int) *jira.Client {
	return s.Client(t, s.People[i])
}

// peerKey returns the key of the peer issue of a local issue key.
func (b *bridge) peerKey(t testing.TB, localKey string) string {
	t.Helper()
	is, err := b.site.Sync.GetIssue(context.Background(), localKey, []string{"summary"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var p store.IssuePair
	err = b.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		p, err = tx.PairByLocal(syncID, is.ID)
		return err
	})
	if err != nil {
		t.Fatalf("%s: no pair for %s: %v", b.site.Name, localKey, err)
	}
	return p.PeerKey
}

// state returns an issue's state in wire terms (aliases).
func state(t testing.TB, s *enginetest.Site, key string) (typ, status string, fields map[string]wire.Value) {
	t.Helper()
	is, err := s.Sync.GetIssue(context.Background(), key, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, ok, err := s.Mapping.IssueState(context.Background(), &is)
	if err != nil || !ok {
		t.Fatalf("state of %s on %s: ok %v, %v", key, s.Name, ok, err)
	}
	return st.IssueType, st.Status, st.Fields
}

// diffIssues compares an alpha issue and its beta peer through the REST
// API, after mapping; it returns one line per difference.
func diffIssues(t testing.TB, w *world, alphaKey, betaKey string) []string {
	t.Helper()
	at, as, af := state(t, w.alpha, alphaKey)
	bt, bs, bf := state(t, w.beta, betaKey)
	var out []string
	if at != bt {
		out = append(out, fmt.Sprintf("%s/%s issue type %q vs %q", alphaKey, betaKey, at, bt))
	}
	if as != bs {
		out = append(out, fmt.Sprintf("%s/%s status %q vs %q", alphaKey, betaKey, as, bs))
	}
	keys := map[string]bool{}
	for k := range af {
		keys[k] = true
	}
	for k := range bf {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if !af[k].Equal(bf[k]) {
			aj, _ := json.Marshal(af[k])
			bj, _ := json.Marshal(bf[k])
			out = append(out, fmt.Sprintf("%s/%s field %s: %s vs %s", alphaKey, betaKey, k, aj, bj))
		}
	}
	return out
}

// pairs returns alpha key -> beta key for every pair alpha knows.
func (w *world) pairs() map[string]string {
	w.t.Helper()
	out := map[string]string{}
	err := w.a.st.View(context.Background(), func(tx *store.Tx) error {
		ps, err := tx.PairList(syncID, "", 100000)
		for _, p := range ps {
			out[p.LocalKey] = p.PeerKey
		}
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// issueCount returns how many issues a site's project has.
func issueCount(t testing.TB, s *enginetest.Site) int {
	t.Helper()
	n := 0
	err := s.Client(t, "admin").SearchAll(context.Background(), "project = "+s.Project, []string{"summary"}, nil, func(jira.Issue) error {
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func engineLoopback(from, to *bridge) (int, error) {
	return engine.Loopback(context.Background(), from.node, to.node)
}
