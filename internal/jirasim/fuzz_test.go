package jirasim_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

// FuzzIssueBodies throws arbitrary bodies at the endpoints that decode
// client JSON; jirasim must answer with a Jira status, never a 500.
func FuzzIssueBodies(f *testing.F) {
	for _, s := range []string{
		`{"fields":{"project":{"key":"TEST"},"issuetype":{"name":"Task"},"summary":"s","labels":["a"]}}`,
		`{"fields":{"summary":"x"},"update":{"labels":[{"add":"b"},{"remove":"a"}]}}`,
		`{"fields":{"customfield_10000":{"value":"S1"},"customfield_10001":[{"id":"10001"}],"duedate":"2024-01-01"}}`,
		`{"transition":{"id":"31"},"fields":{"resolution":{"name":"Done"}},"update":{"comment":[{"add":{"body":"x"}}]}}`,
		`{"body":"c","visibility":{"type":"role","value":"Developers"},"properties":[{"key":"k","value":1}]}`,
		`{"fields":{"assignee":{"name":null},"reporter":7,"priority":"x","issuetype":[]}}`,
		`[]`, `null`, `"x"`, `{"fields":null,"update":{"summary":[{"set":null}]}}`,
	} {
		f.Add(s)
	}
	srv := jirasim.New(jirasim.Options{})
	_ = srv.CreateProject(jirasim.ProjectSpec{Key: "TEST", Name: "Test"})
	_, _ = srv.CreateField(jirasim.FieldSpec{Name: "Sev", Type: "select", Options: []string{"S1"}})
	_, _ = srv.CreateField(jirasim.FieldSpec{Name: "Multi", Type: "multiselect", Options: []string{"M1", "M2"}})
	_, _ = srv.CreateField(jirasim.FieldSpec{Name: "When", Type: "datetime"})
	_, _ = srv.CreateField(jirasim.FieldSpec{Name: "Num", Type: "float"})
	send := func(t testing.TB, method, path, body string) int {
		req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
		req.SetBasicAuth("admin", "admin")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
		return rec.Code
	}
	send(f, "POST", "/rest/api/2/issue", `{"fields":{"project":{"key":"TEST"},"issuetype":{"name":"Task"},"summary":"base"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		send(t, "POST", "/rest/api/2/issue", body)
		send(t, "PUT", "/rest/api/2/issue/TEST-1", body)
		send(t, "POST", "/rest/api/2/issue/TEST-1/transitions", body)
		send(t, "POST", "/rest/api/2/issue/TEST-1/comment", body)
		send(t, "POST", "/rest/api/2/search", body)
		send(t, "POST", "/rest/api/2/issueLink", body)
		send(t, "POST", "/rest/api/2/issue/TEST-1/remotelink", body)
		if code := send(t, "GET", "/rest/api/2/issue/TEST-1?expand=changelog,renderedFields,names,schema,transitions,editmeta", ""); code != http.StatusOK {
			t.Fatalf("issue unreadable after %q: %d", body, code)
		}
	})
}
