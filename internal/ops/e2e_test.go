package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/engine/enginetest"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/store"
)

const e2eSync = "partner"

// bridges is two real engine nodes over two jirasims (internal/engine's
// enginetest pair), linked by engine.Loopback. Ops watches beta.
type bridges struct {
	t            testing.TB
	clk          *enginetest.Clock
	alpha, beta  *enginetest.Site
	stA, stB     *store.Store
	a, b         *engine.Node
	betaJira     *jira.Client
	dirA, dirB   string
	alice        *jira.Client
	personalData string // a value people type, which ops must never show
}

func newBridges(t testing.TB) *bridges {
	t.Helper()
	clk := enginetest.NewClock(time.Millisecond)
	alpha, beta := enginetest.NewPair(t, clk)
	dir := t.TempDir()
	w := &bridges{t: t, clk: clk, alpha: alpha, beta: beta, betaJira: beta.Sync,
		dirA: filepath.Join(dir, "alpha"), dirB: filepath.Join(dir, "beta"), alice: alpha.Client(t, alpha.People[0])}
	w.stA, w.a = w.start(alpha, beta, store.RoleMaster, w.dirA, alpha.Sync)
	w.stB, w.b = w.start(beta, alpha, store.RoleSlave, w.dirB, beta.Sync)
	t.Cleanup(func() { w.stA.Close(); w.stB.Close() })
	return w
}

func (w *bridges) start(site, peer *enginetest.Site, role store.Role, dir string, jc *jira.Client) (*store.Store, *engine.Node) {
	w.t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, store.FileName), &store.Options{Now: w.clk.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		if _, err := tx.SyncGet(e2eSync); err == nil {
			return nil
		}
		return tx.SyncPut(store.Sync{ID: e2eSync, Name: "partner", Role: role, ProjectKey: site.Project,
			SyncUser: enginetest.SyncUser, Transport: "loopback", State: store.StateRunning, SelfNode: site.Name, PeerNode: peer.Name})
	}); err != nil {
		w.t.Fatal(err)
	}
	return st, w.node(st, site, peer, role, jc)
}

func (w *bridges) node(st *store.Store, site, peer *enginetest.Site, role store.Role, jc *jira.Client) *engine.Node {
	w.t.Helper()
	n, err := engine.NewNode(engine.Config{Store: st, Jira: jc, Mapping: site.Mapping, SyncID: e2eSync,
		Node: site.Name, Role: role, SyncUser: enginetest.SyncUser, PeerURL: peer.URL, Workers: 1,
		BackOff: func(int) time.Duration { return 0 }, Location: time.UTC, Now: w.clk.Now})
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

// setBetaJira rebuilds beta's node with another Jira client, as a restart
// with changed credentials does.
func (w *bridges) setBetaJira(jc *jira.Client) {
	w.betaJira = jc
	w.b = w.node(w.stB, w.beta, w.alpha, store.RoleSlave, jc)
}

// settle steps both nodes and moves changes both ways until nothing moves.
func (w *bridges) settle() {
	w.t.Helper()
	ctx := context.Background()
	for round := 0; round < 100; round++ {
		moved := 0
		for _, n := range []*engine.Node{w.a, w.b} {
			r, err := n.Step(ctx)
			if err != nil {
				w.t.Fatalf("step: %v", err)
			}
			if r.Moved() {
				moved++
			}
		}
		for _, pair := range [][2]*engine.Node{{w.a, w.b}, {w.b, w.a}} {
			n, err := engine.Loopback(ctx, pair[0], pair[1])
			if err != nil {
				w.t.Fatal(err)
			}
			moved += n
		}
		if moved == 0 {
			return
		}
	}
	w.t.Fatal(errors.New("still moving after 100 rounds"))
}

func (w *bridges) createTask(summary string) jira.Ref {
	w.t.Helper()
	ref, err := w.alice.CreateIssue(context.Background(), map[string]any{
		"project": map[string]string{"key": w.alpha.Project}, "issuetype": map[string]string{"name": "Task"}, "summary": summary}, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return ref
}

// parkOnScreen makes beta refuse Partner Reference (not on its edit screen)
// and has alice set Customer Ref (its alias on alpha) on ref: beta parks
// the change. It returns the open failure.
func (w *bridges) parkOnScreen(ref jira.Ref) store.Failure {
	w.t.Helper()
	ctx := context.Background()
	onScreen := []string{"summary", "description", "priority", "labels", "duedate", "assignee", "reporter"}
	for name, id := range w.beta.Field {
		if name != "Partner Reference" {
			onScreen = append(onScreen, id)
		}
	}
	if err := w.beta.Sim.SetScreen(w.beta.Project, onScreen...); err != nil {
		w.t.Fatal(err)
	}
	w.personalData = "CUSTOMER-REF-4711"
	if err := w.alice.EditIssue(ctx, ref.Key, map[string]any{w.alpha.Field["Customer Ref"]: w.personalData}, nil, nil); err != nil {
		w.t.Fatal(err)
	}
	w.settle()
	var fs []store.Failure
	if err := w.stB.View(ctx, func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(e2eSync, 10, store.FailureOpen)
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
	if len(fs) != 1 {
		w.t.Fatalf("beta failures = %+v, want one parked change", fs)
	}
	return fs[0]
}

// fixScreen puts every field back on beta's screen.
func (w *bridges) fixScreen() {
	w.t.Helper()
	if err := w.beta.Sim.SetScreen(w.beta.Project); err != nil {
		w.t.Fatal(err)
	}
}

// betaPartnerRef reads Partner Reference of beta's peer issue of ref.
func (w *bridges) betaPartnerRef(ref jira.Ref) string {
	w.t.Helper()
	ctx := context.Background()
	var p store.IssuePair
	if err := w.stA.View(ctx, func(tx *store.Tx) error {
		var err error
		p, err = tx.PairByLocal(e2eSync, ref.ID)
		return err
	}); err != nil {
		w.t.Fatalf("no pair for %s: %v", ref.Key, err)
	}
	is, err := w.beta.Sync.GetIssue(ctx, p.PeerKey, nil, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	var v string
	if _, err := is.Field(w.beta.Field["Partner Reference"], &v); err != nil {
		w.t.Fatal(err)
	}
	return v
}

// TestEndToEndAlerts makes the conditions happen in real bridges over two
// Jiras: a field not on the peer's edit screen parks a change (retried over
// the HTTP API after the fix), and a wrong password pauses the sync. Each
// alert reaches the ops mailbox and the webhook once, then resolves.
func TestEndToEndAlerts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newBridges(t)
	me := newMailEnv(t)
	hk := newHook(t)
	mn, _ := NewMailNotifier(MailOptions{Mailer: me.mailer, To: []string{me.to}, MinInterval: -1, Now: w.clk.Now})
	wn, _ := NewWebhookNotifier(WebhookOptions{URL: hk.srv.URL})
	ev, err := NewEvaluator(Options{Store: w.stB, Now: w.clk.Now, Notifiers: []Notifier{mn, wn}})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := NewHandler(HandlerOptions{Store: w.stB, Evaluator: ev, Token: testToken, Now: w.clk.Now})
	eval := func() {
		t.Helper()
		if _, err := ev.Evaluate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(mails int, name, status string) string {
		t.Helper()
		if got := me.count(); got != mails {
			t.Fatalf("ops mailbox has %d mails, want %d", got, mails)
		}
		got := hk.take()
		if name == "" {
			if len(got) != 0 {
				t.Fatalf("webhook got %+v, want nothing", got)
			}
			return ""
		}
		if len(got) != 1 || got[0].Labels["alertname"] != name || got[0].Status != status {
			t.Fatalf("webhook got %+v, want one %s %s", got, name, status)
		}
		all := me.mails()
		return unfold(string(all[len(all)-1]))
	}

	ref := w.createTask("synced issue")
	w.settle()
	eval()
	expect(0, "", "")

	// A field not on the edit screen on the peer.
	f := w.parkOnScreen(ref)
	eval()
	text := expect(1, AlertChangeParked, StatusFiring)
	if f.IssueKey == "" {
		t.Fatalf("failure record names no issue: %+v", f)
	}
	// The failure names the issue as this side knows it (the local copy's key).
	for _, want := range []string{f.IssueKey, "cannot be set", fmt.Sprintf("jirabridge messages retry %d", f.ID), "edit (or create) screen"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert mail lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, w.personalData) {
		t.Errorf("alert mail shows the field value %q", w.personalData)
	}
	eval()
	expect(1, "", "")
	w.fixScreen()
	if rec := apiAction(t, h, fmt.Sprintf("/messages/%d/retry", f.ID)); rec != http.StatusOK {
		t.Fatalf("retry over HTTP = %d", rec)
	}
	w.settle()
	if got := w.betaPartnerRef(ref); got != w.personalData {
		t.Fatalf("beta Partner Reference = %q after the retry, want %q", got, w.personalData)
	}
	eval()
	expect(2, AlertChangeParked, StatusResolved)

	// A wrong password pauses beta after one call.
	bad, err := jira.New(jira.Options{BaseURL: w.beta.URL, Username: enginetest.SyncUser, Password: "expired"})
	if err != nil {
		t.Fatal(err)
	}
	w.setBetaJira(bad)
	if err := w.alice.EditIssue(ctx, ref.Key, map[string]any{"summary": "changed while beta is locked out"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	eval()
	text = expect(3, AlertSyncPaused, StatusFiring)
	if !strings.Contains(text, "PAUSED (authentication)") {
		t.Errorf("pause mail:\n%s", text)
	}
	eval()
	expect(3, "", "")
	w.setBetaJira(w.beta.Sync)
	if err := w.b.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	w.settle()
	eval()
	expect(4, AlertSyncPaused, StatusResolved)
}

// apiAction sends an action to h with the token header, as a script
// would, and returns the status code.
func apiAction(t *testing.T, h http.Handler, path string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, nil)
	req.Header.Set(TokenHeader, testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestJiraChecker: valid credentials are ready; a wrong password is not
// ready, and later probes make no further call to Jira.
func TestJiraChecker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := enginetest.NewClock(time.Millisecond)
	_, beta := enginetest.NewPair(t, clk)
	if err := JiraChecker(beta.Sync, time.Hour).Check(ctx); err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	bad, err := jira.New(jira.Options{BaseURL: beta.URL, Username: enginetest.SyncUser, Password: "expired"})
	if err != nil {
		t.Fatal(err)
	}
	total := func() int {
		n := 0
		for _, v := range beta.Sim.Counters() {
			n += v
		}
		return n
	}
	ck := JiraChecker(bad, time.Nanosecond)
	before := total()
	for range 5 {
		if err := ck.Check(ctx); err == nil || !strings.Contains(err.Error(), "refused the sync user's credentials") {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if got := total() - before; got != 1 {
		t.Errorf("five probes made %d Jira calls, want 1", got)
	}
}
