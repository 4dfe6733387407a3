package jirasim_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	jira "github.com/andygrunwald/go-jira"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func TestComments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "c")
	e.clock.Add(5 * time.Minute)
	alice := e.client("alice", "pw")
	cm, resp, err := alice.Issue.AddComment("TEST-1", &jira.Comment{Body: "first"})
	if err != nil {
		t.Fatal(errBody(resp, err))
	}
	if resp.StatusCode != 201 || cm.ID != "10000" || cm.Author.Name != "alice" || cm.UpdateAuthor.Name != "alice" || !timeRE.MatchString(cm.Created) {
		t.Errorf("added comment = %+v (%d)", cm, resp.StatusCode)
	}
	is, _, _ := e.admin.Issue.Get("TEST-1", nil)
	if !time.Time(is.Fields.Updated).Equal(e.clock.Now()) {
		t.Errorf("updated = %v, want the comment time %v", time.Time(is.Fields.Updated), e.clock.Now())
	}
	if len(is.Fields.Comments.Comments) != 1 {
		t.Errorf("comment field = %+v", is.Fields.Comments)
	}
	// properties array in the add body; visibility by role.
	status, _, b := e.do("POST", "/rest/api/2/issue/TEST-1/comment", "alice", map[string]any{"body": "secret",
		"visibility": map[string]string{"type": "role", "value": "Developers"},
		"properties": []map[string]any{{"key": "bridge", "value": map[string]string{"origin": "x1"}}}})
	if status != 201 {
		t.Fatalf("add with visibility: %d %s", status, b)
	}
	secretID := mustJSON(t, b)["id"].(string)
	if v := mustJSON(t, b)["visibility"].(map[string]any); v["type"] != "role" || v["value"] != "Developers" {
		t.Errorf("visibility = %v", v)
	}
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment/"+secretID+"?expand=properties", "alice", nil)
	if ps, _ := mustJSON(t, b)["properties"].([]any); len(ps) != 1 || ps[0].(map[string]any)["key"] != "bridge" {
		t.Errorf("comment expand=properties: %s", b)
	}
	status, _, b = e.do("GET", "/rest/api/2/comment/"+secretID+"/properties/bridge", "alice", nil)
	if status != 200 || mustJSON(t, b)["value"].(map[string]any)["origin"] != "x1" {
		t.Errorf("comment property: %d %s", status, b)
	}
	// bob is not a developer: he does not see it.
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment", "bob", nil)
	if m := mustJSON(t, b); m["total"] != 1.0 {
		t.Errorf("bob sees %v comments", m["total"])
	}
	status, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment/"+secretID, "bob", nil)
	wantJiraError(t, status, 404, b, "", "")
	// bob may not restrict to a role he is not in.
	status, _, b = e.do("POST", "/rest/api/2/issue/TEST-1/comment", "bob", map[string]any{"body": "x", "visibility": map[string]string{"type": "role", "value": "Developers"}})
	wantJiraError(t, status, 400, b, "", "commentLevel")
	status, _, b = e.do("POST", "/rest/api/2/issue/TEST-1/comment", "bob", map[string]any{"body": ""})
	wantJiraError(t, status, 400, b, "", "comment")
	// Pagination.
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment?startAt=1&maxResults=1", "alice", nil)
	if m := mustJSON(t, b); m["total"] != 2.0 || len(m["comments"].([]any)) != 1 || m["comments"].([]any)[0].(map[string]any)["id"] != secretID {
		t.Errorf("paged comments = %s", b)
	}
	// Edit: 200 with the full comment; bob may not edit alice's.
	e.clock.Add(time.Minute)
	cm.Body = "first, edited"
	upd, resp, err := e.admin.Issue.UpdateComment("TEST-1", &jira.Comment{ID: cm.ID, Body: "first, edited"})
	if err != nil || resp.StatusCode != 200 || upd.Body != "first, edited" || upd.UpdateAuthor.Name != "admin" || upd.Author.Name != "alice" {
		t.Errorf("update comment: %+v %v", upd, err)
	}
	status, _, b = e.do("PUT", "/rest/api/2/issue/TEST-1/comment/"+cm.ID, "bob", map[string]any{"body": "hijack"})
	wantJiraError(t, status, 403, b, "", "")
	status, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment/"+cm.ID, "bob", nil)
	if status != 200 || mustJSON(t, b)["updated"] != "2024-03-05T10:06:00.000+0000" {
		t.Errorf("get comment: %d %s", status, b)
	}
	// Comment properties endpoints.
	if status, _, _ := e.do("PUT", "/rest/api/2/comment/"+cm.ID+"/properties/p", "alice", `"v"`); status != 201 {
		t.Errorf("comment prop PUT = %d", status)
	}
	if status, _, _ := e.do("PUT", "/rest/api/2/comment/"+cm.ID+"/properties/p", "alice", `"w"`); status != 200 {
		t.Errorf("comment prop PUT again = %d", status)
	}
	_, _, b = e.do("GET", "/rest/api/2/comment/"+cm.ID+"/properties", "alice", nil)
	if len(mustJSON(t, b)["keys"].([]any)) != 1 {
		t.Errorf("comment prop keys = %s", b)
	}
	if status, _, _ := e.do("DELETE", "/rest/api/2/comment/"+cm.ID+"/properties/p", "alice", nil); status != 204 {
		t.Errorf("comment prop DELETE = %d", status)
	}
	// Delete: bob may not delete alice's; alice may.
	status, _, b = e.do("DELETE", "/rest/api/2/issue/TEST-1/comment/"+cm.ID, "bob", nil)
	wantJiraError(t, status, 403, b, "", "")
	if err := alice.Issue.DeleteComment("TEST-1", cm.ID); err != nil {
		t.Errorf("delete comment: %v", err)
	}
	status, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment/"+cm.ID, "admin", nil)
	wantJiraError(t, status, 404, b, "", "")
	// A comment through edit's update.comment.add.
	e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"update": map[string]any{"comment": []map[string]any{{"add": map[string]string{"body": "via edit"}}}}})
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment", "alice", nil)
	if mustJSON(t, b)["total"] != 2.0 {
		t.Errorf("after update.comment.add: %s", b)
	}
}

func multipartBody(t *testing.T, name string, content []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("file", name)
	_, _ = fw.Write(content)
	_ = w.Close()
	return &buf, w.FormDataContentType()
}

func TestAttachments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{MaxAttachmentSize: 1000})
	e.createIssue(e.admin, "a")
	// go-jira sends the old "nocheck" token.
	atts, resp, err := e.admin.Issue.PostAttachment("TEST-1", strings.NewReader("hello"), "hello.txt")
	if err != nil {
		t.Fatal(errBody(resp, err))
	}
	if resp.StatusCode != 200 || len(*atts) != 1 || (*atts)[0].Filename != "hello.txt" || (*atts)[0].Size != 5 || (*atts)[0].ID != "10000" {
		t.Fatalf("attachments = %+v", atts)
	}
	// Without the XSRF token: 403 plain text.
	body, ct := multipartBody(t, "x.txt", []byte("x"))
	req, _ := http.NewRequest("POST", e.hs.URL+"/rest/api/2/issue/TEST-1/attachments", body)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Content-Type", ct)
	r, _ := http.DefaultClient.Do(req)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 403 || string(b) != "XSRF check failed" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("no token: %d %q %s", r.StatusCode, b, r.Header.Get("Content-Type"))
	}
	// Too large: 413.
	body, ct = multipartBody(t, "big.bin", bytes.Repeat([]byte("x"), 2000))
	req, _ = http.NewRequest("POST", e.hs.URL+"/rest/api/2/issue/TEST-1/attachments", body)
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-Atlassian-Token", "no-check")
	r, _ = http.DefaultClient.Do(req)
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	wantJiraError(t, r.StatusCode, 413, b, "", "")
	// Metadata and content.
	status, _, b := e.do("GET", "/rest/api/2/attachment/10000", "bob", nil)
	m := mustJSON(t, b)
	if status != 200 || m["filename"] != "hello.txt" || m["author"].(map[string]any)["name"] != "admin" || !timeRE.MatchString(m["created"].(string)) {
		t.Errorf("attachment meta %d %s", status, b)
	}
	jr, err := e.admin.Issue.DownloadAttachment("10000")
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	got, _ := io.ReadAll(jr.Body)
	jr.Body.Close()
	if string(got) != "hello" {
		t.Errorf("content = %q", got)
	}
	req = mustReq(t, "GET", m["content"].(string))
	req.SetBasicAuth("bob", "pw")
	r, _ = http.DefaultClient.Do(req)
	got, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || string(got) != "hello" || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("content URL: %d %q %s", r.StatusCode, got, r.Header.Get("Content-Type"))
	}
	// Changelog: Attachment item.
	is, _, _ := e.admin.Issue.Get("TEST-1", &jira.GetQueryOptions{Expand: "changelog"})
	if h := is.Changelog.Histories; len(h) != 1 || h[0].Items[0].Field != "Attachment" || h[0].Items[0].ToString != "hello.txt" {
		t.Errorf("attachment history = %+v", h)
	}
	if len(is.Fields.Attachments) != 1 {
		t.Errorf("attachment field = %+v", is.Fields.Attachments)
	}
	// bob cannot delete admin's attachment; admin can.
	status, _, b = e.do("DELETE", "/rest/api/2/attachment/10000", "bob", nil)
	wantJiraError(t, status, 403, b, "", "")
	if _, err := e.admin.Issue.DeleteAttachment("10000"); err != nil {
		t.Fatal(err)
	}
	status, _, b = e.do("GET", "/rest/api/2/attachment/10000", "admin", nil)
	wantJiraError(t, status, 404, b, "", "")
	is, _, _ = e.admin.Issue.Get("TEST-1", &jira.GetQueryOptions{Expand: "changelog"})
	if h := is.Changelog.Histories; len(h) != 2 || h[1].Items[0].FromString != "hello.txt" {
		t.Errorf("attachment removal history = %+v", h)
	}
}

func mustReq(t *testing.T, method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestWatchers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "w")
	watchers := func() []string {
		_, _, b := e.do("GET", "/rest/api/2/issue/TEST-1/watchers", "admin", nil)
		var out []string
		for _, w := range mustJSON(t, b)["watchers"].([]any) {
			out = append(out, w.(map[string]any)["name"].(string))
		}
		return out
	}
	if got := watchers(); len(got) != 1 || got[0] != "admin" {
		t.Errorf("initial watchers = %v (the reporter watches)", got)
	}
	if _, err := e.admin.Issue.AddWatcher("TEST-1", "bob"); err != nil {
		t.Fatal(err)
	}
	// bob adds himself with an empty body, alice may not add bob.
	if status, _, b := e.do("POST", "/rest/api/2/issue/TEST-1/watchers", "alice", `"alice"`); status != 204 {
		t.Errorf("alice watches herself: %d %s", status, b)
	}
	status, _, b := e.do("POST", "/rest/api/2/issue/TEST-1/watchers", "alice", `"admin"`)
	wantJiraError(t, status, 403, b, "", "")
	if got := strings.Join(watchers(), ","); got != "admin,bob,alice" {
		t.Errorf("watchers = %s", got)
	}
	// go-jira's RemoveWatcher sends the name as a body, which Data Center
	// ignores (400): the query parameter is what works.
	if _, err := e.admin.Issue.RemoveWatcher("TEST-1", "bob"); err == nil {
		t.Error("RemoveWatcher with a body: want Data Center's 400")
	}
	if status, _, b := e.do("DELETE", "/rest/api/2/issue/TEST-1/watchers?username=bob", "admin", nil); status != 204 {
		t.Fatalf("remove watcher: %d %s", status, b)
	}
	status, _, b = e.do("DELETE", "/rest/api/2/issue/TEST-1/watchers", "admin", nil)
	wantJiraError(t, status, 400, b, "", "")
	status, _, b = e.do("POST", "/rest/api/2/issue/TEST-1/watchers", "admin", `"ghost"`)
	wantJiraError(t, status, 404, b, "", "")
	if got := strings.Join(watchers(), ","); got != "admin,alice" {
		t.Errorf("watchers after remove = %s", got)
	}
}

func TestIssueLinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "a")
	e.createIssue(e.admin, "b")
	// Data Center wraps the list ({"issueLinkTypes": [...]}), which
	// go-jira's IssueLinkType.GetList cannot decode.
	_, _, lt := e.do("GET", "/rest/api/2/issueLinkType", "bob", nil)
	if types := mustJSON(t, lt)["issueLinkTypes"].([]any); len(types) != 4 {
		t.Fatalf("link types = %s", lt)
	}
	resp, err := e.admin.Issue.AddLink(&jira.IssueLink{Type: jira.IssueLinkType{Name: "Blocks"},
		InwardIssue: &jira.Issue{Key: "TEST-1"}, OutwardIssue: &jira.Issue{Key: "TEST-2"}})
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("add link: %v", err)
	}
	a, _, _ := e.admin.Issue.Get("TEST-1", &jira.GetQueryOptions{Expand: "changelog"})
	if len(a.Fields.IssueLinks) != 1 || a.Fields.IssueLinks[0].OutwardIssue.Key != "TEST-2" || a.Fields.IssueLinks[0].ID != "10000" {
		t.Errorf("TEST-1 links = %+v", a.Fields.IssueLinks)
	}
	if h := a.Changelog.Histories; len(h) != 1 || h[0].Items[0].Field != "Link" || h[0].Items[0].ToString != "This issue blocks TEST-2" {
		t.Errorf("link history = %+v", h)
	}
	b, _, _ := e.admin.Issue.Get("TEST-2", nil)
	if len(b.Fields.IssueLinks) != 1 || b.Fields.IssueLinks[0].InwardIssue.Key != "TEST-1" {
		t.Errorf("TEST-2 links = %+v", b.Fields.IssueLinks)
	}
	status, _, raw := e.do("GET", "/rest/api/2/issueLink/10000", "bob", nil)
	if m := mustJSON(t, raw); status != 200 || m["type"].(map[string]any)["name"] != "Blocks" {
		t.Errorf("get link %d %s", status, raw)
	}
	status, _, raw = e.do("POST", "/rest/api/2/issueLink", "admin", map[string]any{"type": map[string]string{"name": "Nope"},
		"inwardIssue": map[string]string{"key": "TEST-1"}, "outwardIssue": map[string]string{"key": "TEST-2"}})
	wantJiraError(t, status, 404, raw, "", "")
	status, _, raw = e.do("POST", "/rest/api/2/issueLink", "admin", map[string]any{"type": map[string]string{"name": "Blocks"},
		"inwardIssue": map[string]string{"key": "TEST-1"}, "outwardIssue": map[string]string{"key": "TEST-9"}})
	wantJiraError(t, status, 404, raw, "Issue Does Not Exist", "")
	if _, err := e.admin.Issue.DeleteLink("10000"); err != nil {
		t.Fatal(err)
	}
	status, _, raw = e.do("GET", "/rest/api/2/issueLink/10000", "admin", nil)
	wantJiraError(t, status, 404, raw, "", "")
	// Link types can be created by admins.
	status, _, raw = e.do("POST", "/rest/api/2/issueLinkType", "admin", map[string]string{"name": "Syncs", "inward": "is synced by", "outward": "syncs"})
	if status != 201 {
		t.Errorf("create link type: %d %s", status, raw)
	}
}

func TestRemoteLinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "r")
	rl, resp, err := e.admin.Issue.AddRemoteLink("TEST-1", &jira.RemoteLink{GlobalID: "peer=PEER-7",
		Object: &jira.RemoteLinkObject{URL: "https://peer.example/browse/PEER-7", Title: "PEER-7"}})
	if err != nil || resp.StatusCode != 201 || rl.ID == 0 {
		t.Fatalf("add remote link: %+v %v", rl, err)
	}
	// Same globalId: updated in place, 200.
	rl2, resp, err := e.admin.Issue.AddRemoteLink("TEST-1", &jira.RemoteLink{GlobalID: "peer=PEER-7",
		Object: &jira.RemoteLinkObject{URL: "https://peer.example/browse/PEER-7", Title: "PEER-7 renamed"}})
	if err != nil || resp.StatusCode != 200 || rl2.ID != rl.ID {
		t.Fatalf("upsert: %+v %d %v", rl2, resp.StatusCode, err)
	}
	links, _, err := e.admin.Issue.GetRemoteLinks("TEST-1")
	if err != nil || len(*links) != 1 || (*links)[0].Object.Title != "PEER-7 renamed" {
		t.Errorf("remote links = %+v %v", links, err)
	}
	status, _, b := e.do("POST", "/rest/api/2/issue/TEST-1/remotelink", "admin", map[string]any{"object": map[string]string{"title": "x"}})
	wantJiraError(t, status, 400, b, "", "url")
	if status, _, _ := e.do("DELETE", "/rest/api/2/issue/TEST-1/remotelink?globalId=peer%3DPEER-7", "admin", nil); status != 204 {
		t.Errorf("delete by globalId = %d", status)
	}
	links, _, _ = e.admin.Issue.GetRemoteLinks("TEST-1")
	if len(*links) != 0 {
		t.Errorf("after delete: %+v", links)
	}
}

// TestCommentChangeRights: the author may edit and delete a comment with
// the "own comments" permissions, someone else only with the "all
// comments" ones (the Administrators role, which jirasim's admin has by
// being a Jira administrator); comment properties follow the edit rights.
func TestCommentChangeRights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, user string
		body                     any
		want                     int
	}{
		{"author edits", "PUT", "", "alice", map[string]any{"body": "edited"}, 200},
		{"other user edits", "PUT", "", "bob", map[string]any{"body": "hijack"}, 403},
		{"admin edits", "PUT", "", "admin", map[string]any{"body": "moderated"}, 200},
		{"author edits to empty", "PUT", "", "alice", map[string]any{"body": "  "}, 400},
		{"author edits visibility only", "PUT", "", "alice", map[string]any{"visibility": map[string]string{"type": "role", "value": "Developers"}}, 200},
		{"other user sets a property", "PUT", "/properties/p", "bob", `"v"`, 403},
		{"author sets a property", "PUT", "/properties/p", "alice", `"v"`, 201},
		{"other user deletes", "DELETE", "", "bob", nil, 403},
		{"author deletes", "DELETE", "", "alice", nil, 204},
		{"admin deletes", "DELETE", "", "admin", nil, 204},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, jirasim.Options{})
			e.createIssue(e.admin, "c")
			status, _, b := e.do("POST", "/rest/api/2/issue/TEST-1/comment", "alice", map[string]any{"body": "first"})
			if status != 201 {
				t.Fatalf("add comment: %d %s", status, b)
			}
			id := mustJSON(t, b)["id"].(string)
			path := "/rest/api/2/issue/TEST-1/comment/" + id
			if tc.path != "" {
				path = "/rest/api/2/comment/" + id + tc.path
			}
			status, _, b = e.do(tc.method, path, tc.user, tc.body)
			if status != tc.want {
				t.Fatalf("%s %s as %s = %d %s, want %d", tc.method, path, tc.user, status, b, tc.want)
			}
			// alice, the author, sees the comment whatever its visibility.
			status, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/comment/"+id, "alice", nil)
			switch {
			case tc.method == "DELETE" && tc.want == 204:
				wantJiraError(t, status, 404, b, "", "")
			case status != 200:
				t.Fatalf("get comment after: %d %s", status, b)
			default:
				wantBody := "first"
				if m, ok := tc.body.(map[string]any); ok && tc.want == 200 && m["body"] != nil {
					wantBody = m["body"].(string)
				}
				if got := mustJSON(t, b)["body"]; got != wantBody {
					t.Errorf("body after = %q, want %q", got, wantBody)
				}
			}
		})
	}
}
