package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/link"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/faulty"
	"github.com/jirabridge/jirabridge/transport/memlink"
)

const syncID = "partner"

// enableContent turns comments and attachments on in the site's sync
// definition and rebuilds its mapping.
func enableContent(t testing.TB, s *enginetest.Site) {
	t.Helper()
	def := *s.Def
	def.Comments = config.Comments{Switch: config.Switch{Enabled: true}, Restricted: config.RestrictedSkip}
	def.Attachments = config.Attachments{Switch: config.Switch{Enabled: true}, MaxSizeMB: 1, FilenamePatterns: []string{"*.txt"}}
	fields, err := s.Sync.Fields(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(&def, fields, mapping.Options{Users: s.Sync})
	if err != nil {
		t.Fatal(err)
	}
	s.Def, s.Mapping = &def, m
}

// bridge is one side: a site, its store, its engine node and its link
// over an in-memory mailbox wrapped in the fault decorator.
type bridge struct {
	name    string
	site    *enginetest.Site
	peer    *bridge
	role    store.Role
	keys    wire.NodeKeys
	st      *store.Store
	node    *engine.Node
	link    *link.Link
	fault   *faulty.Sender
	out, in *memlink.Mailbox
	recv    transport.Receiver
	metrics *metrics.Metrics
}

// linkOptions are fast settings for the test clock.
func linkOptions() link.Options {
	return link.Options{
		// Small batches: many envelopes, so every fault hits often.
		MaxBatchChanges: 4, MaxBatchBytes: 64 << 10, Linger: 500 * time.Millisecond,
		AckDelay: time.Second, GapTimeout: 10 * time.Second, HeartbeatInterval: 30 * time.Second,
		SilenceThreshold: 5 * time.Minute, Retention: 24 * time.Hour,
		SendBackOff: time.Second, PermanentBackOff: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
}

type world struct {
	t           testing.TB
	clk         *enginetest.Clock
	alpha, beta *enginetest.Site
	a, b        *bridge
}

// newWorld builds two sites and two bridges whose links send through
// fault decorators seeded from seed.
func newWorld(t testing.TB, seed uint64, rates faulty.Rates) *world {
	t.Helper()
	ctx := context.Background()
	clk := enginetest.NewClock(time.Millisecond)
	alpha, beta := enginetest.NewPair(t, clk)
	enableContent(t, alpha)
	enableContent(t, beta)
	w := &world{t: t, clk: clk, alpha: alpha, beta: beta}
	w.a = &bridge{name: alpha.Name, site: alpha, role: store.RoleMaster}
	w.b = &bridge{name: beta.Name, site: beta, role: store.RoleSlave}
	w.a.peer, w.b.peer = w.b, w.a
	w.a.out, w.b.out = memlink.Pair()
	w.a.in, w.b.in = w.b.out, w.a.out
	dir := t.TempDir()
	for _, b := range []*bridge{w.a, w.b} {
		k, err := wire.GenerateNodeKeys()
		if err != nil {
			t.Fatal(err)
		}
		b.keys = k
	}
	for i, b := range []*bridge{w.a, w.b} {
		st, err := store.Open(ctx, filepath.Join(dir, b.name, store.FileName), &store.Options{Now: clk.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		b.st = st
		t.Cleanup(func() { _ = st.Close() })
		pub := b.peer.keys.Public()
		err = st.Update(ctx, func(tx *store.Tx) error {
			if err := tx.SyncPut(store.Sync{ID: syncID, Name: "partner", Role: b.role, ProjectKey: b.site.Project,
				SyncUser: enginetest.SyncUser, Transport: "mem", State: store.StateRunning, SelfNode: b.name, PeerNode: b.peer.name}); err != nil {
				return err
			}
			return tx.KeysPut(store.Keys{SyncID: syncID, SigningKey: b.keys.Signing, AgeIdentity: b.keys.Identity.String(),
				PeerSigningKey: pub.Signing, PeerAgeRecipient: pub.Recipient.String()})
		})
		if err != nil {
			t.Fatal(err)
		}
		b.node, err = engine.NewNode(engine.Config{Store: st, Jira: b.site.Sync, Mapping: b.site.Mapping, SyncID: syncID,
			Node: b.name, Role: b.role, SyncUser: enginetest.SyncUser, PeerURL: b.peer.site.URL, Workers: 2,
			BackOff: func(int) time.Duration { return 0 }, Location: time.UTC, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		b.metrics = metrics.New(nil)
		b.fault = faulty.New(b.out.Sender(), faulty.Options{Rates: rates, Seed: seed + uint64(i), DelayFor: 15 * time.Second,
			Now: clk.Now, Metrics: b.metrics})
		b.recv = b.in.NewReceiver()
		o := linkOptions()
		o.Store, o.SyncID, o.Now, o.Sender, o.Receiver, o.Metrics = st, syncID, clk.Now, b.fault, b.recv, b.metrics
		b.link, err = link.New(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.recv.Close() })
	}
	return w
}

// step runs one round of both bridges: engine (detect and replay) and
// link, then lets the delayed envelopes out and moves the clock on.
func (w *world) step(dt time.Duration) (moved bool, err error) {
	ctx := context.Background()
	for _, b := range []*bridge{w.a, w.b} {
		r, err := b.node.Step(ctx)
		if err != nil {
			return false, fmt.Errorf("%s engine step: %w", b.name, err)
		}
		moved = moved || r.Moved() || r.Detected > 0
		if err := b.link.Step(ctx); err != nil {
			return false, fmt.Errorf("%s link step: %w", b.name, err)
		}
		if err := b.fault.Tick(ctx); err != nil {
			return false, fmt.Errorf("%s fault tick: %w", b.name, err)
		}
	}
	w.clk.Advance(dt)
	return moved, nil
}

// quiet reports whether nothing is in flight: nothing pending, unacked,
// missing, held back or waiting in a replay queue on either side.
func (w *world) quiet() (bool, error) {
	ctx := context.Background()
	for _, b := range []*bridge{w.a, w.b} {
		s, err := b.link.Status(ctx)
		if err != nil {
			return false, err
		}
		ps, err := b.peer.link.Status(ctx)
		if err != nil {
			return false, err
		}
		var pending store.PendingStats
		var ready []store.ReplayItem
		err = b.st.View(ctx, func(tx *store.Tx) error {
			if pending, err = tx.PendingStats(syncID); err != nil {
				return err
			}
			ready, err = tx.ReplayByState(syncID, store.ReplayPending, 1)
			return err
		})
		if err != nil {
			return false, err
		}
		if pending.Count > 0 || s.Outbox.Depth > 0 || len(s.OpenGaps) > 0 || ps.Contiguous != s.HighestAssigned ||
			b.fault.Held() > 0 || len(ready) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// settle steps until the world has been quiet and still for a few rounds.
func (w *world) settle(maxRounds int) (int, error) {
	still := 0
	for round := 1; round <= maxRounds; round++ {
		moved, err := w.step(time.Second)
		if err != nil {
			return round, err
		}
		q, err := w.quiet()
		if err != nil {
			return round, err
		}
		if q && !moved {
			still++
			if still >= 3 {
				return round, nil
			}
		} else {
			still = 0
		}
	}
	return maxRounds, fmt.Errorf("not settled after %d rounds", maxRounds)
}

// pairs returns alpha key -> beta key for every pair alpha knows.
func (w *world) pairs() (map[string]string, error) {
	out := map[string]string{}
	err := w.a.st.View(context.Background(), func(tx *store.Tx) error {
		ps, err := tx.PairList(syncID, "", 1_000_000)
		for _, p := range ps {
			out[p.LocalKey] = p.PeerKey
		}
		return err
	})
	return out, err
}

// failures lists the failure records of a bridge.
func (b *bridge) failures() ([]store.Failure, error) {
	var fs []store.Failure
	err := b.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 1000)
		return err
	})
	return fs, err
}

// issueState is an issue in wire terms, plus its comments and attachments
// reduced to the markers the test wrote into them.
type issueState struct {
	Type, Status string
	Fields       map[string]wire.Value
}

func state(ctx context.Context, s *enginetest.Site, key string) (issueState, error) {
	is, err := s.Sync.GetIssue(ctx, key, nil, nil)
	if err != nil {
		return issueState{}, err
	}
	st, ok, err := s.Mapping.IssueState(ctx, &is)
	if err != nil || !ok {
		return issueState{}, fmt.Errorf("state of %s on %s: ok %v, %v", key, s.Name, ok, err)
	}
	return issueState{Type: st.IssueType, Status: st.Status, Fields: st.Fields}, nil
}

// diffIssues compares an alpha issue and its beta peer after mapping.
func diffIssues(ctx context.Context, w *world, ak, bk string) ([]string, error) {
	a, err := state(ctx, w.alpha, ak)
	if err != nil {
		return nil, err
	}
	b, err := state(ctx, w.beta, bk)
	if err != nil {
		return nil, err
	}
	var out []string
	if a.Type != b.Type {
		out = append(out, fmt.Sprintf("%s/%s issue type %q vs %q", ak, bk, a.Type, b.Type))
	}
	if a.Status != b.Status {
		out = append(out, fmt.Sprintf("%s/%s status %q vs %q", ak, bk, a.Status, b.Status))
	}
	keys := map[string]bool{}
	for k := range a.Fields {
		keys[k] = true
	}
	for k := range b.Fields {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if !a.Fields[k].Equal(b.Fields[k]) {
			out = append(out, fmt.Sprintf("%s/%s field %s: %v vs %v", ak, bk, k, a.Fields[k], b.Fields[k]))
		}
	}
	return out, nil
}

// markers counts, per issue key, the test markers ("m-<n>") found in the
// issue's comment bodies and attachment file names.
func markers(ctx context.Context, s *enginetest.Site, key string) (comments, attachments map[string]int, err error) {
	comments, attachments = map[string]int{}, map[string]int{}
	cms, err := s.Sync.Comments(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cms {
		for _, f := range strings.Fields(c.Body) {
			if strings.HasPrefix(f, "m-") {
				comments[f]++
			}
		}
	}
	as, err := s.Sync.Attachments(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range as {
		attachments[strings.TrimSuffix(a.Filename, ".txt")]++
	}
	return comments, attachments, nil
}

// projectKeys lists a site's issue keys.
func projectKeys(ctx context.Context, s *enginetest.Site) ([]string, error) {
	var keys []string
	err := s.Sync.SearchAll(ctx, "project = "+s.Project+" ORDER BY key ASC", []string{"summary"}, nil, func(is jira.Issue) error {
		keys = append(keys, is.Key)
		return nil
	})
	return keys, err
}
