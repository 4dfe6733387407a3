package jirasim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	jira "github.com/andygrunwald/go-jira"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func TestAuthAndCaptcha(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{MaxLoginFailures: 2})
	u, _, err := e.admin.User.GetSelf()
	if err != nil || u.Name != "admin" || u.Key != "admin" {
		t.Fatalf("myself = %+v, %v", u, err)
	}
	// Anonymous: 401 Jira body.
	status, _, b := e.do("GET", "/rest/api/2/myself", "", nil)
	wantJiraError(t, status, 401, b, "", "")
	// serverInfo is anonymous.
	status, _, b = e.do("GET", "/rest/api/2/serverInfo", "", nil)
	if m := mustJSON(t, b); status != 200 || m["deploymentType"] != "Server" || m["version"] != "9.12.2" {
		t.Errorf("serverInfo %d %s", status, b)
	}

	req, _ := http.NewRequest("GET", e.hs.URL+"/rest/api/2/myself", nil)
	req.SetBasicAuth("ghost", "x")
	resp0, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp0.Body)
	resp0.Body.Close()
	if resp0.StatusCode != 401 || !strings.Contains(string(body), "Basic Authentication Failure - Reason : AUTHENTICATED_FAILED") ||
		!strings.HasPrefix(resp0.Header.Get("Content-Type"), "text/html") {
		t.Errorf("unknown user: %d %s %q", resp0.StatusCode, resp0.Header.Get("Content-Type"), body)
	}
	bad := e.client("bob", "wrong")
	for i := 0; i < 2; i++ {
		_, resp, err := bad.User.GetSelf()
		if err == nil || resp.StatusCode != 401 || resp.Header.Get("X-Seraph-LoginReason") != "AUTHENTICATED_FAILED" {
			t.Fatalf("wrong password %d: %v %v", i, resp.StatusCode, resp.Header)
		}
	}
	// Now even the right password is denied until an admin resets.
	good := e.client("bob", "pw")
	_, resp, err := good.User.GetSelf()
	if err == nil || resp.StatusCode != 403 || resp.Header.Get("X-Seraph-LoginReason") != "AUTHENTICATION_DENIED" ||
		!strings.HasPrefix(resp.Header.Get("X-Authentication-Denied-Reason"), "CAPTCHA_CHALLENGE") {
		t.Fatalf("after failures: %v %v", resp.StatusCode, resp.Header)
	}
	// Reset through the admin endpoint.
	if status, _, b := e.do("DELETE", "/_jirasim/captcha/bob", "admin", nil); status != 204 {
		t.Fatalf("reset captcha: %d %s", status, b)
	}
	if _, _, err := good.User.GetSelf(); err != nil {
		t.Errorf("after reset: %v", err)
	}
	// And through the Go API.
	for i := 0; i < 2; i++ {
		_, _, _ = bad.User.GetSelf()
	}
	if _, _, err := good.User.GetSelf(); err == nil {
		t.Error("want CAPTCHA again")
	}
	if err := e.srv.ResetCaptcha("bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := good.User.GetSelf(); err != nil {
		t.Errorf("after Go reset: %v", err)
	}
	// A password change (the credentials change the bridge waits for).
	if status, _, b := e.do("PUT", "/rest/api/2/user/password?username=bob", "admin", map[string]string{"password": "new"}); status != 204 {
		t.Fatalf("change password: %d %s", status, b)
	}
	if _, _, err := good.User.GetSelf(); err == nil {
		t.Error("old password still works")
	}
	if _, _, err := e.client("bob", "new").User.GetSelf(); err != nil {
		t.Errorf("new password: %v", err)
	}
	_ = e.srv.SetActive("bob", false)
	if _, _, err := e.client("bob", "new").User.GetSelf(); err == nil {
		t.Error("inactive user logged in")
	}
}

func TestBearerTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	tok, err := e.srv.CreateToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	tp := jira.BearerAuthTransport{Token: tok}
	c, _ := jira.NewClient(tp.Client(), e.hs.URL)
	u, _, err := c.User.GetSelf()
	if err != nil || u.Name != "alice" {
		t.Fatalf("bearer myself = %+v %v", u, err)
	}
	// Tokens through Jira's PAT endpoint.
	status, _, b := e.do("POST", "/rest/pat/latest/tokens", "bob", map[string]any{"name": "ci", "expirationDuration": 90})
	if status != 201 {
		t.Fatalf("create PAT: %d %s", status, b)
	}
	raw := mustJSON(t, b)["rawToken"].(string)
	req, _ := http.NewRequest("GET", e.hs.URL+"/rest/api/2/myself", nil)
	req.Header.Set("Authorization", "Bearer "+raw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PAT myself: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	// Revoke it.
	_, _, b = e.do("GET", "/rest/pat/latest/tokens", "bob", nil)
	var list []map[string]any
	_ = json.Unmarshal(b, &list)
	if len(list) != 1 {
		t.Fatalf("tokens = %s", b)
	}
	if status, _, _ := e.do("DELETE", fmt.Sprintf("/rest/pat/latest/tokens/%v", list[0]["id"]), "bob", nil); status != 204 {
		t.Errorf("revoke = %d", status)
	}
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("revoked token: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer nope")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("X-Seraph-LoginReason") != "AUTHENTICATED_FAILED" {
		t.Errorf("bad token: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "perm")
	q := "/rest/api/2/mypermissions?projectKey=TEST&permissions=BROWSE_PROJECTS,EDIT_ISSUES,ADMINISTER_PROJECTS,MANAGE_WATCHERS"
	have := func(user string) map[string]bool {
		status, _, b := e.do("GET", q, user, nil)
		if status != 200 {
			t.Fatalf("mypermissions %s: %d %s", user, status, b)
		}
		out := map[string]bool{}
		for k, v := range mustJSON(t, b)["permissions"].(map[string]any) {
			out[k] = v.(map[string]any)["havePermission"].(bool)
		}
		return out
	}
	if got := have("admin"); !got["ADMINISTER_PROJECTS"] || !got["MANAGE_WATCHERS"] || !got["EDIT_ISSUES"] {
		t.Errorf("admin = %v", got)
	}
	if got := have("bob"); got["ADMINISTER_PROJECTS"] || !got["BROWSE_PROJECTS"] || !got["EDIT_ISSUES"] {
		t.Errorf("bob = %v", got)
	}
	status, _, b := e.do("GET", "/rest/api/2/mypermissions?projectKey=TEST&permissions=NOPE", "bob", nil)
	wantJiraError(t, status, 400, b, "", "")

	// Restrict editing to Developers: alice yes, bob 403.
	if err := e.srv.SetPermission("TEST", "EDIT_ISSUES", "role:Developers"); err != nil {
		t.Fatal(err)
	}
	if got := have("bob"); got["EDIT_ISSUES"] {
		t.Errorf("bob EDIT after restrict = %v", got)
	}
	status, _, b = e.do("PUT", "/rest/api/2/issue/TEST-1", "bob", map[string]any{"fields": map[string]any{"summary": "x"}})
	wantJiraError(t, status, 403, b, "You do not have permission to edit issues in this project.", "")
	if status, _, b := e.do("PUT", "/rest/api/2/issue/TEST-1", "alice", map[string]any{"fields": map[string]any{"summary": "x"}}); status != 204 {
		t.Errorf("alice edit: %d %s", status, b)
	}
	// Adding bob to the role through REST grants it.
	status, _, b = e.do("POST", "/rest/api/2/project/TEST/role/10001", "admin", map[string]any{"user": []string{"bob"}})
	if status != 200 {
		t.Fatalf("add role member: %d %s", status, b)
	}
	if got := have("bob"); !got["EDIT_ISSUES"] {
		t.Errorf("bob after role add = %v", got)
	}
	// No browse: issue endpoints refuse, search hides.
	_ = e.srv.SetPermission("TEST", "BROWSE_PROJECTS", "role:Administrators")
	status, _, b = e.do("GET", "/rest/api/2/issue/TEST-1", "bob", nil)
	wantJiraError(t, status, 404, b, "Issue Does Not Exist", "")
	status, _, b = e.do("GET", "/rest/api/2/search?jql=", "bob", nil)
	if status != 200 || mustJSON(t, b)["total"] != 0.0 {
		t.Errorf("search without browse: %d %s", status, b)
	}
	// Transition, comment, attachment, link permissions.
	_ = e.srv.SetPermission("TEST", "BROWSE_PROJECTS", "loggedin")
	for _, perm := range []string{"TRANSITION_ISSUES", "ADD_COMMENTS", "CREATE_ATTACHMENTS", "LINK_ISSUES", "CREATE_ISSUES"} {
		_ = e.srv.SetPermission("TEST", perm)
	}
	status, _, b = e.do("POST", "/rest/api/2/issue/TEST-1/transitions", "bob", map[string]any{"transition": map[string]string{"id": "11"}})
	wantJiraError(t, status, 403, b, "", "")
	status, _, b = e.do("POST", "/rest/api/2/issue/TEST-1/comment", "bob", map[string]any{"body": "x"})
	wantJiraError(t, status, 403, b, "", "")
	status, _, b = e.do("POST", "/rest/api/2/issue", "bob", map[string]any{"fields": map[string]any{"project": map[string]string{"key": "TEST"},
		"issuetype": map[string]string{"name": "Task"}, "summary": "s"}})
	wantJiraError(t, status, 403, b, "", "")
	status, _, b = e.do("POST", "/rest/api/2/issueLink", "bob", map[string]any{"type": map[string]string{"name": "Relates"},
		"inwardIssue": map[string]string{"key": "TEST-1"}, "outwardIssue": map[string]string{"key": "TEST-1"}})
	wantJiraError(t, status, 403, b, "", "")
	// Non-admins cannot create projects or users.
	status, _, b = e.do("POST", "/rest/api/2/project", "bob", map[string]any{"key": "BOB", "name": "Bob"})
	wantJiraError(t, status, 403, b, "", "")
	status, _, b = e.do("POST", "/rest/api/2/user", "bob", map[string]any{"name": "carol"})
	wantJiraError(t, status, 403, b, "", "")
}

func TestSetupThroughREST(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	legacy := newEnv(t, jirasim.Options{LegacyCreateMeta: true})
	if meta, _, err := legacy.admin.Issue.GetCreateMeta("TEST"); err != nil || len(meta.Projects) != 1 {
		t.Errorf("legacy createmeta: %v %v", meta, err)
	}
	status, _, b := e.do("POST", "/rest/api/2/project", "admin", map[string]any{"key": "NEW", "name": "New", "projectTypeKey": "software", "lead": "alice"})
	if status != 201 || mustJSON(t, b)["key"] != "NEW" {
		t.Fatalf("create project: %d %s", status, b)
	}
	status, _, b = e.do("POST", "/rest/api/2/project", "admin", map[string]any{"key": "NEW", "name": "Other", "lead": "alice"})
	wantJiraError(t, status, 400, b, "", "projectKey")
	status, _, b = e.do("POST", "/rest/api/2/project", "admin", map[string]any{"key": "bad key", "name": "Bad"})
	wantJiraError(t, status, 400, b, "", "projectKey")
	p, _, err := e.admin.Project.Get("NEW")
	if err != nil || p.Key != "NEW" || p.Lead.Name != "alice" {
		t.Fatalf("get project: %+v %v", p, err)
	}
	status, _, b = e.do("GET", "/rest/api/2/project/NOPE", "admin", nil)
	wantJiraError(t, status, 404, b, "No project could be found with key 'NOPE'.", "")
	status, _, b = e.do("POST", "/rest/api/2/user", "admin", map[string]any{"name": "carol", "password": "c", "emailAddress": "c@example.com", "displayName": "Carol"})
	if status != 201 {
		t.Fatalf("create user: %d %s", status, b)
	}
	status, _, b = e.do("POST", "/rest/api/2/user", "admin", map[string]any{"name": "carol"})
	wantJiraError(t, status, 400, b, "", "username")
	// go-jira's User.Get sends Cloud's accountId, which Data Center ignores.
	status, _, b = e.do("GET", "/rest/api/2/user?username=carol", "admin", nil)
	if u := mustJSON(t, b); status != 200 || u["displayName"] != "Carol" || !strings.HasPrefix(u["key"].(string), "JIRAUSER") {
		t.Errorf("get user %d %s", status, b)
	}
	users, _, err := e.admin.User.Find("", jira.WithUsername("car"))
	if err != nil || len(users) != 1 {
		t.Errorf("user search: %v %v", users, err)
	}
	status, _, b = e.do("GET", "/rest/api/2/user?username=nobody", "admin", nil)
	wantJiraError(t, status, 404, b, "", "")
	// Groups through REST: a group grant takes effect.
	if status, _, b := e.do("POST", "/rest/api/2/group", "admin", map[string]string{"name": "syncers"}); status != 201 {
		t.Fatalf("create group: %d %s", status, b)
	}
	if status, _, b := e.do("POST", "/rest/api/2/group/user?groupname=syncers", "admin", map[string]string{"name": "carol"}); status != 201 {
		t.Fatalf("add to group: %d %s", status, b)
	}
	_, _, b = e.do("GET", "/rest/api/2/group/member?groupname=syncers", "admin", nil)
	if m := mustJSON(t, b); m["total"] != 1.0 {
		t.Errorf("group members = %s", b)
	}
	_ = e.srv.SetPermission("NEW", "MANAGE_WATCHERS", "group:syncers")
	_, _, b = e.do("GET", "/rest/api/2/mypermissions?projectKey=NEW&permissions=MANAGE_WATCHERS", "admin", nil)
	if p := mustJSON(t, b)["permissions"].(map[string]any)["MANAGE_WATCHERS"].(map[string]any); p["havePermission"] != false {
		t.Errorf("admin MANAGE_WATCHERS after regrant = %v", p)
	}
	// Custom fields through REST.
	status, _, b = e.do("POST", "/rest/api/2/field", "admin", map[string]any{"name": "Team", "type": "com.atlassian.jira.plugin.system.customfieldtypes:select",
		"searcherKey": "com.atlassian.jira.plugin.system.customfieldtypes:multiselectsearcher", "options": []string{"Red", "Blue"}})
	if status != 201 {
		t.Fatalf("create field: %d %s", status, b)
	}
	id := mustJSON(t, b)["id"].(string)
	fields, _, err := e.admin.Field.GetList()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fields {
		if f.ID == id && f.Name == "Team" && f.Custom && f.Schema.Type == "option" {
			found = true
		}
	}
	if !found {
		t.Errorf("field %s not listed", id)
	}
	// createmeta and editmeta list it with allowed values.
	status, _, b = e.do("GET", "/rest/api/2/issue/createmeta/NEW/issuetypes", "admin", nil)
	if status != 200 || mustJSON(t, b)["total"] != 5.0 {
		t.Errorf("createmeta issue types: %d %s", status, b)
	}
	status, _, b = e.do("GET", "/rest/api/2/issue/createmeta/NEW/issuetypes/10002", "admin", nil)
	ff := map[string]map[string]any{}
	for _, v := range mustJSON(t, b)["values"].([]any) {
		ff[v.(map[string]any)["fieldId"].(string)] = v.(map[string]any)
	}
	if cf, ok := ff[id]; status != 200 || !ok || len(cf["allowedValues"].([]any)) != 2 || ff["summary"]["required"] != true {
		t.Errorf("createmeta fields: %d %v", status, ff)
	}
	status, _, b = e.do("GET", "/rest/api/2/issue/createmeta/NOPE/issuetypes", "admin", nil)
	wantJiraError(t, status, 404, b, "", "")
	// Jira 9 removed the old createmeta that go-jira's GetCreateMeta uses.
	if _, _, err := e.admin.Issue.GetCreateMeta("NEW"); err == nil {
		t.Errorf("legacy createmeta answered without Options.LegacyCreateMeta")
	}
	e.createIssue(e.admin, "m")
	_ = e.srv.SetScreen("TEST", "summary", id)
	_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1/editmeta", "admin", nil)
	em := mustJSON(t, b)["fields"].(map[string]any)
	if _, ok := em[id]; !ok {
		t.Errorf("editmeta lacks %s: %v", id, em)
	}
	if _, ok := em["description"]; ok {
		t.Errorf("editmeta has description though it is off the screen")
	}
}
