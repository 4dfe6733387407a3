package engine_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/perms"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// withContent switches comments, attachments, watchers, links and
// sub-tasks on for both sites and restarts the bridges with it.
func withContent(t *testing.T, w *world) {
	t.Helper()
	for _, s := range []*enginetest.Site{w.alpha, w.beta} {
		def := *s.Def
		def.Comments = config.Comments{Switch: config.Switch{Enabled: true}, Restricted: config.RestrictedSkip}
		def.Attachments = config.Attachments{Switch: config.Switch{Enabled: true}, MaxSizeMB: 1, NoticeOnSkip: true}
		def.Watchers = config.Switch{Enabled: true}
		def.Links = config.Links{Switch: config.Switch{Enabled: true}}
		def.Subtasks = config.Switch{Enabled: true}
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
	w.a.restart()
	w.b.restart()
}

func newIssue(t *testing.T, c *jira.Client, project, typ, summary, parent string) jira.Ref {
	t.Helper()
	f := map[string]any{"project": map[string]string{"key": project}, "issuetype": map[string]string{"name": typ}, "summary": summary}
	if parent != "" {
		f["parent"] = map[string]string{"key": parent}
	}
	ref, err := c.CreateIssue(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestEngineContentRoundTrip(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	withContent(t, w)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r1 := newIssue(t, alice, "ALPHA", "Bug", "one", "")
	r2 := newIssue(t, alice, "ALPHA", "Bug", "two", "")
	if _, err := alice.AddComment(ctx, r1.Key, "hello", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddAttachment(ctx, r1.Key, "a.txt", []byte("bytes")); err != nil {
		t.Fatal(err)
	}
	if err := alice.CreateLink(ctx, "Blocks", r1.Key, r2.Key); err != nil {
		t.Fatal(err)
	}
	w.settle()
	b1, b2 := w.a.peerKey(t, r1.Key), w.a.peerKey(t, r2.Key)
	cms, err := w.beta.Sync.Comments(ctx, b1)
	if err != nil || len(cms) != 1 || cms[0].Body != "Alice Smith (Partner Jira):\nhello" {
		t.Errorf("beta comments %+v, %v", cms, err)
	}
	as, err := w.beta.Sync.Attachments(ctx, b1)
	if err != nil || len(as) != 1 || as[0].Filename != "a.txt" {
		t.Errorf("beta attachments %+v, %v", as, err)
	}
	ls, err := w.beta.Sync.IssueLinks(ctx, b1)
	var got []string
	for _, l := range ls {
		if l.OutwardIssue != nil {
			got = append(got, l.Type.Name+">"+l.OutwardIssue.Key)
		}
	}
	sort.Strings(got)
	if err != nil || strings.Join(got, ",") != "Blocks>"+b2 {
		t.Errorf("beta links %q, %v", got, err)
	}
	if w.sentBA[wire.CommentAdd]+w.sentBA[wire.AttachmentAdd]+w.sentBA[wire.LinkAdd] != 0 {
		t.Errorf("beta echoed %v", w.sentBA)
	}
}

func TestEnginePermissionCheckRefusesOnlyTheFeatureMissingOne(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	if err := w.beta.Sim.SetPermission("BETA", "MANAGE_WATCHERS"); err != nil {
		t.Fatal(err)
	}
	w.b.checkPerms = true
	withContent(t, w)
	ctx := context.Background()
	alice := person(t, w.alpha, 0)
	r := newIssue(t, alice, "ALPHA", "Bug", "perms", "")
	if _, err := alice.AddComment(ctx, r.Key, "still synced", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.alpha.Client(t, "admin").AddWatcher(ctx, r.Key, "bob"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if got := w.b.node.Refused(); strings.Join(got, ",") != "watchers" {
		t.Errorf("refused %v, want [watchers]", got)
	}
	bk := w.a.peerKey(t, r.Key)
	cms, err := w.beta.Sync.Comments(ctx, bk)
	if err != nil || len(cms) != 1 {
		t.Errorf("comments on beta %+v, %v; want the one comment", cms, err)
	}
	var fs []store.Failure
	_ = w.b.st.View(ctx, func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(syncID, 100, store.FailureOpen)
		return err
	})
	if len(fs) == 0 {
		t.Fatal("no watcher change parked")
	}
	for _, f := range fs {
		if !strings.HasPrefix(f.Kind, "watcher.") || !strings.Contains(f.ErrorText, "MANAGE_WATCHERS") {
			t.Errorf("parked %s (%s): %s", f.ChangeID, f.Kind, f.ErrorText)
		}
	}
	ws, err := w.beta.Sync.Watchers(ctx, bk)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ws {
		if u.Name == "bjones" {
			t.Error("bjones watches on beta although watchers are refused")
		}
	}
}

func TestEnginePermissionCheckRefusesTheSyncWithoutCoreOnes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	if err := w.beta.Sim.SetPermission("BETA", "CREATE_ISSUES"); err != nil {
		t.Fatal(err)
	}
	w.b.checkPerms = true
	w.b.restart()
	ctx := context.Background()
	newIssue(t, person(t, w.alpha, 0), "ALPHA", "Bug", "blocked", "")
	if _, err := w.a.node.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := engineLoopback(w.a, w.b); err != nil {
		t.Fatal(err)
	}
	w.beta.Sim.ResetCounters()
	_, err := w.b.node.Step(ctx)
	var pe *perms.Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "CREATE_ISSUES") {
		t.Fatalf("step = %v, want the permission refusal", err)
	}
	calls := 0
	for _, n := range w.beta.Sim.RouteCounters() {
		calls += n
	}
	if calls != 1 {
		t.Errorf("%d calls to beta's Jira, want 1 (the check): %v", calls, w.beta.Sim.RouteCounters())
	}
	// Granted again: the next step starts the sync.
	if err := w.beta.Sim.SetPermission("BETA", "CREATE_ISSUES", "loggedin"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if n := issueCount(t, w.beta); n != 1 {
		t.Errorf("%d issues on beta, want 1", n)
	}
}
