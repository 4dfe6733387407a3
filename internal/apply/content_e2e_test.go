package apply_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/apply"
	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/detect"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/jirasim"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// This file proves content sync (comments, attachments, watchers, links)
// end to end over a loopback between two jirasims: detection on one side,
// replay and apply on the other.

const syncID = "partner"

// contentDef turns the site's definition's content switches on; edit
// adjusts it further.
func contentDef(t testing.TB, s *enginetest.Site, edit func(*config.SyncDef)) {
	t.Helper()
	def := *s.Def
	def.Comments = config.Comments{Switch: config.Switch{Enabled: true}, Restricted: config.RestrictedSkip}
	def.Attachments = config.Attachments{Switch: config.Switch{Enabled: true}, MaxSizeMB: 1, NoticeOnSkip: true,
		FilenamePatterns: []string{"*.txt", "*.bin", "*.png"}}
	def.Watchers = config.Switch{Enabled: true}
	def.Links = config.Links{Switch: config.Switch{Enabled: true}}
	def.Subtasks = config.Switch{Enabled: true}
	if edit != nil {
		edit(&def)
	}
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

type side struct {
	site   *enginetest.Site
	peer   *enginetest.Site
	role   store.Role
	clk    *enginetest.Clock
	dbPath string
	hooks  apply.Hooks
	st     *store.Store
	det    *detect.Detector
	app    *apply.Applier
	rep    *replay.Replayer
}

// router is the applier the engine will use: content kinds to
// ApplyContent, waiting links after every create or pair.
type router struct{ a *apply.Applier }

func (r router) Apply(ctx context.Context, c wire.Change) error {
	if apply.IsContent(c.Kind) {
		return r.a.ApplyContent(ctx, c)
	}
	if err := r.a.Apply(ctx, c); err != nil {
		return err
	}
	_, err := r.a.ApplyWaitingLinks(ctx)
	return err
}

// ParentReady lets the replay wake sub-tasks waiting for their parent, as
// the engine's applier does.
func (r router) ParentReady(ctx context.Context, c wire.Change) (bool, error) {
	return r.a.ParentReady(ctx, c)
}

func newSide(t testing.TB, clk *enginetest.Clock, s, peer *enginetest.Site, role store.Role) *side {
	t.Helper()
	sd := &side{site: s, peer: peer, role: role, clk: clk, dbPath: filepath.Join(t.TempDir(), store.FileName)}
	sd.start(t)
	t.Cleanup(func() { _ = sd.st.Close() })
	return sd
}

// start opens the side's store and builds detection, applier and replay,
// as a (re)started bridge does.
func (sd *side) start(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	s, clk := sd.site, sd.clk
	st, err := store.Open(ctx, sd.dbPath, &store.Options{Now: clk.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.SyncGet(syncID); err == nil {
			return nil
		}
		return tx.SyncPut(store.Sync{ID: syncID, Name: "partner", Role: sd.role, ProjectKey: s.Project,
			SyncUser: enginetest.SyncUser, Transport: "loopback", State: store.StateRunning, SelfNode: s.Name, PeerNode: sd.peer.Name})
	}); err != nil {
		t.Fatal(err)
	}
	det, err := detect.New(detect.Options{Jira: s.Sync, Store: st, SyncID: syncID, Node: s.Name, SyncUser: enginetest.SyncUser,
		Mapping: s.Mapping, Location: time.UTC, Now: clk.Now, Logger: slog.New(slog.DiscardHandler), WatcherSweepEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	app, err := apply.New(apply.Options{Jira: s.Sync, Store: st, SyncID: syncID, Role: sd.role, ProjectKey: s.Project, Mapping: s.Mapping,
		SyncUser: enginetest.SyncUser, PeerURL: sd.peer.URL, Location: time.UTC, Now: clk.Now, Hooks: sd.hooks})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replay.New(replay.Options{Store: st, SyncID: syncID, Applier: router{app}, Workers: 1,
		BackOff: func(int) time.Duration { return 0 }, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sd.st, sd.det, sd.app, sd.rep = st, det, app, rep
}

// restart closes the store and starts again from the database.
func (sd *side) restart(t testing.TB) {
	t.Helper()
	_ = sd.st.Close()
	sd.start(t)
}

type cworld struct {
	t      testing.TB
	clk    *enginetest.Clock
	alpha  *enginetest.Site
	beta   *enginetest.Site
	a, b   *side
	sentAB map[wire.ChangeKind]int
	sentBA map[wire.ChangeKind]int
}

func newCWorld(t testing.TB, edit func(*config.SyncDef)) *cworld {
	t.Helper()
	clk := enginetest.NewClock(time.Millisecond)
	alpha, beta := enginetest.NewPair(t, clk)
	contentDef(t, alpha, edit)
	contentDef(t, beta, edit)
	w := &cworld{t: t, clk: clk, alpha: alpha, beta: beta, sentAB: map[wire.ChangeKind]int{}, sentBA: map[wire.ChangeKind]int{}}
	w.a = newSide(t, clk, alpha, beta, store.RoleMaster)
	w.b = newSide(t, clk, beta, alpha, store.RoleSlave)
	return w
}

// move is the loopback: from's pending changes into to's replay queue.
func move(ctx context.Context, from, to *side, count map[wire.ChangeKind]int) (int, error) {
	var ps []store.PendingChange
	if err := from.st.View(ctx, func(tx *store.Tx) error {
		var err error
		ps, err = tx.PendingList(syncID, 10000)
		return err
	}); err != nil {
		return 0, err
	}
	if len(ps) == 0 {
		return 0, nil
	}
	if err := to.st.Update(ctx, func(tx *store.Tx) error {
		for _, p := range ps {
			var c wire.Change
			if err := json.Unmarshal(p.Change, &c); err != nil {
				return err
			}
			count[c.Kind]++
			if _, _, err := tx.ReplayEnqueue(syncID, c.IssueID, c.ID, p.Change); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, err
	}
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return len(ps), from.st.Update(ctx, func(tx *store.Tx) error { return tx.PendingDelete(ids...) })
}

// settle runs both bridges until nothing moves, then checks that nothing
// is parked.
func (w *cworld) settle() {
	w.t.Helper()
	w.run()
	w.assertNothingParked()
}

func (w *cworld) assertNothingParked() {
	w.t.Helper()
	for _, s := range []*side{w.a, w.b} {
		_ = s.st.View(context.Background(), func(tx *store.Tx) error {
			fs, err := tx.FailureList(syncID, 100, store.FailureOpen)
			for _, f := range fs {
				w.t.Errorf("%s: parked %s (%s): %s", s.site.Name, f.ChangeID, f.Kind, f.ErrorText)
			}
			return err
		})
	}
}

func (w *cworld) person(s *enginetest.Site, i int) *jira.Client { return s.Client(w.t, s.People[i]) }

func (w *cworld) create(s *enginetest.Site, who int, summary string) jira.Ref {
	w.t.Helper()
	typ := "Bug"
	ref, err := w.person(s, who).CreateIssue(context.Background(), map[string]any{
		"project": map[string]string{"key": s.Project}, "issuetype": map[string]string{"name": typ}, "summary": summary}, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return ref
}

// peer returns the key of the other side's issue paired with a local one.
func (w *cworld) peer(s *side, localKey string) string {
	w.t.Helper()
	is, err := s.site.Sync.GetIssue(context.Background(), localKey, []string{"summary"}, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	var p store.IssuePair
	if err := s.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		p, err = tx.PairByLocal(syncID, is.ID)
		return err
	}); err != nil {
		w.t.Fatalf("%s: no pair for %s: %v", s.site.Name, localKey, err)
	}
	return p.PeerKey
}

// commentLines returns an issue's comments as "author: text" with the
// bridge's author line turned back into the author, sorted.
func commentLines(t testing.TB, s *enginetest.Site, key string) []string {
	t.Helper()
	cms, err := s.Sync.Comments(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cms {
		author := c.Author.DisplayName
		body := c.Body
		if c.Author.Name == enginetest.SyncUser {
			first, rest, ok := strings.Cut(body, "\n")
			if ok && strings.HasSuffix(first, "(Partner Jira):") {
				author, body = strings.TrimSuffix(first, " (Partner Jira):"), rest
			} else {
				author = "notice"
			}
		}
		out = append(out, author+": "+body)
	}
	sort.Strings(out)
	return out
}

func attachmentSums(t testing.TB, s *enginetest.Site, key string) []string {
	t.Helper()
	as, err := s.Sync.Attachments(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		b, err := s.Sync.DownloadAttachment(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		out = append(out, a.Filename+"="+hex.EncodeToString(sum[:8]))
	}
	sort.Strings(out)
	return out
}

// watcherEmails returns the people watching an issue, by e-mail, without
// the sync user.
func watcherEmails(t testing.TB, s *enginetest.Site, key string) []string {
	t.Helper()
	ws, err := s.Sync.Watchers(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range ws {
		if u.Name != enginetest.SyncUser {
			out = append(out, u.EmailAddress)
		}
	}
	sort.Strings(out)
	return out
}

// linkSet returns an issue's outward links as "type>other key", with the
// other key translated by tr.
func linkSet(t testing.TB, s *enginetest.Site, key string, tr func(string) string) []string {
	t.Helper()
	ls, err := s.Sync.IssueLinks(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		if l.OutwardIssue != nil {
			out = append(out, l.Type.Name+">"+tr(l.OutwardIssue.Key))
		}
	}
	sort.Strings(out)
	return out
}

func same(t testing.TB, what string, a, b []string) {
	t.Helper()
	if !slices.Equal(a, b) {
		t.Errorf("%s differ:\nalpha %q\nbeta  %q", what, a, b)
	}
}

func TestCommentsAddEditDeleteBothWays(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	ref := w.create(w.alpha, 0, "comments")
	alice := w.person(w.alpha, 0)
	c1, err := alice.AddComment(ctx, ref.Key, "first words", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	same(t, "comments after add", commentLines(t, w.alpha, ref.Key), commentLines(t, w.beta, bk))
	if got := commentLines(t, w.beta, bk); len(got) != 1 || got[0] != "Alice Smith: first words" {
		t.Fatalf("beta comments %q", got)
	}

	// Edits of an edited comment, then the beta person's comment.
	for _, text := range []string{"second words", "third words"} {
		if _, err := alice.EditComment(ctx, ref.Key, c1.ID, text, nil); err != nil {
			t.Fatal(err)
		}
		w.settle()
		same(t, "comments after edit", commentLines(t, w.alpha, ref.Key), commentLines(t, w.beta, bk))
	}
	bjones := w.person(w.beta, 1)
	c2, err := bjones.AddComment(ctx, bk, "answer from beta", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	same(t, "comments after beta add", commentLines(t, w.alpha, ref.Key), commentLines(t, w.beta, bk))

	// A person on alpha edits the bridge's copy of bjones's comment: the
	// original on beta changes (without the author line).
	cms, err := w.alpha.Sync.Comments(ctx, ref.Key)
	if err != nil {
		t.Fatal(err)
	}
	var copyID string
	for _, c := range cms {
		if c.Author.Name == enginetest.SyncUser {
			copyID = c.ID
		}
	}
	carolA := w.person(w.alpha, 2)
	if _, err := carolA.EditComment(ctx, ref.Key, copyID, "Bob Jones (Partner Jira):\nanswer, corrected on alpha", nil); err != nil {
		// carol may not edit others' comments; the admin can.
		if _, err := w.alpha.Client(t, "admin").EditComment(ctx, ref.Key, copyID, "Bob Jones (Partner Jira):\nanswer, corrected on alpha", nil); err != nil {
			t.Fatal(err)
		}
	}
	w.settle()
	orig, err := w.beta.Sync.Comments(ctx, bk)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range orig {
		if c.ID == c2.ID {
			found = true
			if c.Body != "answer, corrected on alpha" {
				t.Errorf("beta original = %q", c.Body)
			}
		}
	}
	if !found {
		t.Fatal("beta original comment gone")
	}
	same(t, "comments after copy edit", commentLines(t, w.alpha, ref.Key), commentLines(t, w.beta, bk))

	// Delete the copy on alpha: the original on beta goes. Delete the
	// original on alpha: its copy on beta goes.
	if err := w.alpha.Client(t, "admin").DeleteComment(ctx, ref.Key, copyID); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteComment(ctx, ref.Key, c1.ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := commentLines(t, w.beta, bk); len(got) != 0 {
		t.Errorf("beta comments after deletes: %q", got)
	}
	if got := commentLines(t, w.alpha, ref.Key); len(got) != 0 {
		t.Errorf("alpha comments after deletes: %q", got)
	}

	// No echo: each side sent only what its people did.
	if w.sentAB[wire.CommentAdd] != 1 || w.sentAB[wire.CommentEdit] != 3 || w.sentAB[wire.CommentDelete] != 2 {
		t.Errorf("alpha sent %v", w.sentAB)
	}
	if w.sentBA[wire.CommentAdd] != 1 || w.sentBA[wire.CommentEdit] != 0 || w.sentBA[wire.CommentDelete] != 0 {
		t.Errorf("beta sent %v", w.sentBA)
	}
}

func TestRestrictedAndInternalCommentsDoNotLeak(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	// The sync user sees the restricted comment, and still must not send it.
	if err := w.alpha.Sim.AddRoleMember(w.alpha.Project, "Developers", enginetest.SyncUser); err != nil {
		t.Fatal(err)
	}
	ref := w.create(w.alpha, 0, "private")
	alice := w.person(w.alpha, 0)
	if _, err := alice.AddComment(ctx, ref.Key, "for developers only", &jira.Visibility{Type: "role", Value: "Developers"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddComment(ctx, ref.Key, "internal note", nil,
		[]jira.Property{{Key: jira.InternalCommentProperty, Value: map[string]bool{"internal": true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddComment(ctx, ref.Key, "public", nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	if got := commentLines(t, w.beta, bk); !slices.Equal(got, []string{"Alice Smith: public"}) {
		t.Errorf("beta sees %q, want only the public comment", got)
	}
	if n := w.a.det.Stats().RestrictedComments.Load(); n != 2 {
		t.Errorf("restricted comments counted %d, want 2", n)
	}
}

func TestRestrictedCommentsMappedKeepTheirRestriction(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, func(d *config.SyncDef) {
		d.Comments.Restricted = config.RestrictedMap
		d.Comments.Visibility = []config.Visibility{{Type: "role", Value: "Developers", Alias: "devs"}}
	})
	ctx := context.Background()
	for _, s := range []*enginetest.Site{w.alpha, w.beta} {
		if err := s.Sim.AddRoleMember(s.Project, "Developers", enginetest.SyncUser); err != nil {
			t.Fatal(err)
		}
	}
	ref := w.create(w.alpha, 0, "mapped")
	if _, err := w.person(w.alpha, 0).AddComment(ctx, ref.Key, "devs only", &jira.Visibility{Type: "role", Value: "Developers"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.person(w.alpha, 0).AddComment(ctx, ref.Key, "internal stays", nil,
		[]jira.Property{{Key: jira.InternalCommentProperty, Value: map[string]bool{"internal": true}}}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	cms, err := w.beta.Sync.Comments(ctx, w.peer(w.a, ref.Key))
	if err != nil {
		t.Fatal(err)
	}
	if len(cms) != 1 || cms[0].Visibility == nil || cms[0].Visibility.Value != "Developers" || !strings.HasSuffix(cms[0].Body, "devs only") {
		t.Errorf("beta comments %+v, want only the Developers one, restricted", cms)
	}
}

func randomBytes(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestAttachmentsAddDeleteAndFilters(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	ref := w.create(w.alpha, 0, "files")
	alice := w.person(w.alpha, 0)
	a1, err := alice.AddAttachment(ctx, ref.Key, "data.bin", randomBytes(1, 70000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddAttachment(ctx, ref.Key, "big.bin", randomBytes(2, 1<<20+10)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddAttachment(ctx, ref.Key, "tool.exe", randomBytes(3, 100)); err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	if got := attachmentSums(t, w.beta, bk); len(got) != 1 || !strings.HasPrefix(got[0], "data.bin=") {
		t.Fatalf("beta attachments %q", got)
	}
	same(t, "the synced attachment", attachmentSums(t, w.alpha, ref.Key)[1:2], attachmentSums(t, w.beta, bk))
	notices := commentLines(t, w.beta, bk)
	if len(notices) != 2 || !strings.Contains(notices[0], `"big.bin"`) || !strings.Contains(notices[0], "larger than 1 MB") ||
		!strings.Contains(notices[1], `"tool.exe"`) {
		t.Errorf("notices on beta: %q", notices)
	}

	// Beta's person adds one; alpha deletes the original of the first.
	if _, err := w.person(w.beta, 1).AddAttachment(ctx, bk, "reply.txt", []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteAttachment(ctx, a1.ID); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := attachmentSums(t, w.beta, bk); len(got) != 1 || !strings.HasPrefix(got[0], "reply.txt=") {
		t.Errorf("beta attachments %q", got)
	}
	// A person on alpha deletes the bridge's copy: the original goes.
	as, err := w.alpha.Sync.Attachments(ctx, ref.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Filename == "reply.txt" {
			if err := w.alpha.Client(t, "admin").DeleteAttachment(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.settle()
	if got := attachmentSums(t, w.beta, bk); len(got) != 0 {
		t.Errorf("beta attachments after deleting the copy: %q", got)
	}
	if w.sentBA[wire.AttachmentAdd] != 1 || w.sentAB[wire.AttachmentAdd] != 1 || w.sentAB[wire.AttachmentDelete] != 2 || w.sentBA[wire.AttachmentDelete] != 0 {
		t.Errorf("sent alpha %v, beta %v", w.sentAB, w.sentBA)
	}
}

func TestWatchersBySetWithUnmappableSkipped(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	if err := w.alpha.Sim.CreateUser(jiraUser("dave")); err != nil {
		t.Fatal(err)
	}
	ref := w.create(w.alpha, 0, "watch")
	admin := w.alpha.Client(t, "admin")
	for _, n := range []string{"bob", "dave"} {
		if err := admin.AddWatcher(ctx, ref.Key, n); err != nil {
			t.Fatal(err)
		}
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	want := []string{"alice@corp.example", "bob@corp.example"}
	if got := watcherEmails(t, w.beta, bk); !slices.Equal(got, want) {
		t.Errorf("beta watchers %q, want %q", got, want)
	}
	if err := admin.RemoveWatcher(ctx, ref.Key, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := w.beta.Client(t, "admin").AddWatcher(ctx, bk, "cwhite"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	want = []string{"alice@corp.example", "carol@corp.example"}
	if got := watcherEmails(t, w.beta, bk); !slices.Equal(got, want) {
		t.Errorf("beta watchers %q, want %q", got, want)
	}
	got := watcherEmails(t, w.alpha, ref.Key)
	got = slices.DeleteFunc(got, func(s string) bool { return s == "dave@elsewhere.example" })
	if !slices.Equal(got, want) {
		t.Errorf("alpha watchers %q, want %q", got, want)
	}
	if n := unmapped(t, w.b); n != 1 {
		t.Errorf("unmapped watchers on beta %d, want 1 (dave)", n)
	}
}

func jiraUser(name string) jirasim.UserSpec {
	return jirasim.UserSpec{Name: name, Password: enginetest.Password, DisplayName: "Dave Nobody", Email: name + "@elsewhere.example"}
}

func unmapped(t testing.TB, s *side) int {
	var v string
	_ = s.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		v, _, err = tx.CursorGet(apply.UnmappedWatchersCursor(syncID))
		return err
	})
	var n int
	fmt.Sscan(v, &n)
	return n
}

func TestLinksBetweenSyncedIssuesAndWaitingForTheOtherEnd(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	r1 := w.create(w.alpha, 0, "one")
	r2 := w.create(w.alpha, 0, "two")
	// Not synced: Story is no synced issue type on alpha.
	other, err := w.person(w.alpha, 0).CreateIssue(ctx, map[string]any{"project": map[string]string{"key": "ALPHA"},
		"issuetype": map[string]string{"name": "Story"}, "summary": "not synced"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice := w.person(w.alpha, 0)
	if err := alice.CreateLink(ctx, "Relates", r1.Key, other.Key); err != nil {
		t.Fatal(err)
	}
	// r1 (updated first by the link) is processed and applied before r2
	// exists on beta: its link waits for r2's copy.
	if err := alice.CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	b1, b2 := w.peer(w.a, r1.Key), w.peer(w.a, r2.Key)
	toAlpha := map[string]string{b1: r1.Key, b2: r2.Key}
	tr := func(k string) string {
		if a, ok := toAlpha[k]; ok {
			return a
		}
		return k
	}
	wantA := []string{"Blocks>" + r2.Key, "Relates>" + other.Key}
	if got := linkSet(t, w.alpha, r1.Key, func(k string) string { return k }); !slices.Equal(got, wantA) {
		t.Fatalf("alpha links %q", got)
	}
	if got := linkSet(t, w.beta, b1, tr); !slices.Equal(got, []string{"Blocks>" + r2.Key}) {
		t.Errorf("beta links %q, want only the link between synced issues", got)
	}
	if n := w.a.det.Stats().SkippedLinks.Load(); n != 1 {
		t.Errorf("skipped links %d, want 1", n)
	}
	var waited bool
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		ls, err := w.alpha.Sync.IssueLinks(ctx, r1.Key)
		for _, l := range ls {
			if l.Type.Name == "Blocks" {
				a, lerr := tx.LedgerGet(syncID + "/alpha/l" + l.ID)
				waited = lerr == nil && a.Result == "waiting"
			}
		}
		return err
	})
	if !waited {
		t.Error("the link did not wait for its other end (test did not exercise the wait)")
	}

	// Remove on beta: gone on alpha; add one on beta: appears on alpha.
	bls, err := w.beta.Sync.IssueLinks(ctx, b1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.person(w.beta, 0).DeleteLink(ctx, bls[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := w.person(w.beta, 0).CreateLink(ctx, "Duplicate", b2, b1); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := linkSet(t, w.alpha, r1.Key, tr); !slices.Equal(got, []string{"Relates>" + other.Key}) {
		t.Errorf("alpha links of %s %q", r1.Key, got)
	}
	if got := linkSet(t, w.alpha, r2.Key, tr); !slices.Equal(got, []string{"Duplicate>" + r1.Key}) {
		t.Errorf("alpha links of %s %q", r2.Key, got)
	}
	same(t, "links of two", linkSet(t, w.alpha, r2.Key, tr), linkSet(t, w.beta, b2, tr))
	if w.sentAB[wire.LinkAdd] != 1 || w.sentBA[wire.LinkRemove] != 1 || w.sentBA[wire.LinkAdd] != 1 || w.sentAB[wire.LinkRemove] != 0 {
		t.Errorf("sent alpha %v, beta %v", w.sentAB, w.sentBA)
	}
}

// errCrash stands for the bridge dying right after a Jira write.
var errCrash = errors.New("crash after the Jira write")

func TestCrashAfterCommentOrAttachmentWriteDoesNotDouble(t *testing.T) {
	t.Parallel()
	for _, step := range []apply.Step{apply.StepComment, apply.StepAttachment} {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			w := newCWorld(t, nil)
			ctx := context.Background()
			ref := w.create(w.alpha, 0, "crash")
			w.settle()
			bk := w.peer(w.a, ref.Key)

			crashes := 0
			w.b.hooks.AfterWrite = func(s apply.Step, c wire.Change) error {
				if s == step {
					crashes++
					return errCrash
				}
				return nil
			}
			w.b.restart(t)
			alice := w.person(w.alpha, 0)
			if _, err := alice.AddComment(ctx, ref.Key, "once", nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.AddAttachment(ctx, ref.Key, "once.bin", randomBytes(9, 5000)); err != nil {
				t.Fatal(err)
			}
			// One step: detect on alpha, move, apply on beta until the crash.
			if _, err := w.a.det.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := move(ctx, w.a, w.b, w.sentAB); err != nil {
				t.Fatal(err)
			}
			_, _ = w.b.rep.Round(ctx)
			if crashes != 1 {
				t.Fatalf("%d crashes, want 1", crashes)
			}
			// Restart from the database without the hook; the retry must
			// find the marker instead of writing again.
			w.b.hooks.AfterWrite = nil
			w.b.restart(t)
			var parked []store.Failure
			_ = w.b.st.View(ctx, func(tx *store.Tx) error {
				var err error
				parked, err = tx.FailureList(syncID, 10, store.FailureOpen)
				return err
			})
			for _, f := range parked {
				if _, err := replay.Retry(ctx, w.b.st, f.ID); err != nil {
					t.Fatal(err)
				}
			}
			w.settle()
			if got := commentLines(t, w.beta, bk); !slices.Equal(got, []string{"Alice Smith: once"}) {
				t.Errorf("beta comments %q, want one", got)
			}
			if got := attachmentSums(t, w.beta, bk); len(got) != 1 {
				t.Errorf("beta attachments %q, want one", got)
			}
			same(t, "attachments", attachmentSums(t, w.alpha, ref.Key), attachmentSums(t, w.beta, bk))
		})
	}
}

func TestAttachmentVerifyFailureRetriesWithoutDoubling(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	ctx := context.Background()
	ref := w.create(w.alpha, 0, "verify")
	w.settle()
	bk := w.peer(w.a, ref.Key)
	// The download that verifies the upload fails once (after the upload
	// succeeded): the retry finds the uploaded file by name, size and
	// checksum instead of uploading it again.
	w.beta.Sim.AddFault(jirasim.Fault{Method: "GET", Path: "/secure/attachment/**", Status: 503, Times: 1})
	up, err := w.person(w.alpha, 0).AddAttachment(ctx, ref.Key, "v.bin", randomBytes(5, 4000))
	if err != nil {
		t.Fatal(err)
	}
	w.settle()
	var item store.ReplayItem
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		var err error
		item, err = tx.ReplayGetByChange(syncID, syncID+"/alpha/a"+up.ID)
		return err
	})
	if item.Attempts != 2 {
		t.Errorf("attachment applied in %d attempts, want 2 (the fault did not hit)", item.Attempts)
	}
	if got := attachmentSums(t, w.beta, bk); len(got) != 1 {
		t.Errorf("beta attachments %q, want one", got)
	}
	same(t, "attachments", attachmentSums(t, w.alpha, ref.Key), attachmentSums(t, w.beta, bk))
}

func TestCommentAuthorMappedToALocalUser(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, func(d *config.SyncDef) { d.Users.CommentAuthor = config.AuthorMap })
	ctx := context.Background()
	ref := w.create(w.alpha, 1, "mapped author")
	if _, err := w.person(w.alpha, 1).AddComment(ctx, ref.Key, "from bob", nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	bk := w.peer(w.a, ref.Key)
	cms, err := w.beta.Sync.Comments(ctx, bk)
	if err != nil {
		t.Fatal(err)
	}
	if len(cms) != 1 || cms[0].Body != "[~bjones]:\nfrom bob" {
		t.Fatalf("beta comments %+v, want one by [~bjones]", cms)
	}
	// An edit of the copy on beta reaches the original without the mention.
	if _, err := w.beta.Client(t, "admin").EditComment(ctx, bk, cms[0].ID, "[~bjones]:\nfrom bob, fixed", nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	orig, err := w.alpha.Sync.Comments(ctx, ref.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) != 1 || orig[0].Body != "from bob, fixed" {
		t.Errorf("alpha original %+v", orig)
	}
}

func TestFeatureSwitchedOffOnTheReceivingSide(t *testing.T) {
	t.Parallel()
	w := newCWorld(t, nil)
	contentDef(t, w.beta, func(d *config.SyncDef) { d.Comments.Enabled = false })
	w.b.restart(t)
	ctx := context.Background()
	ref := w.create(w.alpha, 0, "switch")
	if _, err := w.person(w.alpha, 0).AddComment(ctx, ref.Key, "not wanted there", nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle() // nothing parked
	if got := commentLines(t, w.beta, w.peer(w.a, ref.Key)); len(got) != 0 {
		t.Errorf("beta has comments %q although its comments are off", got)
	}
}
