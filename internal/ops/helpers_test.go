package ops

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
	"github.com/jirabridge/jirabridge/transport/mailtest"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
)

// clock is a settable clock shared by the store and ops.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testSync = "s-ops"

func openStore(t *testing.T, c *clock) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), store.FileName), &store.Options{Now: c.Now, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.SyncPut(store.Sync{ID: testSync, Name: "ops-demo", Role: store.RoleMaster, ProjectKey: "OPS",
			SyncUser: "bridge", Transport: "smtp+imap", State: store.StateRunning, SelfNode: "node-a", PeerNode: "node-b"})
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// fakeJira is an Applier standing in for Jira behind the apply seam: it
// fails with the error set, or applies (records the change id).
type fakeJira struct {
	mu      sync.Mutex
	err     error
	applied []string
}

func (f *fakeJira) Apply(_ context.Context, c wire.Change) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.applied = append(f.applied, c.ID)
	return nil
}

func (f *fakeJira) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeJira) Applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.applied...)
}

// screenError is what Jira says for a field missing from the edit screen.
var screenError = errclass.New(errclass.Permanent, "jira_400",
	errorString(`jira 400: {"errors":{"customfield_10042":"Field 'customfield_10042' cannot be set. It is not on the appropriate screen, or unknown."}}`))

type errorString string

func (e errorString) Error() string { return string(e) }

func newReplayer(t *testing.T, st *store.Store, c *clock, jira *fakeJira) *replay.Replayer {
	t.Helper()
	r, err := replay.New(replay.Options{Store: st, SyncID: testSync, Applier: jira, Workers: 1,
		BackOff: func(int) time.Duration { return 0 }, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func enqueue(t *testing.T, st *store.Store, ch wire.Change) {
	t.Helper()
	raw, err := json.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		_, _, err := tx.ReplayEnqueue(testSync, ch.IssueID, ch.ID, raw)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// parkChange runs a real replay round that parks a change of OPS-7 (Jira
// refuses a field not on the edit screen) whose field value is personal
// data the alerts must not show.
func parkChange(t *testing.T, st *store.Store, c *clock, jira *fakeJira) (*replay.Replayer, int64) {
	t.Helper()
	ctx := context.Background()
	r := newReplayer(t, st, c, jira)
	ch := wire.Change{ID: "node-b/42", IssueID: "10007", IssueKey: "OPS-7", Kind: wire.ChangeKind("issue.update"), At: c.Now(),
		Fields: map[string]wire.FieldChange{"salary": {After: wire.StringValue("SECRET-SALARY-99")}}}
	enqueue(t, st, ch)
	jira.set(screenError)
	res, err := r.Round(ctx)
	if err != nil || res.Parked != 1 {
		t.Fatalf("replay round = %+v, %v; want one parked change", res, err)
	}
	var f store.Failure
	if err := st.View(ctx, func(tx *store.Tx) error {
		f, err = tx.FailureByChange(testSync, ch.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return r, f.ID
}

// hook collects webhook payloads.
type hook struct {
	mu   sync.Mutex
	msgs []WebhookMessage
	srv  *httptest.Server
	fail bool
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.fail {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		var m WebhookMessage
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body is not JSON: %v: %s", err, b)
		}
		h.msgs = append(h.msgs, m)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// take returns and forgets the alerts received, flattened.
func (h *hook) take() []WebhookAlert {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []WebhookAlert
	for _, m := range h.msgs {
		out = append(out, m.Alerts...)
	}
	h.msgs = nil
	return out
}

// mailEnv is a mail server with an ops mailbox: the in-process mailtest
// always, or the real Postfix + Dovecot stack when JIRABRIDGE_TEST_MAILSTACK
// is set (see scripts/mailstack.sh).
type mailEnv struct {
	srv    *mailtest.Server
	mailer *SMTPMailer
	to     string
	count  func() int
	mails  func() [][]byte
}

func newMailEnv(t *testing.T) *mailEnv {
	t.Helper()
	s, err := mailtest.Start(mailtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddUser("ops", "ops-pw"); err != nil {
		t.Fatal(err)
	}
	host, port := splitHostPort(t, s.SMTPAddr())
	to := s.Address("ops", "")
	m, err := NewSMTPMailer(smtpsend.Options{Host: host, Port: port, TLSMode: smtpsend.TLSPlain,
		From: "Bridge A <bridge-a@" + s.Domain() + ">", To: []string{to}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &mailEnv{srv: s, mailer: m, to: to,
		count: func() int { return s.Delivered("ops") },
		mails: func() [][]byte { return s.Mails("ops", "") }}
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}
