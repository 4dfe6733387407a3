package jirasim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

// clock is a controllable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	srv   *jirasim.Server
	hs    *httptest.Server
	clock *clock
	admin *jira.Client
}

// newEnv starts a jirasim with project TEST and users alice (developer)
// and bob (plain user), both with password "pw".
func newEnv(t *testing.T, opts jirasim.Options) *env {
	t.Helper()
	clk := &clock{t: time.Date(2024, 3, 5, 10, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	srv := jirasim.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e := &env{t: t, srv: srv, hs: hs, clock: clk}
	e.admin = e.client("admin", "admin")
	for _, u := range []string{"alice", "bob"} {
		if err := srv.CreateUser(jirasim.UserSpec{Name: u, Password: "pw", DisplayName: u + " Example"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.CreateProject(jirasim.ProjectSpec{Key: "TEST", Name: "Test", Roles: map[string][]string{"Developers": {"alice"}}}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) client(user, pass string) *jira.Client {
	e.t.Helper()
	tp := jira.BasicAuthTransport{Username: user, Password: pass}
	c, err := jira.NewClient(tp.Client(), e.hs.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// do sends a raw request as user:pass (empty user: anonymous) and returns
// status, headers and body.
func (e *env) do(method, path, user string, body any) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.hs.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		pw := "pw"
		if user == "admin" {
			pw = "admin"
		}
		req.SetBasicAuth(user, pw)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// mustJSON decodes b into a generic value or fails.
func mustJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// wantJiraError checks Jira's error body: both keys present.
func wantJiraError(t *testing.T, status, wantStatus int, b []byte, wantMsg, wantField string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status = %d, want %d (body %s)", status, wantStatus, b)
	}
	m := mustJSON(t, b)
	msgs, ok1 := m["errorMessages"].([]any)
	errs, ok2 := m["errors"].(map[string]any)
	if !ok1 || !ok2 {
		t.Fatalf("error body %s lacks errorMessages or errors", b)
	}
	if wantMsg != "" {
		found := false
		for _, x := range msgs {
			found = found || x == wantMsg
		}
		if !found {
			t.Errorf("errorMessages = %v, want %q", msgs, wantMsg)
		}
	}
	if wantField != "" {
		if _, ok := errs[wantField]; !ok {
			t.Errorf("errors = %v, want key %q", errs, wantField)
		}
	}
}

var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$`)

func (e *env) createIssue(c *jira.Client, summary string) *jira.Issue {
	e.t.Helper()
	is, resp, err := c.Issue.Create(&jira.Issue{Fields: &jira.IssueFields{
		Project: jira.Project{Key: "TEST"}, Type: jira.IssueType{Name: "Task"}, Summary: summary}})
	if err != nil {
		e.t.Fatalf("create issue: %v", errBody(resp, err))
	}
	return is
}

func errBody(resp *jira.Response, err error) string {
	if resp == nil {
		return err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	return err.Error() + ": " + string(b)
}
