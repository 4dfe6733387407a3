package jirasim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

type hookSink struct {
	mu     sync.Mutex
	events []map[string]any
	paths  []string
}

func newSink(t *testing.T) (*hookSink, *httptest.Server) {
	s := &hookSink{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		s.mu.Lock()
		s.events = append(s.events, m)
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
	}))
	t.Cleanup(hs.Close)
	return s, hs
}

func (s *hookSink) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, e["webhookEvent"].(string))
	}
	return out
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{SyncWebhooks: true})
	sink, hs := newSink(t)
	status, _, b := e.do("POST", "/rest/webhooks/1.0/webhook", "admin", map[string]any{"name": "bridge", "url": hs.URL + "/hook/${issue.key}",
		"events":  []string{"jira:issue_created", "jira:issue_updated", "comment_created", "jira:issue_deleted"},
		"filters": map[string]string{"issue-related-events-section": "project = TEST"}})
	if status != 201 {
		t.Fatalf("register: %d %s", status, b)
	}
	self := mustJSON(t, b)["self"].(string)
	status, _, b = e.do("POST", "/rest/webhooks/1.0/webhook", "bob", map[string]any{"name": "x", "url": hs.URL, "events": []string{"jira:issue_created"}})
	wantJiraError(t, status, 403, b, "", "")
	status, _, b = e.do("POST", "/rest/webhooks/1.0/webhook", "admin", map[string]any{"name": "x", "url": hs.URL, "events": []string{"jira:issue_created"},
		"filters": map[string]string{"issue-related-events-section": "project = = X"}})
	wantJiraError(t, status, 400, b, "", "")

	e.createIssue(e.admin, "hooked")
	e.do("PUT", "/rest/api/2/issue/TEST-1", "alice", map[string]any{"fields": map[string]any{"summary": "changed"}})
	e.do("POST", "/rest/api/2/issue/TEST-1/comment", "alice", map[string]any{"body": "hi"})
	if _, err := e.admin.Issue.DoTransition("TEST-1", "31"); err != nil {
		t.Fatal(err)
	}
	got := sink.names()
	want := []string{"jira:issue_created", "jira:issue_updated", "jira:issue_updated", "comment_created", "jira:issue_updated"}
	if len(got) != len(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %s, want %s", i, got[i], want[i])
		}
	}
	sink.mu.Lock()
	upd := sink.events[1]
	if sink.paths[0] != "/hook/TEST-1" {
		t.Errorf("url variables: %s", sink.paths[0])
	}
	sink.mu.Unlock()
	if upd["issue_event_type_name"] != "issue_generic" || upd["user"].(map[string]any)["name"] != "alice" ||
		upd["issue"].(map[string]any)["key"] != "TEST-1" {
		t.Errorf("issue_updated payload = %v", upd)
	}
	items := upd["changelog"].(map[string]any)["items"].([]any)
	if items[0].(map[string]any)["field"] != "summary" {
		t.Errorf("changelog items = %v", items)
	}
	if _, ok := upd["timestamp"].(float64); !ok {
		t.Errorf("timestamp = %v", upd["timestamp"])
	}
	sink.mu.Lock()
	ic, cc := sink.events[2], sink.events[3]
	sink.mu.Unlock()
	if cc["comment"].(map[string]any)["body"] != "hi" || cc["issue"].(map[string]any)["key"] != "TEST-1" {
		t.Errorf("comment_created = %v", cc)
	}
	if ic["issue_event_type_name"] != "issue_commented" || ic["comment"].(map[string]any)["body"] != "hi" {
		t.Errorf("issue_commented = %v", ic)
	}
	// The JQL filter keeps other projects out.
	_ = e.srv.CreateProject(jirasim.ProjectSpec{Key: "OTHER", Name: "Other"})
	if _, _, err := e.admin.Issue.Create(&jira.Issue{Fields: &jira.IssueFields{Project: jira.Project{Key: "OTHER"}, Type: jira.IssueType{Name: "Task"}, Summary: "o"}}); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.names()); n != 5 {
		t.Errorf("OTHER issue fired a webhook: %v", sink.names())
	}
	// List, get, delete.
	_, _, b = e.do("GET", "/rest/webhooks/1.0/webhook", "admin", nil)
	var list []any
	_ = json.Unmarshal(b, &list)
	if len(list) != 1 {
		t.Errorf("webhooks = %s", b)
	}
	req, _ := http.NewRequest("DELETE", self, nil)
	req.SetBasicAuth("admin", "admin")
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("delete webhook = %d", resp.StatusCode)
	}
	e.createIssue(e.admin, "silent")
	if n := len(sink.names()); n != 5 {
		t.Errorf("deleted webhook still fires: %v", sink.names())
	}
}

func TestWebhooksAsync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	sink, hs := newSink(t)
	e.do("POST", "/rest/webhooks/1.0/webhook", "admin", map[string]any{"name": "a", "url": hs.URL, "events": []string{"jira:issue_created"}})
	e.createIssue(e.admin, "async")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sink.names(); len(got) != 1 {
		t.Errorf("events = %v", got)
	}
}

func TestWebhookDeliverFunc(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var urls []string
	e := newEnv(t, jirasim.Options{SyncWebhooks: true, DeliverWebhook: func(_ context.Context, url string, body []byte) error {
		mu.Lock()
		defer mu.Unlock()
		urls = append(urls, url)
		return nil
	}})
	e.do("POST", "/rest/webhooks/1.0/webhook", "admin", map[string]any{"name": "a", "url": "http://peer.invalid/h?key=${issue.key}", "events": []string{"jira:issue_created"}})
	e.createIssue(e.admin, "direct")
	mu.Lock()
	defer mu.Unlock()
	if len(urls) != 1 || urls[0] != "http://peer.invalid/h?key=TEST-1" {
		t.Errorf("delivered to %v", urls)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "f")
	e.srv.ResetCounters()
	id := e.srv.AddFault(jirasim.Fault{Method: "GET", Path: "/rest/api/2/issue/*", Status: 429, RetryAfter: 7, Times: 1})
	_, resp, err := e.admin.Issue.Get("TEST-1", nil)
	if err == nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("X-RateLimit-Remaining") != "0" ||
		resp.Header.Get("X-RateLimit-Limit") == "" {
		t.Fatalf("429 fault: %v %v", resp.StatusCode, resp.Header)
	}
	if _, _, err := e.admin.Issue.Get("TEST-1", nil); err != nil {
		t.Errorf("fault with Times=1 hit twice: %v", err)
	}
	e.srv.RemoveFault(id)
	// 503 through the admin endpoint, for all paths under /rest/api/2/.
	status, _, b := e.do("POST", "/_jirasim/faults", "admin", map[string]any{"path": "/rest/api/2/**", "status": 503, "retryAfter": 2})
	if status != 201 {
		t.Fatalf("add fault over HTTP: %d %s", status, b)
	}
	status, hdr, b := e.do("GET", "/rest/api/2/search?jql=", "admin", nil)
	wantJiraError(t, status, 503, b, "", "")
	if hdr.Get("Retry-After") != "2" {
		t.Errorf("503 Retry-After = %q", hdr.Get("Retry-After"))
	}
	if status, _, _ := e.do("DELETE", "/_jirasim/faults", "admin", nil); status != 204 {
		t.Errorf("clear faults = %d", status)
	}
	// 500 on one path only.
	e.srv.AddFault(jirasim.Fault{Method: "PUT", Path: "/rest/api/2/issue/TEST-1", Status: 500})
	status, _, b = e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{"summary": "x"}})
	wantJiraError(t, status, 500, b, "", "")
	if status, _, _ := e.do("GET", "/rest/api/2/issue/TEST-1", "admin", nil); status != 200 {
		t.Errorf("GET hit the PUT fault: %d", status)
	}
	// Latency only.
	e.srv.ClearFaults()
	e.srv.AddFault(jirasim.Fault{Path: "/rest/api/2/myself", Latency: 30 * time.Millisecond})
	start := time.Now()
	if status, _, _ := e.do("GET", "/rest/api/2/myself", "admin", nil); status != 200 || time.Since(start) < 30*time.Millisecond {
		t.Errorf("latency fault: %d after %v", status, time.Since(start))
	}
	e.srv.ClearFaults()
	// Token bucket: 2 tokens, 1 per second of the injected clock.
	e.srv.SetRateLimit(jirasim.RateLimit{Capacity: 2, FillRate: 1, Interval: time.Second})
	for i := 0; i < 2; i++ {
		if status, hdr, _ := e.do("GET", "/rest/api/2/myself", "bob", nil); status != 200 || hdr.Get("X-RateLimit-Limit") != "2" {
			t.Fatalf("request %d under the limit: %d", i, status)
		}
	}
	status, hdr, b = e.do("GET", "/rest/api/2/myself", "bob", nil)
	wantJiraError(t, status, 429, b, "", "")
	if hdr.Get("Retry-After") != "1" || hdr.Get("X-RateLimit-Remaining") != "0" || hdr.Get("X-RateLimit-FillRate") != "1" {
		t.Errorf("rate limit headers = %v", hdr)
	}
	if status, _, _ := e.do("GET", "/rest/api/2/myself", "alice", nil); status != 200 {
		t.Errorf("alice has her own bucket: %d", status)
	}
	e.clock.Add(time.Second)
	if status, _, _ := e.do("GET", "/rest/api/2/myself", "bob", nil); status != 200 {
		t.Errorf("after refill: %d", status)
	}
	e.srv.SetRateLimit(jirasim.RateLimit{})
	// Counters by path and by route.
	c := e.srv.Counters()
	if c["GET /rest/api/2/issue/TEST-1"] != 3 || c["GET /rest/api/2/myself"] != 6 {
		t.Errorf("counters = %v", c)
	}
	if r := e.srv.RouteCounters(); r["GET /rest/api/2/issue/{key}"] != 3 || r["GET /rest/api/2/myself"] != 6 || r["PUT /rest/api/2/issue/{key}"] != 1 {
		t.Errorf("route counters = %v", r)
	}
	_, _, b = e.do("GET", "/_jirasim/counters", "admin", nil)
	if _, ok := mustJSON(t, b)["routes"]; !ok {
		t.Errorf("counters endpoint = %s", b)
	}
	status, _, b = e.do("GET", "/_jirasim/counters", "bob", nil)
	wantJiraError(t, status, 403, b, "", "")
}

func TestPersistenceAndSnapshot(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	e := newEnv(t, jirasim.Options{StatePath: path})
	e.createIssue(e.admin, "persisted")
	e.do("POST", "/rest/api/2/issue/TEST-1/comment", "alice", map[string]any{"body": "kept"})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if err := e.srv.CreateUser(jirasim.UserSpec{Name: "dave", Password: "d"}); err != nil {
		t.Fatal(err)
	}
	// A new server on the same file has everything (Go API changes too), and ids continue.
	srv2 := jirasim.New(jirasim.Options{StatePath: path, Now: e.clock.Now})
	hs2 := httptest.NewServer(srv2)
	defer hs2.Close()
	c2, _ := jira.NewClient((&jira.BasicAuthTransport{Username: "alice", Password: "pw"}).Client(), hs2.URL)
	is, _, err := c2.Issue.Get("TEST-1", nil)
	if err != nil || is.Fields.Summary != "persisted" || len(is.Fields.Comments.Comments) != 1 {
		t.Fatalf("after restart: %+v %v", is, err)
	}
	cd, _ := jira.NewClient((&jira.BasicAuthTransport{Username: "dave", Password: "d"}).Client(), hs2.URL)
	if u, _, err := cd.User.GetSelf(); err != nil || u.Name != "dave" {
		t.Errorf("user from the Go API lost: %v", err)
	}
	is2, _, err := c2.Issue.Create(&jira.Issue{Fields: &jira.IssueFields{Project: jira.Project{Key: "TEST"}, Type: jira.IssueType{Name: "Task"}, Summary: "next"}})
	if err != nil || is2.Key != "TEST-2" || is2.ID != "10001" {
		t.Errorf("next issue after restart: %+v %v", is2, err)
	}
	// Snapshot and Restore rewind.
	snap, err := e.srv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	e.createIssue(e.admin, "later")
	if err := e.srv.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.do("GET", "/rest/api/2/issue/TEST-2", "admin", nil); status != 404 {
		t.Errorf("after restore TEST-2 = %d, want 404", status)
	}
}

func TestCorruptStateIsKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := jirasim.New(jirasim.Options{StatePath: path})
	if _, err := srv.Snapshot(); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 1 {
		t.Errorf("corrupt state not kept aside: %v", matches)
	}
}

func TestSeed(t *testing.T) {
	t.Parallel()
	srv := jirasim.New(jirasim.Options{})
	err := srv.ApplySeed(jirasim.Seed{
		Users:     []jirasim.UserSpec{{Name: "sync", Password: "s", Groups: []string{"jira-software-users"}}},
		Fields:    []jirasim.FieldSpec{{Name: "Origin", Type: "textfield"}},
		Workflows: []jirasim.Workflow{{Name: "simple", Initial: "Open", Transitions: []jirasim.Transition{{ID: "2", Name: "Close", From: []string{"Open"}, To: "Closed"}}}},
		Projects:  []jirasim.ProjectSpec{{Key: "SEED", Name: "Seeded", Workflow: "simple", Roles: map[string][]string{"Developers": {"sync"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := srv.FieldID("Origin"); !ok || id != "customfield_10000" {
		t.Errorf("FieldID = %q %v", id, ok)
	}
	if err := srv.ApplySeed(jirasim.Seed{Projects: []jirasim.ProjectSpec{{Key: "bad", Name: "x"}}}); err == nil {
		t.Error("bad project key: want an error")
	}
	if err := srv.AddWorkflow(jirasim.Workflow{Name: "w", Initial: "Nope"}); err == nil {
		t.Error("unknown status: want an error")
	}
}
