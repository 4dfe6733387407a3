package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

const testToken = "status-token-0123456789"

type site struct {
	srv *httptest.Server
	st  *store.Store
	c   *clock
	ev  *Evaluator
	reg *prometheus.Registry
	m   *metrics.Metrics
}

func newSite(t *testing.T, token string, checks ...Check) *site {
	t.Helper()
	c := newClock()
	st := openStore(t, c)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	ev, err := NewEvaluator(Options{Store: st, Now: c.Now, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(HandlerOptions{Store: st, Gatherer: reg, Checks: checks, Evaluator: ev, Token: token, Now: c.Now,
		JiraURLs: func(string) (string, string) { return "http://jira-a.test", "http://jira-b.test/" }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &site{srv: srv, st: st, c: c, ev: ev, reg: reg, m: m}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	var jiraErr error
	s := newSite(t, "", Check{Name: "jira", Checker: CheckFunc(func(context.Context) error { return jiraErr })})
	c := s.srv.Client()
	if code, body := get(t, c, s.srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz = %d %q", code, body)
	}
	if code, body := get(t, c, s.srv.URL+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("readyz = %d %q", code, body)
	}
	jiraErr = errors.New("401 Unauthorized: the sync user's password is wrong")
	code, body := get(t, c, s.srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "jira: 401 Unauthorized") {
		t.Errorf("readyz with Jira down = %d %q", code, body)
	}
	s.st.Close()
	if code, body := get(t, c, s.srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "store: ") {
		t.Errorf("readyz with the store closed = %d %q", code, body)
	}
}

// TestMetricsAfterRun scrapes /metrics after a run of the replay (metered)
// with an applied change, a parked one retried from the HTTP API after the
// fix, and a temporary failure, and checks the counters match.
func TestMetricsAfterRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClock()
	st := openStore(t, c)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	ev, _ := NewEvaluator(Options{Store: st, Now: c.Now, Metrics: m})
	h, err := NewHandler(HandlerOptions{Store: st, Gatherer: reg, Evaluator: ev, Token: testToken, Metrics: m, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	jira := &scriptedJira{errs: map[string][]error{
		"b/2": {screenError},
		"b/3": {errclass.New(errclass.Temporary, "jira_503", errors.New("jira 503"))},
	}}
	rp, err := replay.New(replay.Options{Store: st, SyncID: testSync, Applier: MeterApplier(jira, m), Workers: 1,
		BackOff: func(int) time.Duration { return 0 }, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"b/1", "b/2", "b/3"} {
		enqueue(t, st, wire.Change{ID: id, IssueID: strconv.Itoa(100 + i), IssueKey: "OPS-" + strconv.Itoa(i+1), Kind: "issue.update"})
	}
	if _, err := rp.Round(ctx); err != nil {
		t.Fatal(err)
	}
	ev.Evaluate(ctx)
	_, body := get(t, srv.Client(), srv.URL+"/metrics")
	if !strings.Contains(body, `jirabridge_alerts_firing{alert="JirabridgeChangeParked"} 1`) {
		t.Errorf("metrics lack the firing parked alert")
	}
	var f store.Failure
	st.View(ctx, func(tx *store.Tx) error { f, err = tx.FailureByChange(testSync, "b/2"); return err })
	if code, body := post(t, srv.Client(), srv.URL+"/messages/"+int64s(f.ID)+"/retry", nil, map[string]string{TokenHeader: testToken}); code != 200 {
		t.Fatalf("retry = %d %s", code, body)
	}
	if _, err := rp.Round(ctx); err != nil {
		t.Fatal(err)
	}
	ev.Evaluate(ctx)
	_, body = get(t, srv.Client(), srv.URL+"/metrics")
	for _, want := range []string{
		`jirabridge_changes_applied_total{kind="issue.update"} 3`,
		`jirabridge_changes_parked_total{reason="jira_400"} 1`,
		`jirabridge_changes_retried_total{reason="jira_503"} 1`,
		`jirabridge_changes_retried_total{reason="operator"} 1`,
		`jirabridge_alerts_firing{alert="JirabridgeChangeParked"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// scriptedJira fails each change id with its errors in turn, then applies.
type scriptedJira struct {
	mu   sync.Mutex
	errs map[string][]error
}

func (s *scriptedJira) Apply(_ context.Context, c wire.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.errs[c.ID]; len(q) > 0 {
		s.errs[c.ID] = q[1:]
		return q[0]
	}
	return nil
}

func TestStatusPageShowsState(t *testing.T) {
	t.Parallel()
	s := newSite(t, "")
	ctx := context.Background()
	_, id := parkChange(t, s.st, s.c, &fakeJira{})
	s.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PairPut(store.IssuePair{SyncID: testSync, LocalID: "1", LocalKey: "OPS-1", PeerID: "9", PeerKey: "PEER-9"}); err != nil {
			return err
		}
		if _, err := tx.QuarantineAdd(store.Quarantined{SyncID: testSync, TransportRef: "INBOX/3", Reason: "forged"}); err != nil {
			return err
		}
		if _, err := tx.ConflictAdd(store.Conflict{SyncID: testSync, Issue: "OPS-1", Field: "priority", Winner: "peer"}); err != nil {
			return err
		}
		return tx.SyncSetState(testSync, store.StatePaused, "authentication")
	})
	s.ev.Evaluate(ctx)
	code, body := get(t, s.srv.Client(), s.srv.URL+"/")
	if code != 200 {
		t.Fatalf("status page = %d", code)
	}
	for _, want := range []string{
		"PAUSED", "authentication", `href="http://jira-a.test/browse/OPS-1"`, `href="http://jira-b.test/browse/PEER-9"`,
		`id="failure-` + int64s(id) + `"`, "not on the appropriate screen", "forged", "priority",
		"jirabridge messages retry " + int64s(id), "Read-only", "sync paused",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(body, "SECRET-SALARY") || strings.Contains(body, "<script") {
		t.Errorf("status page shows a field value or script")
	}
}

func int64s(n int64) string { return strconv.FormatInt(n, 10) }

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func failureState(t *testing.T, st *store.Store, id int64) store.FailureState {
	t.Helper()
	var f store.Failure
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		f, err = tx.FailureGet(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return f.State
}

// TestActionsNeedTokenAndSameOrigin checks the cross-site protections of
// Retry and Skip.
func TestActionsNeedTokenAndSameOrigin(t *testing.T) {
	t.Parallel()
	s := newSite(t, testToken)
	_, id := parkChange(t, s.st, s.c, &fakeJira{})
	retry := s.srv.URL + "/messages/" + int64s(id) + "/retry"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, http.StatusForbidden},
		{"wrong token", map[string]string{TokenHeader: "guess"}, http.StatusForbidden},
		{"token from another site", map[string]string{TokenHeader: testToken, "Origin": "http://evil.test"}, http.StatusForbidden},
		{"cross-site fetch", map[string]string{TokenHeader: testToken, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign referer", map[string]string{TokenHeader: testToken, "Referer": "http://evil.test/x"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		if code, body := post(t, noRedirect, retry, nil, tt.hdr); code != tt.want {
			t.Errorf("%s: POST retry = %d %q, want %d", tt.name, code, body, tt.want)
		}
	}
	if got := failureState(t, s.st, id); got != store.FailureOpen {
		t.Fatalf("after refused requests the failure is %s, want open", got)
	}
	if code, _ := get(t, noRedirect, retry); code != http.StatusMethodNotAllowed {
		t.Errorf("GET retry = %d, want 405", code)
	}

	// A browser session: sign in, then the form needs the CSRF field.
	jar, _ := cookiejar.New(nil)
	br := &http.Client{Jar: jar, CheckRedirect: noRedirect.CheckRedirect}
	if code, _ := post(t, br, s.srv.URL+"/login", url.Values{TokenField: {"wrong"}}, nil); code != http.StatusSeeOther {
		t.Fatalf("login with a wrong token = %d", code)
	}
	if code, _ := post(t, br, s.srv.URL+"/login", url.Values{TokenField: {testToken}}, map[string]string{"Origin": "http://evil.test"}); code != http.StatusForbidden {
		t.Fatalf("cross-site login = %d, want 403", code)
	}
	if code, _ := post(t, br, s.srv.URL+"/login", url.Values{TokenField: {testToken}}, map[string]string{"Origin": s.srv.URL}); code != http.StatusSeeOther {
		t.Fatalf("login = %d", code)
	}
	u, _ := url.Parse(s.srv.URL)
	var cookie *http.Cookie
	for _, c := range jar.Cookies(u) {
		if c.Name == SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || strings.Contains(cookie.Value, testToken) {
		t.Fatalf("session cookie = %+v, want one that is not the token", cookie)
	}
	if code, _ := post(t, br, retry, nil, nil); code != http.StatusForbidden {
		t.Errorf("session without CSRF field = %d, want 403", code)
	}
	_, page := get(t, br, s.srv.URL+"/")
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 || !strings.Contains(page, `id="retry-`+int64s(id)+`"`) {
		t.Fatalf("signed-in page lacks the Retry form")
	}
	csrf := page[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	if code, _ := post(t, br, retry, url.Values{CSRFField: {csrf}}, map[string]string{"Origin": s.srv.URL}); code != http.StatusSeeOther {
		t.Fatalf("retry with session and CSRF = %d, want 303", code)
	}
	if got := failureState(t, s.st, id); got != store.FailureRetrying {
		t.Fatalf("after Retry the failure is %s, want retrying", got)
	}
	// Skip over the API with the header; retrying a skipped one conflicts.
	skip := s.srv.URL + "/messages/" + int64s(id) + "/skip"
	if code, body := post(t, br, skip, nil, map[string]string{TokenHeader: testToken}); code != 200 || !strings.Contains(body, "skipped") {
		t.Fatalf("skip = %d %q", code, body)
	}
	if code, _ := post(t, noRedirect, retry, nil, map[string]string{"Authorization": "Bearer " + testToken}); code != http.StatusConflict {
		t.Errorf("retry of a skipped message = %d, want 409", code)
	}
	if code, _ := post(t, noRedirect, s.srv.URL+"/messages/999/retry", nil, map[string]string{TokenHeader: testToken}); code != http.StatusNotFound {
		t.Errorf("retry of an unknown message = %d, want 404", code)
	}
}

func TestReadOnlyWithoutToken(t *testing.T) {
	t.Parallel()
	s := newSite(t, "")
	_, id := parkChange(t, s.st, s.c, &fakeJira{})
	code, body := post(t, s.srv.Client(), s.srv.URL+"/messages/"+int64s(id)+"/retry", nil, map[string]string{TokenHeader: ""})
	if code != http.StatusForbidden || !strings.Contains(body, "JIRABRIDGE_STATUS_ACTION_TOKEN") {
		t.Errorf("action without a configured token = %d %q", code, body)
	}
}
