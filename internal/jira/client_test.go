package jira

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jirabridge/jirabridge/internal/errclass"
)

func TestBasicAndBearerAuth(t *testing.T) {
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"sync","displayName":"Sync User"}`)
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name string
		opts Options
		want string
	}{
		{"basic", Options{BaseURL: srv.URL, Username: "sync", Password: "pw"}, "Basic c3luYzpwdw=="},
		{"bearer", Options{BaseURL: srv.URL, Username: "sync", Token: "tok"}, "Bearer tok"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			u, err := c.Myself(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if u.Name != "sync" {
				t.Errorf("name = %q", u.Name)
			}
			if got := gotAuth.Load().(string); got != tt.want {
				t.Errorf("Authorization = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "not a url", "http://"} {
		if _, err := New(Options{BaseURL: u}); err == nil || !strings.Contains(err.Error(), "JIRABRIDGE_JIRA_BASE_URL") {
			t.Errorf("New(%q) error = %v, want one naming JIRABRIDGE_JIRA_BASE_URL", u, err)
		}
	}
}

// Jira may return fewer results than asked for; paging must follow what it
// returned, not what was asked.
func TestSearchAllPagesOnReturnedMaxResults(t *testing.T) {
	const total = 7
	var calls int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt32(&calls, 1)
		var req struct {
			StartAt int `json:"startAt"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		var issues []map[string]any
		for i := req.StartAt; i < total && i < req.StartAt+3; i++ {
			issues = append(issues, map[string]any{"id": string(rune('0' + i)), "key": "P-" + string(rune('0'+i))})
		}
		json.NewEncoder(w).Encode(map[string]any{"startAt": req.StartAt, "maxResults": 3, "total": total, "issues": issues})
	}))
	defer srv.Close()
	c, _ := New(Options{BaseURL: srv.URL})
	var keys []string
	err := c.SearchAll(context.Background(), "project = P", nil, nil, func(is Issue) error {
		keys = append(keys, is.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != total || calls != 3 {
		t.Errorf("got %d issues in %d calls, want %d in 3", len(keys), calls, total)
	}
}

func TestErrorsAreClassifiedAndCounted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/rest/api/2/myself":
			w.Header().Set("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")
			w.WriteHeader(401)
		case "/rest/api/2/issue/P-1":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{not json`)
		}
	}))
	defer srv.Close()
	var calls []Call
	c, _ := New(Options{BaseURL: srv.URL, OnCall: func(c Call) { calls = append(calls, c) }})
	ctx := context.Background()
	if _, err := c.Myself(ctx); errclass.Of(err) != errclass.Pause {
		t.Errorf("401: class %v, want pause (%v)", errclass.Of(err), err)
	}
	c.ResetAuth() // the latch would refuse every further call
	if _, err := c.GetIssue(ctx, "P-1", nil, nil); errclass.Of(err) != errclass.BackOff || errclass.RetryAfter(err).Seconds() != 3 {
		t.Errorf("429: %v", err)
	}
	if _, err := c.ServerInfo(ctx); errclass.ReasonOf(err) != "jira_bad_answer" {
		t.Errorf("bad JSON: %v", err)
	}
	if len(calls) != 3 || calls[0].Status != 401 || calls[1].Endpoint != "issue/{id}" {
		t.Errorf("calls = %+v", calls)
	}
	srv.Close()
	if _, err := c.Myself(ctx); errclass.Of(err) != errclass.Temporary {
		t.Errorf("closed server: class %v, want temporary (%v)", errclass.Of(err), err)
	}
}

func TestTimeFormat(t *testing.T) {
	var tm Time
	if err := json.Unmarshal([]byte(`"2024-03-05T10:11:12.345+0100"`), &tm); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(tm)
	if string(b) != `"2024-03-05T10:11:12.345+0100"` {
		t.Errorf("round trip = %s", b)
	}
	if err := json.Unmarshal([]byte(`"yesterday"`), &tm); err == nil {
		t.Error("want an error for a malformed time")
	}
}

// Parallel callers with refused credentials make one failed login between
// them, and none after it until ResetAuth: each failure brings the sync user
// closer to Jira's CAPTCHA lock.
func TestAuthLatchMakesOneFailedCall(t *testing.T) {
	var calls, ok atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if ok.Load() == 0 {
			w.Header().Set("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")
			w.WriteHeader(401)
			return
		}
		io.WriteString(w, `{"name":"sync"}`)
	}))
	defer srv.Close()
	c, _ := New(Options{BaseURL: srv.URL, Username: "sync", Password: "wrong"})
	ctx := context.Background()
	errs := make(chan error, 8)
	for range 8 {
		go func() { _, err := c.Myself(ctx); errs <- err }()
	}
	for range 8 {
		if err := <-errs; errclass.Of(err) != errclass.Pause {
			t.Errorf("error = %v, want a pause", err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("Jira saw %d calls, want exactly 1", got)
	}
	if !c.AuthRefused() {
		t.Error("AuthRefused = false after a 401")
	}
	ok.Store(1)
	c.ResetAuth()
	for range 4 {
		go func() { _, err := c.Myself(ctx); errs <- err }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("after ResetAuth: %v", err)
		}
	}
	if got := calls.Load(); got != 5 {
		t.Errorf("Jira saw %d calls in all, want 5", got)
	}
}
