package jirasim_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func TestCreateGetIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	status, _, b := e.do("POST", "/rest/api/2/issue", "alice", map[string]any{
		"fields": map[string]any{"project": map[string]string{"key": "TEST"}, "issuetype": map[string]string{"name": "Bug"},
			"summary": "Broken", "description": "It broke", "labels": []string{"x", "y"}, "priority": map[string]string{"name": "High"},
			"duedate": "2024-04-01", "assignee": map[string]string{"name": "bob"}},
		"properties": []map[string]any{{"key": "bridge.origin", "value": map[string]any{"change": "c1"}}},
	})
	if status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	created := mustJSON(t, b)
	if created["id"] != "10000" || created["key"] != "TEST-1" || created["self"] != e.hs.URL+"/rest/api/2/issue/10000" {
		t.Errorf("create body = %v", created)
	}
	is, _, err := e.admin.Issue.Get("TEST-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if is.ID != "10000" || is.Fields.Summary != "Broken" || is.Fields.Type.Name != "Bug" || is.Fields.Priority.Name != "High" ||
		is.Fields.Assignee.Name != "bob" || is.Fields.Reporter.Name != "alice" || is.Fields.Creator.Name != "alice" ||
		is.Fields.Status.Name != "To Do" || is.Fields.Status.StatusCategory.Key != "new" || len(is.Fields.Labels) != 2 {
		t.Errorf("issue fields = %+v", is.Fields)
	}
	_, _, raw := e.do("GET", "/rest/api/2/issue/TEST-1", "admin", nil)
	f := mustJSON(t, raw)["fields"].(map[string]any)
	for _, k := range []string{"created", "updated"} {
		if s, _ := f[k].(string); !timeRE.MatchString(s) || s != "2024-03-05T10:00:00.000+0000" {
			t.Errorf("%s = %v, want Jira format 2024-03-05T10:00:00.000+0000", k, f[k])
		}
	}
	if f["duedate"] != "2024-04-01" || f["resolution"] != nil {
		t.Errorf("duedate %v resolution %v", f["duedate"], f["resolution"])
	}
	// The property from the create body is there.
	status, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/properties/bridge.origin", "admin", nil)
	if status != 200 || mustJSON(t, b)["value"].(map[string]any)["change"] != "c1" {
		t.Errorf("property: %d %s", status, b)
	}
	// ?properties= includes entity properties in the issue.
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1?fields=summary&properties=*all", "admin", nil)
	if p, _ := mustJSON(t, b)["properties"].(map[string]any); p["bridge.origin"] == nil {
		t.Errorf("properties=*all: %s", b)
	}
	status, _, b = e.do("POST", "/rest/api/2/search", "admin", map[string]any{"jql": "key = TEST-1", "fields": []string{"summary"}, "properties": []string{"bridge.origin"}})
	if iss := mustJSON(t, b)["issues"].([]any); status != 200 || len(iss) != 1 || iss[0].(map[string]any)["properties"].(map[string]any)["bridge.origin"] == nil {
		t.Errorf("search properties: %d %s", status, b)
	}
	// fields= filter.
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1?fields=summary,labels", "admin", nil)
	if f := mustJSON(t, b)["fields"].(map[string]any); len(f) != 2 {
		t.Errorf("fields=summary,labels gave %v", f)
	}
	// expand=names,renderedFields,transitions.
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1?expand=names,renderedFields,transitions", "admin", nil)
	m := mustJSON(t, b)
	if m["names"].(map[string]any)["summary"] != "Summary" || m["renderedFields"].(map[string]any)["description"] != "<p>It broke</p>" ||
		len(m["transitions"].([]any)) != 2 {
		t.Errorf("expand gave names=%v rendered=%v transitions=%v", m["names"], m["renderedFields"], m["transitions"])
	}
}

func TestIssueErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "one")
	status, _, b := e.do("GET", "/rest/api/2/issue/TEST-99", "admin", nil)
	wantJiraError(t, status, 404, b, "Issue Does Not Exist", "")
	status, _, b = e.do("PUT", "/rest/api/2/issue/NOPE-1", "admin", map[string]any{"fields": map[string]any{"summary": "x"}})
	wantJiraError(t, status, 404, b, "Issue Does Not Exist", "")

	tests := []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"no summary", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "TEST"}, "issuetype": map[string]string{"name": "Task"}}}, 400, "summary"},
		{"bad project", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "ZZZ"}, "issuetype": map[string]string{"name": "Task"}, "summary": "s"}}, 400, "project"},
		{"bad type", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "TEST"}, "issuetype": map[string]string{"name": "Nope"}, "summary": "s"}}, 400, "issuetype"},
		{"subtask without parent", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "TEST"}, "issuetype": map[string]string{"name": "Sub-task"}, "summary": "s"}}, 400, "parent"},
		{"unknown field", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "TEST"}, "issuetype": map[string]string{"name": "Task"}, "summary": "s", "customfield_99999": "x"}}, 400, "customfield_99999"},
		{"label with space", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "TEST"}, "issuetype": map[string]string{"name": "Task"}, "summary": "s", "labels": []string{"a b"}}}, 400, "labels"},
		{"reporter without permission", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "TEST"}, "issuetype": map[string]string{"name": "Task"}, "summary": "s", "reporter": map[string]string{"name": "bob"}}}, 400, "reporter"},
	}
	for _, tc := range tests {
		status, _, b := e.do("POST", "/rest/api/2/issue", "alice", tc.body)
		t.Run(tc.name, func(t *testing.T) { wantJiraError(t, status, tc.status, b, "", tc.field) })
	}
	// JSON resources want application/json, as Jersey does.
	req, _ := http.NewRequest("PUT", e.hs.URL+"/rest/api/2/issue/TEST-1", strings.NewReader(`{"fields":{"summary":"x"}}`))
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("text/plain body = %d, want 415", resp.StatusCode)
	}
	// Not on the edit screen: 400 with Jira's text.
	if err := e.srv.SetScreen("TEST", "summary"); err != nil {
		t.Fatal(err)
	}
	status, _, b = e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{"description": "d"}})
	wantJiraError(t, status, 400, b, "", "description")
	if got := mustJSON(t, b)["errors"].(map[string]any)["description"]; got != "Field 'description' cannot be set. It is not on the appropriate screen, or unknown." {
		t.Errorf("message = %v", got)
	}
}

func TestEditChangelogAndHistoryMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	cf, err := e.srv.CreateField(jirasim.FieldSpec{Name: "Severity", Type: "select", Options: []string{"S1", "S2"}})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := e.srv.CreateField(jirasim.FieldSpec{Name: "Notes", Type: "textarea"})
	e.createIssue(e.admin, "before")
	_, _, b := e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{"labels": []string{"a"}}})
	_ = b
	e.clock.Add(90 * time.Second)
	status, _, b := e.do("PUT", "/rest/api/2/issue/TEST-1", "alice", map[string]any{
		"fields":          map[string]any{"summary": "after", cf: map[string]string{"value": "S2"}, text: "long text"},
		"update":          map[string]any{"labels": []map[string]string{{"add": "b"}, {"remove": "a"}}},
		"historyMetadata": map[string]any{"type": "jirabridge", "description": "synced", "extraData": map[string]string{"change": "c9"}},
	})
	if status != 204 {
		t.Fatalf("edit: %d %s", status, b)
	}
	is, _, err := e.admin.Issue.Get("TEST-1", &jira.GetQueryOptions{Expand: "changelog"})
	if err != nil {
		t.Fatal(err)
	}
	if is.Fields.Summary != "after" || fmt.Sprint(is.Fields.Labels) != "[b]" {
		t.Errorf("fields after edit: %q %v", is.Fields.Summary, is.Fields.Labels)
	}
	if got := time.Time(is.Fields.Updated).UTC(); !got.Equal(time.Date(2024, 3, 5, 10, 1, 30, 0, time.UTC)) {
		t.Errorf("updated = %v", got)
	}
	hs := is.Changelog.Histories
	if len(hs) != 2 {
		t.Fatalf("histories = %d, want 2", len(hs))
	}
	h := hs[1]
	if h.Author.Name != "alice" || h.Id != "10001" {
		t.Errorf("history author %q id %q", h.Author.Name, h.Id)
	}
	got := map[string]jira.ChangelogItems{}
	for _, it := range h.Items {
		got[it.Field] = it
	}
	if it := got["summary"]; it.FromString != "before" || it.ToString != "after" || it.From != nil || it.To != nil || it.FieldType != "jira" {
		t.Errorf("summary item = %+v", it)
	}
	if it := got["labels"]; it.FromString != "a" || it.ToString != "b" {
		t.Errorf("labels item = %+v", it)
	}
	if it := got["Severity"]; it.FieldType != "custom" || it.ToString != "S2" || it.To == nil {
		t.Errorf("Severity item = %+v", it)
	}
	if it := got["Notes"]; it.ToString != "long text" || it.To != nil {
		t.Errorf("Notes item = %+v", it)
	}
	// historyMetadata comes back with the entry.
	_, _, raw := e.do("GET", "/rest/api/2/issue/TEST-1?expand=changelog", "admin", nil)
	hist := mustJSON(t, raw)["changelog"].(map[string]any)["histories"].([]any)[1].(map[string]any)
	md, _ := hist["historyMetadata"].(map[string]any)
	if md["type"] != "jirabridge" || md["extraData"].(map[string]any)["change"] != "c9" {
		t.Errorf("historyMetadata = %v", hist["historyMetadata"])
	}
	if !timeRE.MatchString(hist["created"].(string)) {
		t.Errorf("history created = %v", hist["created"])
	}
	// A no-op edit writes no history.
	e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{"summary": "after"}})
	is, _, _ = e.admin.Issue.Get("TEST-1", &jira.GetQueryOptions{Expand: "changelog"})
	if len(is.Changelog.Histories) != 2 {
		t.Errorf("no-op edit added history: %d", len(is.Changelog.Histories))
	}
	// go-jira's UpdateIssue.
	if _, err := e.admin.Issue.UpdateIssue("TEST-1", map[string]any{"fields": map[string]any{"description": "d"}}); err != nil {
		t.Errorf("UpdateIssue: %v", err)
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "t")
	ts, _, err := e.admin.Issue.GetTransitions("TEST-1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tr := range ts {
		names = append(names, tr.ID+":"+tr.Name)
	}
	_, _, b0 := e.do("GET", "/rest/api/2/issue/TEST-1/transitions", "admin", nil)
	for _, tr := range mustJSON(t, b0)["transitions"].([]any) {
		if _, ok := tr.(map[string]any)["fields"]; ok {
			t.Errorf("fields without expand=transitions.fields: %v", tr)
		}
	}
	if fmt.Sprint(names) != "[11:Start Progress 31:Done]" {
		t.Errorf("transitions from To Do = %v", names)
	}
	_, _, b := e.do("GET", "/rest/api/2/issue/TEST-1/transitions?expand=transitions.fields", "admin", nil)
	trs := mustJSON(t, b)["transitions"].([]any)
	if _, ok := trs[1].(map[string]any)["fields"].(map[string]any)["resolution"]; !ok {
		t.Errorf("Done transition lacks resolution field: %v", trs[1])
	}
	status, _, b := e.do("POST", "/rest/api/2/issue/TEST-1/transitions", "admin", map[string]any{"transition": map[string]string{"id": "41"}})
	wantJiraError(t, status, 400, b, "Transition id '41' is not valid for this issue.", "")
	if _, err := e.admin.Issue.DoTransition("TEST-1", "11"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if _, err := e.admin.Issue.DoTransition("TEST-1", "31"); err != nil {
		t.Fatal(err)
	}
	is, _, _ := e.admin.Issue.Get("TEST-1", &jira.GetQueryOptions{Expand: "changelog"})
	if is.Fields.Status.Name != "Done" || is.Fields.Resolution == nil || is.Fields.Resolution.Name != "Done" {
		t.Errorf("after Done: status %v resolution %v", is.Fields.Status.Name, is.Fields.Resolution)
	}
	last := is.Changelog.Histories[len(is.Changelog.Histories)-1]
	if len(last.Items) != 2 || last.Items[1].Field != "status" || last.Items[1].FromString != "In Progress" || last.Items[0].Field != "resolution" {
		t.Errorf("transition history = %+v", last.Items)
	}
	// Reopen clears the resolution.
	if _, err := e.admin.Issue.DoTransition("TEST-1", "41"); err != nil {
		t.Fatal(err)
	}
	is, _, _ = e.admin.Issue.Get("TEST-1", nil)
	if is.Fields.Resolution != nil || is.Fields.Status.Name != "To Do" {
		t.Errorf("after reopen: %v %v", is.Fields.Status.Name, is.Fields.Resolution)
	}
	// A configurable workflow with a global transition.
	if err := e.srv.AddWorkflow(jirasim.Workflow{Name: "review", Initial: "Open", Transitions: []jirasim.Transition{
		{ID: "5", Name: "Review", From: []string{"Open"}, To: "In Review"},
		{ID: "7", Name: "Close", To: "Closed"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.CreateProject(jirasim.ProjectSpec{Key: "REV", Name: "Review", Workflow: "review"}); err != nil {
		t.Fatal(err)
	}
	rev, _, err := e.admin.Issue.Create(&jira.Issue{Fields: &jira.IssueFields{Project: jira.Project{Key: "REV"}, Type: jira.IssueType{Name: "Task"}, Summary: "r"}})
	if err != nil {
		t.Fatal(err)
	}
	ts, _, _ = e.admin.Issue.GetTransitions(rev.Key)
	if len(ts) != 2 {
		t.Errorf("REV transitions = %+v", ts)
	}
	if _, err := e.admin.Issue.DoTransitionWithPayload(rev.Key, map[string]any{"transition": map[string]string{"id": "7"},
		"fields": map[string]any{"resolution": map[string]string{"name": "Won't Do"}}}); err != nil {
		t.Fatal(err)
	}
	is, _, _ = e.admin.Issue.Get(rev.Key, nil)
	if is.Fields.Status.Name != "Closed" || is.Fields.Resolution.Name != "Won't Do" {
		t.Errorf("REV after close: %v %v", is.Fields.Status.Name, is.Fields.Resolution)
	}
	ts, _, _ = e.admin.Issue.GetTransitions(rev.Key)
	if len(ts) != 0 {
		t.Errorf("from Closed, transitions = %+v, want none (global Close leads here)", ts)
	}
}

func TestIssueProperties(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "p")
	status, _, _ := e.do("PUT", "/rest/api/2/issue/TEST-1/properties/k1", "admin", `{"a":1}`)
	if status != 201 {
		t.Errorf("first PUT = %d, want 201", status)
	}
	status, _, _ = e.do("PUT", "/rest/api/2/issue/TEST-1/properties/k1", "admin", `{"a":2}`)
	if status != 200 {
		t.Errorf("second PUT = %d, want 200", status)
	}
	_, _, b := e.do("GET", "/rest/api/2/issue/TEST-1/properties", "admin", nil)
	keys := mustJSON(t, b)["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["key"] != "k1" {
		t.Errorf("keys = %s", b)
	}
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/properties/k1", "admin", nil)
	if mustJSON(t, b)["value"].(map[string]any)["a"] != 2.0 {
		t.Errorf("value = %s", b)
	}
	if status, _, _ := e.do("DELETE", "/rest/api/2/issue/TEST-1/properties/k1", "admin", nil); status != 204 {
		t.Errorf("DELETE = %d", status)
	}
	status, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/properties/k1", "admin", nil)
	wantJiraError(t, status, 404, b, "The property with key 'k1' does not exist.", "")
}

func TestDeleteIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	lone := e.createIssue(e.admin, "lone")
	if resp, err := e.admin.Issue.Delete(lone.Key); err != nil || resp.StatusCode != 204 {
		t.Fatalf("go-jira delete: %v", err)
	}
	parent := e.createIssue(e.admin, "parent")
	sub, resp, err := e.admin.Issue.Create(&jira.Issue{Fields: &jira.IssueFields{Project: jira.Project{Key: "TEST"},
		Type: jira.IssueType{Name: "Sub-task"}, Summary: "child", Parent: &jira.Parent{Key: parent.Key}}})
	if err != nil {
		t.Fatal(errBody(resp, err))
	}
	got, _, _ := e.admin.Issue.Get(parent.Key, nil)
	if len(got.Fields.Subtasks) != 1 || got.Fields.Subtasks[0].Key != sub.Key {
		t.Errorf("subtasks = %+v", got.Fields.Subtasks)
	}
	status, _, b := e.do("DELETE", "/rest/api/2/issue/"+parent.Key, "admin", nil)
	wantJiraError(t, status, 400, b, "", "")
	// alice is not an administrator: Delete Issues belongs to Administrators.
	status, _, b = e.do("DELETE", "/rest/api/2/issue/"+sub.Key, "alice", nil)
	wantJiraError(t, status, 403, b, "You do not have permission to delete issues in this project.", "")
	if status, _, b := e.do("DELETE", "/rest/api/2/issue/"+parent.Key+"?deleteSubtasks=true", "admin", nil); status != 204 {
		t.Errorf("delete with subtasks = %d %s", status, b)
	}
	for _, k := range []string{parent.Key, sub.Key} {
		if status, _, _ := e.do("GET", "/rest/api/2/issue/"+k, "admin", nil); status != 404 {
			t.Errorf("%s after delete = %d", k, status)
		}
	}
}

func TestSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{MaxResults: 3})
	for i := 1; i <= 5; i++ {
		e.createIssue(e.admin, fmt.Sprintf("issue %d", i))
		e.clock.Add(time.Minute)
	}
	e.do("PUT", "/rest/api/2/issue/TEST-2", "admin", map[string]any{"fields": map[string]any{"labels": []string{"hot"}}})
	issues, resp, err := e.admin.Issue.Search("project = TEST ORDER BY key ASC", &jira.SearchOptions{MaxResults: 2, StartAt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(issues) != 2 || issues[0].Key != "TEST-2" || resp.Total != 5 || resp.StartAt != 1 || resp.MaxResults != 2 {
		t.Errorf("page = %d issues, first %s, total %d", len(issues), issues[0].Key, resp.Total)
	}
	// maxResults is capped.
	_, _, b := e.do("GET", "/rest/api/2/search?jql=&maxResults=100", "admin", nil)
	m := mustJSON(t, b)
	if m["maxResults"] != 3.0 || len(m["issues"].([]any)) != 3 || m["total"] != 5.0 {
		t.Errorf("capped search: maxResults %v issues %d", m["maxResults"], len(m["issues"].([]any)))
	}
	// POST search with expand=changelog.
	status, _, b := e.do("POST", "/rest/api/2/search", "admin", map[string]any{"jql": "labels = hot", "fields": []string{"summary"}, "expand": []string{"changelog"}})
	if status != 200 {
		t.Fatalf("POST search %d %s", status, b)
	}
	m = mustJSON(t, b)
	iss := m["issues"].([]any)
	if len(iss) != 1 || iss[0].(map[string]any)["changelog"].(map[string]any)["total"] != 1.0 {
		t.Errorf("POST search = %s", b)
	}
	// Minute-precision dates; seconds refused with 400.
	q := url.QueryEscape(`updated >= "2024/03/05 10:02" AND updated < "2024-03-05 10:04" ORDER BY updated DESC`)
	_, _, b = e.do("GET", "/rest/api/2/search?fields=summary&jql="+q, "admin", nil)
	m = mustJSON(t, b)
	if m["total"] != 2.0 || m["issues"].([]any)[0].(map[string]any)["key"] != "TEST-4" {
		t.Errorf("date search = %s", b)
	}
	status, _, b = e.do("GET", "/rest/api/2/search?jql="+url.QueryEscape(`updated > "2024/03/05 10:02:01"`), "admin", nil)
	wantJiraError(t, status, 400, b, "", "")
	status, _, b = e.do("GET", "/rest/api/2/search?jql="+url.QueryEscape(`project = TEST AND`), "admin", nil)
	wantJiraError(t, status, 400, b, "", "")
	// Relative dates use the injected clock.
	_, _, b = e.do("GET", "/rest/api/2/search?jql="+url.QueryEscape(`created >= -2m`), "admin", nil)
	if mustJSON(t, b)["total"] != 2.0 {
		t.Errorf("created >= -2m: %s", b)
	}
	// go-jira surfaces a JQL 400 as an error.
	if _, _, err := e.admin.Issue.Search("status = Bogus", nil); err == nil {
		t.Error("unknown status: want an error")
	}
}

func TestAssignee(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "a")
	if _, err := e.admin.Issue.UpdateAssignee("TEST-1", &jira.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	is, _, _ := e.admin.Issue.Get("TEST-1", &jira.GetQueryOptions{Expand: "changelog"})
	if is.Fields.Assignee == nil || is.Fields.Assignee.Name != "alice" {
		t.Fatalf("assignee = %+v", is.Fields.Assignee)
	}
	it := is.Changelog.Histories[0].Items[0]
	if it.Field != "assignee" || it.ToString != "alice Example" || it.To == nil {
		t.Errorf("assignee item = %+v", it)
	}
	status, _, b := e.do("PUT", "/rest/api/2/issue/TEST-1/assignee", "admin", map[string]string{"name": "ghost"})
	wantJiraError(t, status, 400, b, "", "assignee")
}

func TestSearchJQLFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	alice := e.client("alice", "pw")
	for i, typ := range []string{"Bug", "Task", "Bug", "Story"} {
		c := e.admin
		if i%2 == 1 {
			c = alice
		}
		if _, _, err := c.Issue.Create(&jira.Issue{Fields: &jira.IssueFields{Project: jira.Project{Key: "TEST"},
			Type: jira.IssueType{Name: typ}, Summary: fmt.Sprintf("s%d", i)}}); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Minute)
	}
	e.do("PUT", "/rest/api/2/issue/TEST-3/assignee", "admin", map[string]string{"name": "bob"})
	e.admin.Issue.DoTransition("TEST-4", "31")
	keys := func(user, q string) string {
		t.Helper()
		status, _, b := e.do("GET", "/rest/api/2/search?fields=summary&jql="+url.QueryEscape(q), user, nil)
		if status != 200 {
			t.Fatalf("%s: %d %s", q, status, b)
		}
		var out []string
		for _, is := range mustJSON(t, b)["issues"].([]any) {
			out = append(out, is.(map[string]any)["key"].(string))
		}
		return fmt.Sprint(out)
	}
	tests := []struct{ user, q, want string }{
		{"admin", "project = TEST", "[TEST-4 TEST-3 TEST-2 TEST-1]"},
		{"admin", "issuetype = Bug ORDER BY key ASC", "[TEST-1 TEST-3]"},
		{"admin", "issuetype IN (Bug, Story) AND NOT status = Done ORDER BY created DESC", "[TEST-3 TEST-1]"},
		{"admin", "reporter = alice ORDER BY key", "[TEST-2 TEST-4]"},
		{"alice", "creator = currentUser() ORDER BY key", "[TEST-2 TEST-4]"},
		{"admin", "assignee = bob", "[TEST-3]"},
		{"admin", "assignee IS EMPTY ORDER BY key", "[TEST-1 TEST-2 TEST-4]"},
		{"admin", "statusCategory = Done OR resolution = Done", "[TEST-4]"},
		{"admin", "issuetype = Bug OR reporter = alice ORDER BY issuetype ASC, key DESC", "[TEST-3 TEST-1 TEST-4 TEST-2]"},
		{"admin", `key > TEST-2 AND created < "2024/03/05 10:03"`, "[TEST-3]"},
	}
	for _, tc := range tests {
		if got := keys(tc.user, tc.q); got != tc.want {
			t.Errorf("%s (as %s) = %s, want %s", tc.q, tc.user, got, tc.want)
		}
	}
	status, _, b := e.do("GET", "/rest/api/2/search?jql="+url.QueryEscape("project = NOPE"), "admin", nil)
	wantJiraError(t, status, 400, b, "", "")
	status, _, b = e.do("GET", "/rest/api/2/search?jql="+url.QueryEscape("foo = bar"), "admin", nil)
	wantJiraError(t, status, 400, b, "", "")
}
