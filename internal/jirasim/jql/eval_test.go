package jql

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// corpus is a small site: ABC-1 .. ABC-10 and XYZ-1.
func corpus() []issue {
	u := func(name, display string) Value { return String(name, display, name+"@example.com") }
	return []issue{
		mk("ABC-1", 10001, "project", String("ABC", "Alpha", "10000"), "issuetype", "Bug", "status", "Open",
			"statuscategory", String("To Do", "new", "2"), "priority", "High", "labels", "red", "labels", "blue", "assignee", u("bob", "Bob Builder"),
			"reporter", u("alice", "Alice A"), "creator", u("alice", "Alice A"),
			"created", t0.Add(-48*time.Hour), "updated", t0, // exactly 10:11:00.000
			"summary", "Login page crashes on Safari", "description", "Steps: open the login page",
			"customfield_10010", 3.0, "customfield_10020", "red", "customfield_10030", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
			"customfield_10050", u("bob", "Bob Builder")),
		mk("ABC-2", 10002, "project", String("ABC", "Alpha", "10000"), "issuetype", "Task", "status", "In Progress",
			"priority", "Low", "labels", "green", "reporter", u("bob", "Bob Builder"), "creator", u("bob", "Bob Builder"),
			"created", t0.Add(-24*time.Hour), "updated", t0.Add(59*time.Second+999*time.Millisecond), // 10:11:59.999
			"summary", "Crash report export", "resolution", "Fixed", "customfield_10010", 8.0),
		mk("ABC-10", 10010, "project", String("ABC", "Alpha", "10000"), "issuetype", "Sub-task", "status", "Done",
			"parent", Issue("ABC-1", 10001), "assignee", u("alice", "Alice A"), "reporter", u("alice", "Alice A"),
			"created", t0.Add(-time.Hour), "updated", t0.Add(time.Minute), // 10:12
			"summary", "Write tests for login", "resolution", "Fixed", "customfield_10020", "blue"),
		mk("XYZ-1", 20001, "project", String("XYZ", "Xylophone", "10100"), "issuetype", "Bug", "status", "Open",
			"created", t0.Add(-72*time.Hour), "updated", t0.Add(-time.Millisecond), // 10:10:59.999
			"summary", "Logins are slow", "labels", "red"),
	}
}

func keysOf(t *testing.T, q *Query, docs []issue) string {
	t.Helper()
	var keys []string
	for _, d := range docs {
		ok, err := q.Match(d)
		if err != nil {
			t.Fatalf("Match(%s): %v", d.key, err)
		}
		if ok {
			keys = append(keys, d.key)
		}
	}
	return strings.Join(keys, ",")
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct{ q, want string }{
		{"", "ABC-1,ABC-2,ABC-10,XYZ-1"},
		{"project = ABC", "ABC-1,ABC-2,ABC-10"},
		{"project = abc", "ABC-1,ABC-2,ABC-10"},
		{`project = "Alpha"`, "ABC-1,ABC-2,ABC-10"},
		{"project = 10100", "XYZ-1"},
		{"project != ABC", "XYZ-1"},
		{"project in (ABC, XYZ)", "ABC-1,ABC-2,ABC-10,XYZ-1"},
		{"project not in (ABC)", "XYZ-1"},
		// precedence: NOT > AND > OR
		{"project = XYZ OR project = ABC AND status = Done", "ABC-10,XYZ-1"},
		{"(project = XYZ OR project = ABC) AND status = Done", "ABC-10"},
		{"NOT project = ABC AND status = Open", "XYZ-1"},
		{"NOT (project = ABC AND status = Open)", "ABC-2,ABC-10,XYZ-1"},
		{"not not project = XYZ", "XYZ-1"},
		{"status = Open or status = Done and issuetype = Bug", "ABC-1,XYZ-1"},
		{"!status = Open", "ABC-2,ABC-10"},
		// issue keys and ids
		{"key = ABC-2", "ABC-2"},
		{"issuekey = abc-2", "ABC-2"},
		{"id = 10010", "ABC-10"},
		{"key in (ABC-1, XYZ-1, 10002)", "ABC-1,ABC-2,XYZ-1"},
		{"key not in (ABC-1)", "ABC-2,ABC-10,XYZ-1"},
		{"key != ABC-1", "ABC-2,ABC-10,XYZ-1"},
		{"key > ABC-1", "ABC-2,ABC-10"},
		{"key >= ABC-2", "ABC-2,ABC-10"},
		{"key < ABC-10", "ABC-1,ABC-2"},
		{"key <= ABC-1", "ABC-1"},
		{"id > 10002", "ABC-10,XYZ-1"},
		{"parent = ABC-1", "ABC-10"},
		{"parent = 10001", "ABC-10"},
		// multi-valued labels: any value
		{"labels = red", "ABC-1,XYZ-1"},
		{"labels = blue", "ABC-1"},
		{"labels != red", "ABC-2"},
		{"labels in (blue, green)", "ABC-1,ABC-2"},
		{"labels not in (red)", "ABC-2"},
		{"labels is EMPTY", "ABC-10"},
		{"labels is not empty", "ABC-1,ABC-2,XYZ-1"},
		{"labels in (green, EMPTY)", "ABC-2,ABC-10"},
		{"labels = EMPTY", "ABC-10"},
		{"labels != EMPTY", "ABC-1,ABC-2,XYZ-1"},
		// users: username, display name, e-mail; != and NOT IN skip empty
		{"assignee = bob", "ABC-1"},
		{`assignee = "Bob Builder"`, "ABC-1"},
		{`assignee = "alice@example.com"`, "ABC-10"},
		{"assignee != bob", "ABC-10"},
		{"assignee not in (bob)", "ABC-10"},
		{"assignee is EMPTY", "ABC-2,XYZ-1"},
		{"assignee is null", "ABC-2,XYZ-1"},
		{"assignee = currentUser()", "ABC-1"},
		{"reporter in (currentUser())", "ABC-2"},
		{"creator = alice and reporter = alice", "ABC-1"},
		{"creator = alice or reporter = alice", "ABC-1,ABC-10"},
		{"creator is empty", "ABC-10,XYZ-1"},
		{"assignee in (alice, EMPTY)", "ABC-2,ABC-10,XYZ-1"},
		{"resolution = Unresolved", "ABC-1,XYZ-1"},
		{"resolution is not empty", "ABC-2,ABC-10"},
		{"resolution = Fixed", "ABC-2,ABC-10"},
		{"priority in (High, Low)", "ABC-1,ABC-2"},
		{"type = Bug", "ABC-1,XYZ-1"},
		{`issuetype = "sub-task"`, "ABC-10"},
		{`status = "in progress"`, "ABC-2"},
		{`statusCategory = "To Do"`, "ABC-1"},
		{`statusCategory != new`, ""},
		// dates at minute precision; t0 is 2024-01-02 10:11 UTC
		{`updated >= "2024/01/02 10:11"`, "ABC-1,ABC-2,ABC-10"},
		{`updated >= "2024-01-02 10:11"`, "ABC-1,ABC-2,ABC-10"},
		{`updated > "2024/01/02 10:11"`, "ABC-10"},
		{`updated < "2024/01/02 10:11"`, "XYZ-1"},
		{`updated <= "2024/01/02 10:11"`, "ABC-1,ABC-2,XYZ-1"},
		{`updated = "2024/01/02 10:11"`, "ABC-1,ABC-2"},
		{`updated != "2024/01/02 10:11"`, "ABC-10,XYZ-1"},
		{`updated in ("2024/01/02 10:12", "2024/01/02 10:10")`, "ABC-10,XYZ-1"},
		{`created >= "2024/01/01"`, "ABC-2,ABC-10"},
		{`created >= 2024-01-01 and created < 2024-01-02`, "ABC-2"},
		{`created < "2023/12/31 10:11"`, "XYZ-1"},
		{`updated >= 1704190260000`, "ABC-1,ABC-2,ABC-10"},
		{`updated > 1704190260000`, "ABC-10"},
		{`resolved is empty`, "ABC-1,ABC-2,ABC-10,XYZ-1"},
		// relative dates against Options.Now = t0 + 5m
		{`updated >= -5m`, "ABC-1,ABC-2,ABC-10"},
		{`updated >= "-5m"`, "ABC-1,ABC-2,ABC-10"},
		{`updated >= -4m`, "ABC-10"},
		{`created >= -1h`, ""},
		{`created >= -2h`, "ABC-10"},
		{`created >= -2d`, "ABC-2,ABC-10"},
		{`created >= "-2d 5m"`, "ABC-1,ABC-2,ABC-10"},
		{`created > -1w`, "ABC-1,ABC-2,ABC-10,XYZ-1"},
		{`created > "-1d 1h"`, "ABC-2,ABC-10"},
		{`created > "-1d1h" and created < "-1d 2m"`, "ABC-2"},
		{`updated < now()`, "ABC-1,ABC-2,ABC-10,XYZ-1"},
		{`updated > startOfDay()`, "ABC-1,ABC-2,ABC-10,XYZ-1"},
		{`created < startOfDay(-1d)`, "ABC-1,XYZ-1"},
		{`created > endOfDay(-1d)`, "ABC-10"},
		// custom fields by id, cf[] and display name
		{"cf[10010] > 3", "ABC-2"},
		{"customfield_10010 >= 3", "ABC-1,ABC-2"},
		{`"Story Points" = 8`, "ABC-2"},
		{`"story points" in (3, 8)`, "ABC-1,ABC-2"},
		{`"Story Points" != 3`, "ABC-2"},
		{`cf[10010] is empty`, "ABC-10,XYZ-1"},
		{`Team = red`, "ABC-1"},
		{`cf[10020] in (red, blue)`, "ABC-1,ABC-10"},
		{`"Go Live" = "2024/01/02"`, "ABC-1"},
		{`"Go Live" = "2024/01/02 23:59"`, "ABC-1"},
		{`"Go Live" > "2024/01/01"`, "ABC-1"},
		{`"Go Live" < "2024/01/02"`, ""},
		{`Approver = currentUser()`, "ABC-1"},
		// text search
		{`summary ~ login`, "ABC-1,ABC-10,XYZ-1"},
		{`summary ~ logins`, "ABC-1,ABC-10,XYZ-1"},
		{`summary ~ "crash export"`, "ABC-2"},
		{`summary ~ "LOGIN page"`, "ABC-1"},
		{`summary ~ "login*"`, "ABC-1,ABC-10,XYZ-1"},
		{`summary ~ "\"page crashes\""`, "ABC-1"},
		{`summary ~ "\"crashes page\""`, ""},
		{`summary !~ crash`, "ABC-10,XYZ-1"},
		{`description ~ steps`, "ABC-1"},
		{`description !~ steps`, ""},
		{`description is empty`, "ABC-2,ABC-10,XYZ-1"},
	}
	opts := testOptions()
	opts.Now = func() time.Time { return t0.Add(5 * time.Minute) }
	opts.Validator = nil
	docs := corpus()
	for _, tt := range tests {
		q, err := ParseWith(tt.q, opts)
		if err != nil {
			t.Errorf("ParseWith(%q): %v", tt.q, err)
			continue
		}
		if got := keysOf(t, q, docs); got != tt.want {
			t.Errorf("%s\n got %q\nwant %q", tt.q, got, tt.want)
		}
	}
}

func TestAnonymousCurrentUser(t *testing.T) {
	t.Parallel()
	q, err := ParseWith("assignee = currentUser() or assignee in (currentUser())", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, q, corpus()); got != "" {
		t.Errorf("anonymous currentUser() matched %q", got)
	}
}

func TestLocation(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CET", 3600)
	// t0 is 10:11 UTC = 11:11 CET.
	tests := []struct {
		q    string
		loc  *time.Location
		want string
	}{
		{`updated >= "2024/01/02 11:11"`, berlin, "ABC-1,ABC-2,ABC-10"},
		{`updated >= "2024/01/02 11:11"`, nil, ""},
		{`updated >= "2024/01/02 10:11"`, nil, "ABC-1,ABC-2,ABC-10"},
		{`created >= "2024/01/01"`, berlin, "ABC-2,ABC-10"},
	}
	for _, tt := range tests {
		q, err := ParseWith(tt.q, Options{Location: tt.loc})
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOf(t, q, corpus()); got != tt.want {
			t.Errorf("%s in %v: got %q, want %q", tt.q, tt.loc, got, tt.want)
		}
	}
}

func TestMatchWrongKind(t *testing.T) {
	t.Parallel()
	q, err := Parse(`updated > -1d`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Match(mk("ABC-1", 1, "updated", "yesterday")); err == nil {
		t.Error("Match accepted a string for a date field")
	}
}

func TestOrder(t *testing.T) {
	t.Parallel()
	tests := []struct{ q, want string }{
		{"", "XYZ-1,ABC-10,ABC-2,ABC-1"},
		{"ORDER BY key", "ABC-1,ABC-2,ABC-10,XYZ-1"},
		{"order by issuekey desc", "XYZ-1,ABC-10,ABC-2,ABC-1"},
		{"ORDER BY updated ASC", "XYZ-1,ABC-1,ABC-2,ABC-10"},
		{"ORDER BY updated DESC", "ABC-10,ABC-2,ABC-1,XYZ-1"},
		{"ORDER BY created", "XYZ-1,ABC-1,ABC-2,ABC-10"},
		{"ORDER BY project DESC, key ASC", "XYZ-1,ABC-1,ABC-2,ABC-10"},
		{"ORDER BY status, created DESC", "ABC-10,ABC-2,ABC-1,XYZ-1"},
		{"ORDER BY status, created ASC", "ABC-10,ABC-2,XYZ-1,ABC-1"},
		// empty values last ascending, first descending
		{"ORDER BY assignee", "ABC-10,ABC-1,ABC-2,XYZ-1"},
		{"ORDER BY assignee DESC", "ABC-2,XYZ-1,ABC-1,ABC-10"},
		{"ORDER BY cf[10010] desc, key", "ABC-10,XYZ-1,ABC-2,ABC-1"},
		{`ORDER BY "Story Points", key desc`, "ABC-1,ABC-2,XYZ-1,ABC-10"},
		// ties fall back to id ascending
		{"ORDER BY issuetype", "ABC-1,XYZ-1,ABC-10,ABC-2"},
		{"ORDER BY labels, summary", "ABC-2,ABC-1,XYZ-1,ABC-10"},
	}
	for _, tt := range tests {
		q, err := ParseWith(tt.q, testOptions())
		if err != nil {
			t.Errorf("ParseWith(%q): %v", tt.q, err)
			continue
		}
		docs := corpus()
		slices.SortStableFunc(docs, func(a, b issue) int { return q.Compare(a, b) })
		var keys []string
		for _, d := range docs {
			keys = append(keys, d.key)
		}
		if got := strings.Join(keys, ","); got != tt.want {
			t.Errorf("%s\n got %s\nwant %s", tt.q, got, tt.want)
		}
		if len(docs) > 1 && q.Less(docs[1], docs[0]) {
			t.Errorf("%s: Less disagrees with Compare", tt.q)
		}
	}
}

func TestOrderBy(t *testing.T) {
	t.Parallel()
	q, err := ParseWith(`project = ABC ORDER BY updated ASC, cf[10010] DESC, id`, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := []SortKey{{"updated", false}, {"customfield_10010", true}, {"key", false}}
	if got := q.OrderBy(); !slices.Equal(got, want) {
		t.Errorf("OrderBy() = %v, want %v", got, want)
	}
	q, _ = Parse("project = ABC")
	if got := q.OrderBy(); len(got) != 0 {
		t.Errorf("OrderBy() without ORDER BY = %v", got)
	}
}
