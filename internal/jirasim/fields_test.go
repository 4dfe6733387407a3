package jirasim_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jirasim"
)

func TestCustomFieldTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jirasim.Options{})
	e.createIssue(e.admin, "cf")
	tests := []struct {
		typ      string
		options  []string
		value    any
		wantJSON string // the field as GET returns it
		wantTo   string // the history item's toString
		bad      any
	}{
		{"textfield", nil, "short", `"short"`, "short", 12},
		{"float", nil, 2.5, `2.5`, "2.5", "two"},
		{"datepicker", nil, "2024-05-01", `"2024-05-01"`, "2024-05-01", "01/05/2024"},
		{"datetime", nil, "2024-05-01T10:30:00.000+0200", `"2024-05-01T08:30:00.000+0000"`, "2024-05-01T08:30:00.000+0000", "2024-05-01 10:30"},
		{"userpicker", nil, map[string]string{"name": "bob"}, ``, "bob Example", map[string]string{"name": "ghost"}},
		{"select", []string{"A", "B"}, map[string]string{"value": "B"}, ``, "B", map[string]string{"value": "C"}},
		{"multiselect", []string{"X", "Y", "Z"}, []map[string]string{{"value": "X"}, {"value": "Z"}}, ``, "X,Z", []map[string]string{{"value": "Q"}}},
		{"labels", nil, []string{"l1", "l2"}, `["l1","l2"]`, "l1 l2", "notalist"},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			id, err := e.srv.CreateField(jirasim.FieldSpec{Name: "F " + tc.typ, Type: tc.typ, Options: tc.options})
			if err != nil {
				t.Fatal(err)
			}
			status, _, b := e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{id: tc.value}})
			if status != 204 {
				t.Fatalf("set %s: %d %s", tc.typ, status, b)
			}
			_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1?fields="+id+"&expand=changelog", "admin", nil)
			var got struct {
				Fields    map[string]json.RawMessage
				Changelog struct {
					Histories []struct {
						Items []struct{ Field, FieldType, ToString string }
					}
				}
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if tc.wantJSON != "" && string(got.Fields[id]) != tc.wantJSON {
				t.Errorf("GET %s = %s, want %s", id, got.Fields[id], tc.wantJSON)
			}
			hs := got.Changelog.Histories
			last := hs[len(hs)-1].Items[0]
			if last.Field != "F "+tc.typ || last.FieldType != "custom" || last.ToString != tc.wantTo {
				t.Errorf("history item = %+v, want toString %q", last, tc.wantTo)
			}
			status, _, b = e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{id: tc.bad}})
			wantJiraError(t, status, 400, b, "", id)
			// Clearing with null.
			if status, _, b := e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{id: nil}}); status != 204 {
				t.Errorf("clear: %d %s", status, b)
			}
			_, _, b = e.do("GET", "/rest/api/2/issue/TEST-1?fields="+id, "admin", nil)
			if f := mustJSON(t, b)["fields"].(map[string]any); f[id] != nil {
				t.Errorf("after clear %s = %v", id, f[id])
			}
		})
	}
	// Shapes of option and user values.
	sel, _ := e.srv.FieldID("F select")
	multi, _ := e.srv.FieldID("F multiselect")
	user, _ := e.srv.FieldID("F userpicker")
	e.do("PUT", "/rest/api/2/issue/TEST-1", "admin", map[string]any{"fields": map[string]any{
		sel: map[string]string{"value": "A"}, user: map[string]string{"name": "alice"}},
		"update": map[string]any{multi: []map[string]any{{"add": map[string]string{"value": "Y"}}}}})
	_, _, b := e.do("GET", "/rest/api/2/issue/TEST-1", "admin", nil)
	f := mustJSON(t, b)["fields"].(map[string]any)
	if o := f[sel].(map[string]any); o["value"] != "A" || o["id"] == nil || o["self"] == nil {
		t.Errorf("select value = %v", o)
	}
	if u := f[user].(map[string]any); u["name"] != "alice" {
		t.Errorf("user value = %v", u)
	}
	if m := f[multi].([]any); len(m) != 1 || m[0].(map[string]any)["value"] != "Y" {
		t.Errorf("multiselect value = %v", m)
	}
	// JQL on custom fields, by cf[id] and by name.
	for _, q := range []string{`"F select" = A`, `cf[` + sel[len("customfield_"):] + `] = A`, `"F multiselect" in (Y)`} {
		_, _, b := e.do("GET", "/rest/api/2/search?jql="+url.QueryEscape(q), "admin", nil)
		if m := mustJSON(t, b); m["total"] != 1.0 {
			t.Errorf("jql %s: %s", q, b)
		}
	}
}
