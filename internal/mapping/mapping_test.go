package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/wire"
)

const testDef = `
name: t
project: SUP
jql: labels = partner
issue_types: {Bug: bug, Task: task}
statuses: {Open: open, "In Progress": doing, Done: done}
fields:
  - {local: summary, alias: summary}
  - {local: description, alias: description}
  - local: priority
    alias: prio
    values: {High: p1, Medium: p2}
  - {local: labels, alias: labels}
  - {local: components, alias: components}
  - {local: duedate, alias: due}
  - {local: assignee, alias: assignee}
  - {local: reporter, alias: reporter}
  - {local: Notes, alias: notes}
  - {local: Points, alias: points}
  - local: Severity
    alias: sev
    mode: correlation
    values: {"S1": sev1, "S2": sev2}
  - {local: Platforms, alias: platforms}
  - {local: Start, alias: start}
  - {local: Deadline, alias: deadline}
  - {local: Reviewer, alias: reviewer}
  - {local: customfield_10007, alias: ref, direction: outgoing}
  - {local: Product, alias: product, direction: incoming, mode: totext}
  - {local: Tags, alias: tags}
links:
  types: {Blocks: blocks}
`

func schema(typ, items string) *struct {
	Type     string `json:"type"`
	Items    string `json:"items,omitempty"`
	System   string `json:"system,omitempty"`
	Custom   string `json:"custom,omitempty"`
	CustomID int64  `json:"customId,omitempty"`
} {
	return &struct {
		Type     string `json:"type"`
		Items    string `json:"items,omitempty"`
		System   string `json:"system,omitempty"`
		Custom   string `json:"custom,omitempty"`
		CustomID int64  `json:"customId,omitempty"`
	}{Type: typ, Items: items}
}

func testFields() []jira.FieldInfo {
	return []jira.FieldInfo{
		{ID: "summary", Name: "Summary", Schema: schema("string", "")},
		{ID: "description", Name: "Description", Schema: schema("string", "")},
		{ID: "priority", Name: "Priority", Schema: schema("priority", "")},
		{ID: "labels", Name: "Labels", Schema: schema("array", "string")},
		{ID: "components", Name: "Component/s", Schema: schema("array", "component")},
		{ID: "duedate", Name: "Due Date", Schema: schema("date", "")},
		{ID: "assignee", Name: "Assignee", Schema: schema("user", "")},
		{ID: "reporter", Name: "Reporter", Schema: schema("user", "")},
		{ID: "customfield_10001", Name: "Notes", Custom: true, Schema: schema("string", "")},
		{ID: "customfield_10002", Name: "Points", Custom: true, Schema: schema("number", "")},
		{ID: "customfield_10003", Name: "Severity", Custom: true, Schema: schema("option", "")},
		{ID: "customfield_10004", Name: "Platforms", Custom: true, Schema: schema("array", "option")},
		{ID: "customfield_10005", Name: "Start", Custom: true, Schema: schema("date", "")},
		{ID: "customfield_10006", Name: "Deadline", Custom: true, Schema: schema("datetime", "")},
		{ID: "customfield_10008", Name: "Reviewer", Custom: true, Schema: schema("user", "")},
		{ID: "customfield_10007", Name: "Ref", Custom: true, Schema: schema("string", "")},
		{ID: "customfield_10009", Name: "Product", Custom: true, Schema: schema("string", "")},
		{ID: "customfield_10010", Name: "Tags", Custom: true, Schema: schema("array", "string")},
		{ID: "customfield_10050", Name: "People", Custom: true, Schema: schema("string", "")},
	}
}

// dir is an in-memory UserDirectory.
type dir map[string]jira.User // by name

func (d dir) UserByName(_ context.Context, n string) (jira.User, bool, error) {
	u, ok := d[n]
	return u, ok, nil
}
func (d dir) UserByKey(_ context.Context, k string) (jira.User, bool, error) {
	for _, u := range d {
		if u.Key == k {
			return u, true, nil
		}
	}
	return jira.User{}, false, nil
}
func (d dir) UserByEmail(_ context.Context, e string) (jira.User, bool, error) {
	for _, u := range d {
		if strings.EqualFold(u.EmailAddress, e) {
			return u, true, nil
		}
	}
	return jira.User{}, false, nil
}

var people = dir{
	"alice": {Name: "alice", Key: "JIRAUSER1", EmailAddress: "alice@a.example", DisplayName: "Alice A"},
	"bob":   {Name: "bob", Key: "JIRAUSER2", EmailAddress: "bob@a.example", DisplayName: "Bob B"},
}

func newMapping(t *testing.T, def string, users UserDirectory) *Mapping {
	t.Helper()
	d, err := config.ParseSync([]byte(def))
	if err != nil {
		t.Fatalf("parse def: %v", err)
	}
	m, err := New(d, testFields(), Options{Users: users})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func TestNewResolvesFields(t *testing.T) {
	t.Parallel()
	m := newMapping(t, testDef, people)
	want := map[string]struct {
		id   string
		kind config.FieldKind
		mode config.ValueMode
		dir  config.Direction
	}{
		"summary":    {"summary", config.KindText, config.ValuesPassthrough, config.DirBoth},
		"prio":       {"priority", config.KindPriority, config.ValuesCorrelation, config.DirBoth},
		"labels":     {"labels", config.KindLabels, config.ValuesPassthrough, config.DirBoth},
		"components": {"components", config.KindComponents, config.ValuesPassthrough, config.DirBoth},
		"due":        {"duedate", config.KindDate, config.ValuesPassthrough, config.DirBoth},
		"assignee":   {"assignee", config.KindUser, config.ValuesPassthrough, config.DirBoth},
		"points":     {"customfield_10002", config.KindNumber, config.ValuesPassthrough, config.DirBoth},
		"sev":        {"customfield_10003", config.KindSelect, config.ValuesCorrelation, config.DirBoth},
		"platforms":  {"customfield_10004", config.KindMultiSelect, config.ValuesPassthrough, config.DirBoth},
		"start":      {"customfield_10005", config.KindDate, config.ValuesPassthrough, config.DirBoth},
		"deadline":   {"customfield_10006", config.KindDateTime, config.ValuesPassthrough, config.DirBoth},
		"reviewer":   {"customfield_10008", config.KindUser, config.ValuesPassthrough, config.DirBoth},
		"ref":        {"customfield_10007", config.KindText, config.ValuesPassthrough, config.DirOutgoing},
		"product":    {"customfield_10009", config.KindText, config.ValuesToText, config.DirIncoming},
		"tags":       {"customfield_10010", config.KindLabels, config.ValuesPassthrough, config.DirBoth},
	}
	for alias, w := range want {
		f, ok := m.FieldByAlias(alias)
		if !ok {
			t.Errorf("alias %s: not mapped", alias)
			continue
		}
		if f.ID != w.id || f.Kind != w.kind || f.Mode != w.mode || f.Direction != w.dir {
			t.Errorf("alias %s: got %s/%s/%s/%s, want %+v", alias, f.ID, f.Kind, f.Mode, f.Direction, w)
		}
	}
	if got, want := m.JQL(), "project = SUP AND (labels = partner)"; got != want {
		t.Errorf("JQL = %q, want %q", got, want)
	}
	for _, h := range []jira.HistoryItem{{Field: "Component"}, {Field: "Severity"}, {Field: "duedate"}, {FieldID: "customfield_10002", Field: "x"}} {
		if _, ok := m.FieldByHistory(h); !ok {
			t.Errorf("FieldByHistory(%+v) not found", h)
		}
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	t.Parallel()
	d, err := config.ParseSync([]byte(`
name: t
project: SUP
issue_types: {Bug: bug}
fields:
  - {local: Nope, alias: a}
  - {local: customfield_999, alias: b}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(d, testFields(), Options{})
	if err == nil || !strings.Contains(err.Error(), "Nope") || !strings.Contains(err.Error(), "customfield_999") {
		t.Fatalf("err = %v, want both fields named", err)
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestOutgoingFieldValues(t *testing.T) {
	t.Parallel()
	m := newMapping(t, testDef, people)
	is := &jira.Issue{ID: "10", Key: "SUP-1", Fields: map[string]json.RawMessage{
		"summary":           raw(`"Hello"`),
		"description":       raw(`null`),
		"priority":          raw(`{"id":"2","name":"High"}`),
		"labels":            raw(`["b","a"]`),
		"components":        raw(`[{"id":"1","name":"UI"},{"id":"2","name":"API"}]`),
		"duedate":           raw(`"2026-01-31"`),
		"assignee":          raw(`{"name":"alice","key":"JIRAUSER1","emailAddress":"alice@a.example","displayName":"Alice A"}`),
		"reporter":          raw(`null`),
		"customfield_10001": raw(`"note"`),
		"customfield_10002": raw(`3.5`),
		"customfield_10003": raw(`{"id":"7","value":"S2"}`),
		"customfield_10004": raw(`[{"id":"8","value":"Linux"},{"id":"9","value":"Mac"}]`),
		"customfield_10005": raw(`"2026-02-01"`),
		"customfield_10006": raw(`"2026-02-01T10:30:00.000+0200"`),
		"customfield_10007": raw(`"R-1"`),
		"customfield_10009": raw(`"ignored: incoming only"`),
		"customfield_10010": raw(`[]`),
		"issuetype":         raw(`{"id":"1","name":"Bug"}`),
		"status":            raw(`{"id":"3","name":"In Progress"}`),
	}}
	st, ok, err := m.IssueState(context.Background(), is)
	if err != nil || !ok {
		t.Fatalf("IssueState: ok=%v err=%v", ok, err)
	}
	want := map[string]wire.Value{
		"summary":     wire.StringValue("Hello"),
		"description": wire.NullValue(),
		"prio":        wire.StringValue("p1"),
		"labels":      wire.ListValue("a", "b"),
		"components":  wire.ListValue("API", "UI"),
		"due":         wire.StringValue("2026-01-31"),
		"assignee":    wire.UserValue(wire.User{Name: "alice", Display: "Alice A"}),
		"reporter":    wire.NullValue(),
		"notes":       wire.StringValue("note"),
		"points":      wire.NumberValue(3.5),
		"sev":         wire.StringValue("sev2"),
		"platforms":   wire.ListValue("Linux", "Mac"),
		"start":       wire.StringValue("2026-02-01"),
		"deadline":    wire.StringValue("2026-02-01T08:30:00.000+0000"),
		"reviewer":    wire.NullValue(),
		"ref":         wire.StringValue("R-1"),
		"tags":        wire.NullValue(),
	}
	if st.IssueType != "bug" || st.Status != "doing" {
		t.Errorf("type/status = %q/%q, want bug/doing", st.IssueType, st.Status)
	}
	for k, w := range want {
		if g, ok := st.Fields[k]; !ok || !g.Equal(w) {
			t.Errorf("field %s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	if _, ok := st.Fields["product"]; ok {
		t.Errorf("incoming-only field product was sent")
	}
	if len(st.Fields) != len(want) {
		t.Errorf("got %d fields, want %d", len(st.Fields), len(want))
	}
	// An unmapped correlation value is a mapping error naming issue, field, value.
	is.Fields["customfield_10003"] = raw(`{"id":"9","value":"S9"}`)
	_, _, err = m.IssueState(context.Background(), is)
	assertMappingErr(t, err, "SUP-1", "sev", "S9")
	// Unmapped issue type: not synced, no error.
	is.Fields["issuetype"] = raw(`{"name":"Epic"}`)
	if _, ok, err := m.IssueState(context.Background(), is); ok || err != nil {
		t.Errorf("unmapped type: ok=%v err=%v, want false, nil", ok, err)
	}
}

func assertMappingErr(t *testing.T, err error, issue, field, value string) {
	t.Helper()
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want *mapping.Error", err)
	}
	if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != Reason {
		t.Errorf("class/reason = %v/%s, want permanent/mapping", errclass.Of(err), errclass.ReasonOf(err))
	}
	if me.Issue != issue || me.Field != field || me.Value != value {
		t.Errorf("error names %q/%q/%q, want %q/%q/%q", me.Issue, me.Field, me.Value, issue, field, value)
	}
}

func TestIncoming(t *testing.T) {
	t.Parallel()
	m := newMapping(t, testDef, people)
	ctx := context.Background()
	cases := []struct {
		alias string
		v     wire.Value
		field string
		want  any
		skip  bool
		err   string // value named in the mapping error
	}{
		{"summary", wire.StringValue("S"), "summary", "S", false, ""},
		{"description", wire.NullValue(), "description", nil, false, ""},
		{"prio", wire.StringValue("p2"), "priority", map[string]string{"name": "Medium"}, false, ""},
		{"prio", wire.StringValue("p9"), "", nil, false, "p9"},
		{"labels", wire.ListValue("x", "a"), "labels", []any{"a", "x"}, false, ""},
		{"labels", wire.ListValue("a b"), "", nil, false, "a b"},
		{"components", wire.ListValue("UI"), "components", []any{map[string]string{"name": "UI"}}, false, ""},
		{"due", wire.StringValue("2026-03-04"), "duedate", "2026-03-04", false, ""},
		{"due", wire.NumberValue(1), "", nil, false, "1"},
		{"notes", wire.StringValue("n"), "customfield_10001", "n", false, ""},
		{"points", wire.NumberValue(2), "customfield_10002", 2.0, false, ""},
		{"sev", wire.StringValue("sev1"), "customfield_10003", map[string]string{"value": "S1"}, false, ""},
		{"sev", wire.StringValue("S1"), "", nil, false, "S1"},
		{"platforms", wire.ListValue("Mac", "Linux"), "customfield_10004", []any{map[string]string{"value": "Linux"}, map[string]string{"value": "Mac"}}, false, ""},
		{"start", wire.StringValue("2026-02-01"), "customfield_10005", "2026-02-01", false, ""},
		{"deadline", wire.StringValue("2026-02-01T08:30:00.000+0000"), "customfield_10006", "2026-02-01T08:30:00.000+0000", false, ""},
		{"assignee", wire.UserValue(wire.User{Name: "bob"}), "assignee", map[string]string{"name": "bob"}, false, ""},
		{"assignee", wire.UserValue(wire.User{Name: "zed"}), "", nil, false, "zed"},
		{"assignee", wire.NullValue(), "assignee", nil, false, ""},
		{"ref", wire.StringValue("x"), "", nil, true, ""},                             // outgoing only
		{"unknown", wire.StringValue("x"), "", nil, true, ""},                         // not mapped here
		{"product", wire.ListValue("B", "A"), "customfield_10009", "A, B", false, ""}, // totext
		{"tags", wire.ListValue("t"), "customfield_10010", []any{"t"}, false, ""},
	}
	for _, c := range cases {
		a, ok, err := m.Incoming(ctx, "SUP-2", c.alias, c.v)
		if c.err != "" {
			assertMappingErr(t, err, "SUP-2", c.alias, c.err)
			continue
		}
		if err != nil {
			t.Errorf("%s %v: %v", c.alias, c.v, err)
			continue
		}
		if ok == c.skip {
			t.Errorf("%s %v: ok=%v, want %v", c.alias, c.v, ok, !c.skip)
			continue
		}
		if !ok {
			continue
		}
		if a.FieldID != c.field || !reflect.DeepEqual(a.Value, c.want) {
			t.Errorf("%s %v: got %s=%#v, want %s=%#v", c.alias, c.v, a.FieldID, a.Value, c.field, c.want)
		}
	}
	fields, ignored, err := m.IncomingFields(ctx, "SUP-2", map[string]wire.Value{
		"summary": wire.StringValue("S"), "ref": wire.StringValue("x"), "zzz": wire.NullValue(),
	})
	if err != nil || !reflect.DeepEqual(fields, map[string]any{"summary": "S"}) || !reflect.DeepEqual(ignored, []string{"ref", "zzz"}) {
		t.Errorf("IncomingFields = %v, %v, %v", fields, ignored, err)
	}
	if n, err := m.IssueTypeName("SUP-2", "task"); n != "Task" || err != nil {
		t.Errorf("IssueTypeName = %q, %v", n, err)
	}
	_, err = m.IssueTypeName("SUP-2", "epic")
	assertMappingErr(t, err, "SUP-2", "issuetype", "epic")
	if n, err := m.StatusName("SUP-2", "doing"); n != "In Progress" || err != nil {
		t.Errorf("StatusName = %q, %v", n, err)
	}
	_, err = m.StatusName("SUP-2", "nope")
	assertMappingErr(t, err, "SUP-2", "status", "nope")
	if a, ok := m.LinkTypeAlias("Blocks"); a != "blocks" || !ok {
		t.Errorf("LinkTypeAlias = %q %v", a, ok)
	}
	if _, ok := m.LinkTypeAlias("Relates"); ok {
		t.Errorf("unmapped link type reported as mapped")
	}
}

func TestUserPolicies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice := raw(`{"name":"alice","key":"JIRAUSER1","emailAddress":"alice@a.example","displayName":"Alice A"}`)
	cases := []struct {
		name     string
		users    string
		out      wire.Value // outgoing value of assignee alice; zero: not sent
		outSent  bool
		in       wire.User
		inField  string
		inValue  any
		inSkip   bool
		inErrVal string
	}{
		{"by_username", "{mode: by_username}", wire.UserValue(wire.User{Name: "alice", Display: "Alice A"}), true,
			wire.User{Name: "bob"}, "assignee", map[string]string{"name": "bob"}, false, ""},
		{"by_username unknown, fallback error", "{mode: by_username}", wire.UserValue(wire.User{Name: "alice", Display: "Alice A"}), true,
			wire.User{Name: "zed", Display: "Zed"}, "", nil, false, "zed"},
		{"by_email", "{mode: by_email}", wire.UserValue(wire.User{Email: "alice@a.example", Display: "Alice A"}), true,
			wire.User{Email: "BOB@a.example"}, "assignee", map[string]string{"name": "bob"}, false, ""},
		{"by_email fallback fixed", "{mode: by_email, fallback: fixed, fixed_user: proxy}", wire.UserValue(wire.User{Email: "alice@a.example", Display: "Alice A"}), true,
			wire.User{Email: "x@b.example"}, "assignee", map[string]string{"name": "proxy"}, false, ""},
		{"by_email fallback text field", "{mode: by_email, fallback: text, text_field: People}", wire.UserValue(wire.User{Email: "alice@a.example", Display: "Alice A"}), true,
			wire.User{Email: "x@b.example", Display: "Xena"}, "customfield_10050", "Xena (Partner Jira)", false, ""},
		{"fixed", "{mode: fixed, fixed_user: proxy}", wire.UserValue(wire.User{Display: "Alice A"}), true,
			wire.User{Display: "Xena"}, "assignee", map[string]string{"name": "proxy"}, false, ""},
		{"text without text field on a user field", "{mode: text}", wire.UserValue(wire.User{Display: "Alice A"}), true,
			wire.User{Display: "Xena"}, "", nil, false, "Xena"},
		{"drop", "{mode: drop}", wire.Value{}, false,
			wire.User{Name: "bob"}, "", nil, true, ""},
	}
	for _, c := range cases {
		def := strings.Replace(testDef, "links:", "users: "+c.users+"\nlinks:", 1)
		m := newMapping(t, def, people)
		f, _ := m.FieldByAlias("assignee")
		v, sent, err := m.FieldValue(&jira.Issue{Key: "SUP-3", Fields: map[string]json.RawMessage{"assignee": alice}}, f)
		if err != nil || sent != c.outSent || (sent && !v.Equal(c.out)) {
			t.Errorf("%s: outgoing = %v sent=%v err=%v, want %v sent=%v", c.name, v, sent, err, c.out, c.outSent)
		}
		a, ok, err := m.Incoming(ctx, "SUP-3", "assignee", wire.UserValue(c.in))
		if c.inErrVal != "" {
			assertMappingErr(t, err, "SUP-3", "assignee", c.inErrVal)
			continue
		}
		if err != nil || ok == c.inSkip {
			t.Errorf("%s: incoming ok=%v err=%v", c.name, ok, err)
			continue
		}
		if ok && (a.FieldID != c.inField || !reflect.DeepEqual(a.Value, c.inValue)) {
			t.Errorf("%s: incoming %s=%#v, want %s=%#v", c.name, a.FieldID, a.Value, c.inField, c.inValue)
		}
	}
}

func sp(s string) *string { return &s }

func TestHistoryChangesWalksBack(t *testing.T) {
	t.Parallel()
	m := newMapping(t, testDef, people)
	is := &jira.Issue{ID: "10", Key: "SUP-1", Fields: map[string]json.RawMessage{
		"summary":           raw(`"three"`),
		"components":        raw(`[{"name":"API"},{"name":"DB"}]`),
		"customfield_10004": raw(`[{"value":"Linux"},{"value":"Mac, Intel"}]`),
		"assignee":          raw(`{"name":"bob","key":"JIRAUSER2","displayName":"Bob B"}`),
		"customfield_10003": raw(`{"value":"S1"}`),
		"customfield_10006": raw(`null`),
	}, Changelog: &jira.Changelog{Histories: []jira.History{
		{ID: "1", Author: &jira.User{Name: "alice"}, Items: []jira.HistoryItem{
			{Field: "summary", FromString: sp("one"), ToString: sp("two")},
			{Field: "Component", To: sp("1"), ToString: sp("API")},
			{Field: "Severity", From: nil, To: sp("7"), ToString: sp("S2")},
		}},
		{ID: "2", Author: &jira.User{Name: "sync"}, Items: []jira.HistoryItem{
			{Field: "summary", FromString: sp("two"), ToString: sp("three")},
			{Field: "Severity", From: sp("7"), FromString: sp("S2"), To: sp("6"), ToString: sp("S1")},
		}},
		{ID: "3", Author: &jira.User{Name: "alice"}, Items: []jira.HistoryItem{
			{Field: "Component", From: sp("3"), FromString: sp("UI")},
			{Field: "Component", To: sp("2"), ToString: sp("DB")},
			{Field: "Platforms", FromString: sp("Linux"), ToString: sp("Linux,Mac, Intel")},
			{Field: "assignee", From: sp("JIRAUSER1"), FromString: sp("Alice A"), To: sp("JIRAUSER2"), ToString: sp("Bob B")},
			{Field: "Deadline", From: sp("2026-01-01T10:00:00.000+0100"), FromString: sp("x")},
			{Field: "resolution", ToString: sp("Done")},
		}},
	}}}
	got, errs, err := m.HistoryChanges(context.Background(), is, func(h jira.History) bool { return h.Author.Name != "sync" })
	if err != nil || len(errs) != 0 {
		t.Fatalf("HistoryChanges: %v %v", err, errs)
	}
	if len(got) != 2 || got[0].History.ID != "1" || got[1].History.ID != "3" {
		t.Fatalf("got %d entries %+v, want histories 1 and 3", len(got), got)
	}
	fc := func(b, a wire.Value) wire.FieldChange { return wire.FieldChange{Before: b, After: a} }
	want1 := map[string]wire.FieldChange{
		"summary":    fc(wire.StringValue("one"), wire.StringValue("two")),
		"components": fc(wire.ListValue("UI"), wire.ListValue("API", "UI")),
		"sev":        fc(wire.NullValue(), wire.StringValue("sev2")),
	}
	want3 := map[string]wire.FieldChange{
		"components": fc(wire.ListValue("API", "UI"), wire.ListValue("API", "DB")),
		"platforms":  fc(wire.ListValue("Linux"), wire.ListValue("Linux", "Mac, Intel")),
		"assignee":   fc(wire.UserValue(wire.User{Name: "alice", Display: "Alice A"}), wire.UserValue(wire.User{Name: "bob", Display: "Bob B"})),
		"deadline":   fc(wire.StringValue("2026-01-01T09:00:00.000+0000"), wire.NullValue()),
	}
	for i, want := range []map[string]wire.FieldChange{want1, want3} {
		g := got[i].Fields
		if len(g) != len(want) {
			t.Errorf("entry %d: %d fields %v, want %d", i, len(g), g, len(want))
		}
		for k, w := range want {
			if !g[k].Before.Equal(w.Before) || !g[k].After.Equal(w.After) {
				t.Errorf("entry %d field %s = %v -> %v, want %v -> %v", i, k, g[k].Before, g[k].After, w.Before, w.After)
			}
		}
	}
	// An unmappable value fails only its entry.
	is.Changelog.Histories[1].Items[1].FromString = sp("S9") // entry 1's after value
	got, errs, err = m.HistoryChanges(context.Background(), is, func(h jira.History) bool { return h.Author.Name != "sync" })
	if err != nil || len(got) != 1 || got[0].History.ID != "3" || errs["1"] == nil {
		t.Fatalf("got %v errs %v err %v, want entry 3 and an error for 1", got, errs, err)
	}
	assertMappingErr(t, errs["1"], "SUP-1", "sev", "S9")
}

func TestAllValuesSkipsUnmappableLocalValues(t *testing.T) {
	t.Parallel()
	m := newMapping(t, testDef, people)
	is := &jira.Issue{Key: "SUP-9", Fields: map[string]json.RawMessage{
		"summary":           raw(`"x"`),
		"customfield_10003": raw(`{"value":"S9"}`),
		"customfield_10009": raw(`"incoming only"`),
	}}
	all, err := m.AllValues(context.Background(), is)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := all["sev"]; ok {
		t.Errorf("unmappable sev present: %v", all["sev"])
	}
	if !all["summary"].Equal(wire.StringValue("x")) || !all["product"].Equal(wire.StringValue("incoming only")) {
		t.Errorf("AllValues = %v", all)
	}
	if _, err := m.IssueValues(context.Background(), is); err == nil {
		t.Errorf("IssueValues accepted an unmappable value")
	}
}

type countingDir struct {
	dir
	byKey int
}

func (c *countingDir) UserByKey(ctx context.Context, k string) (jira.User, bool, error) {
	c.byKey++
	return c.dir.UserByKey(ctx, k)
}

func TestHistoryUserLookupsAreCached(t *testing.T) {
	t.Parallel()
	cd := &countingDir{dir: people}
	m := newMapping(t, testDef, cd)
	is := &jira.Issue{Key: "SUP-1", Fields: map[string]json.RawMessage{"assignee": raw(`{"name":"alice","key":"JIRAUSER1"}`)},
		Changelog: &jira.Changelog{Histories: []jira.History{
			{ID: "1", Items: []jira.HistoryItem{{Field: "assignee", From: sp("JIRAUSER2"), To: sp("JIRAUSER1")}}},
			{ID: "2", Items: []jira.HistoryItem{{Field: "assignee", From: sp("JIRAUSER1"), To: sp("JIRAUSER2")}}},
			{ID: "3", Items: []jira.HistoryItem{{Field: "assignee", From: sp("JIRAUSER2"), To: sp("JIRAUSER1")}}},
		}}}
	for range 3 {
		got, _, err := m.HistoryChanges(context.Background(), is, nil)
		if err != nil || len(got) != 3 {
			t.Fatalf("HistoryChanges = %v, %v", got, err)
		}
		if b := got[0].Fields["assignee"].Before; b.User().Name != "bob" {
			t.Fatalf("first before = %v, want bob", b)
		}
	}
	if cd.byKey != 2 {
		t.Errorf("%d key lookups, want 2 (one per person)", cd.byKey)
	}
	// Only the wanted entries are walked back to.
	cd.byKey = 0
	m2 := newMapping(t, testDef, cd)
	got, _, err := m2.HistoryChanges(context.Background(), is, func(h jira.History) bool { return h.ID == "3" })
	if err != nil || len(got) != 1 || cd.byKey != 1 {
		t.Errorf("walk to the newest entry: %d changes, %d lookups, %v", len(got), cd.byKey, err)
	}
}
