package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const examplePath = "../../deploy/sync.example.yaml"

func TestExampleSyncFileLoads(t *testing.T) {
	t.Parallel()
	d, err := LoadSyncFile(examplePath)
	if err != nil {
		t.Fatalf("LoadSyncFile: %v", err)
	}
	if d.Name != "partner-support" || d.Project != "SUP" || d.Version != 1 {
		t.Errorf("header: %+v", d)
	}
	if got := d.IssueTypes.ByLocal()["Sub-task"]; got != "subtask" {
		t.Errorf("issue type Sub-task -> %q", got)
	}
	if got := d.Statuses.ByAlias()["in-progress"]; got != "In Progress" {
		t.Errorf("status in-progress <- %q", got)
	}
	byAlias := map[string]FieldMap{}
	for _, f := range d.Fields {
		byAlias[f.Alias] = f
	}
	if f := byAlias["priority"]; f.Mode != ValuesCorrelation || f.Values.ByLocal()["High"] != "p2" || f.Kind != KindPriority {
		t.Errorf("priority: %+v", f)
	}
	if f := byAlias["customer-ref"]; f.Direction != DirOutgoing || !f.Direction.Sends() || f.Direction.Receives() {
		t.Errorf("customer-ref: %+v", f)
	}
	if f := byAlias["product"]; f.Mode != ValuesToText || f.Direction != DirIncoming {
		t.Errorf("product: %+v", f)
	}
	if f := byAlias["summary"]; f.Mode != ValuesPassthrough || f.Direction != DirBoth || f.Line == 0 {
		t.Errorf("summary: %+v", f)
	}
	if f := byAlias["severity"]; f.Values.ByLocal()["1 - Critical"] != "sev1" {
		t.Errorf("severity: %+v", f)
	}
	wantUsers := UsersPolicy{Mode: UserByEmail, Fallback: UserText, TextField: "customfield_10050",
		CommentAuthor: AuthorPrefix, DisplaySuffix: "(Partner Jira)", Line: d.Users.Line}
	if d.Users != wantUsers {
		t.Errorf("users = %+v, want %+v", d.Users, wantUsers)
	}
	if !d.Comments.Enabled || d.Comments.Restricted != RestrictedMap || len(d.Comments.Visibility) != 2 ||
		d.Comments.Visibility[0].Type != "role" || d.Comments.Visibility[0].Value != "Developers" || d.Comments.Visibility[1].Type != "internal" {
		t.Errorf("comments: %+v", d.Comments)
	}
	a := d.Attachments
	if !a.Enabled || a.MaxSizeMB != 20 || !a.NoticeOnSkip || len(a.MIMETypes) != 3 || len(a.FilenamePatterns) != 5 {
		t.Errorf("attachments: %+v", a)
	}
	if !d.Watchers.Enabled || !d.Links.Enabled || d.Links.Types.ByLocal()["Blocks"] != "blocks" || !d.Subtasks.Enabled {
		t.Errorf("switches: %+v %+v %+v", d.Watchers, d.Links, d.Subtasks)
	}
}

func TestParseSyncMinimalDefaults(t *testing.T) {
	t.Parallel()
	d, err := ParseSync([]byte("name: s\nproject: AB\nissue_types: {Bug: bug}\nwatchers: true\nlinks:\n"))
	if err != nil {
		t.Fatalf("ParseSync: %v", err)
	}
	if d.Users.Mode != UserByUsername || d.Users.Fallback != UserError || d.Users.CommentAuthor != AuthorPrefix {
		t.Errorf("users defaults: %+v", d.Users)
	}
	if d.Comments.Enabled || d.Attachments.Enabled || d.Subtasks.Enabled {
		t.Errorf("absent sections must be disabled: %+v %+v %+v", d.Comments, d.Attachments, d.Subtasks)
	}
	if !d.Watchers.Enabled || !d.Links.Enabled || d.Links.Types != nil {
		t.Errorf("present sections must be enabled: %+v %+v", d.Watchers, d.Links)
	}
	if d.Attachments.MaxSizeMB != 10 || !d.Attachments.NoticeOnSkip {
		t.Errorf("attachment defaults: %+v", d.Attachments)
	}
}

func TestParseSyncErrors(t *testing.T) {
	t.Parallel()
	head := "name: s\nproject: AB\nissue_types: {Bug: bug}\n" // lines 1-3
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"bad direction", head + "fields:\n  - local: a\n    alias: a\n  - local: b\n    alias: b\n  - local: c\n    alias: c\n    direction: sideways\n",
			[]string{`line 11: fields[2].direction: "sideways" is not one of both, outgoing, incoming`}},
		{"unknown top key", head + "colour: red\n", []string{"line 4: colour: unknown key; known keys are attachments, comments,"}},
		{"unknown nested key", head + "fields:\n  - local: a\n    alias: a\n    dirction: both\n", []string{"line 7: fields[0].dirction: unknown key"}},
		{"duplicate alias", head + "statuses:\n  Open: open\n  New: open\n", []string{`line 6: statuses.New: duplicate alias "open" (first at line 5)`}},
		{"duplicate local", head + "statuses:\n  Open: open\n  Open: new\n", []string{`line 6: statuses.Open: duplicate local name "Open" (first at line 5)`}},
		{"duplicate field alias and local", head + "fields:\n  - {local: a, alias: x}\n  - {local: a, alias: x}\n",
			[]string{`line 6: fields[1].local: duplicate local field "a" (first at line 5)`, `line 6: fields[1].alias: duplicate alias "x" (first at line 5)`}},
		{"missing required", "fields: []\n", []string{"line 1: name: is required", "line 1: project: is required", "line 1: issue_types: is required"}},
		{"bad project", "name: s\nproject: sup\nissue_types: {Bug: bug}\n", []string{`line 2: project: "sup" is not a Jira project key`}},
		{"bad name", "name: 'a b'\nproject: AB\nissue_types: {Bug: bug}\n", []string{`line 1: name: "a b" is not a sync name`}},
		{"field needs local and alias", head + "fields:\n  - direction: both\n", []string{"line 5: fields[0].local: is required", "line 5: fields[0].alias: is required"}},
		{"correlation without values", head + "fields:\n  - {local: a, alias: a, mode: correlation}\n", []string{"line 5: fields[0].values: mode correlation needs values"}},
		{"passthrough with values", head + "fields:\n  - local: a\n    alias: a\n    mode: passthrough\n    values: {x: y}\n", []string{"line 8: fields[0].values: values are not used with mode passthrough"}},
		{"correlation with empty values", head + "fields:\n  - {local: a, alias: a, mode: correlation, values: {}}\n", []string{"line 5: fields[0].values: mode correlation needs values"}},
		{"bad kind", head + "fields:\n  - {local: a, alias: a, kind: blob}\n", []string{`fields[0].kind: "blob" is not one of`}},
		{"fixed without user", head + "users:\n  mode: fixed\n", []string{"line 5: users.fixed_user: is required"}},
		{"fallback with text mode", head + "users:\n  mode: text\n  fallback: drop\n", []string{"line 6: users.fallback: is only used with mode by_username or by_email"}},
		{"bad bool", head + "watchers:\n  enabled: yes\n", []string{`line 5: watchers.enabled: "yes" is not true or false`}},
		{"restricted map without visibility", head + "comments:\n  restricted: map\n", []string{"line 5: comments.visibility: restricted: map needs a visibility map"}},
		{"bad visibility", head + "comments:\n  restricted: map\n  visibility: {team:x: t}\n", []string{`comments.visibility.team:x: "team:x" is not role:NAME, group:NAME or internal`}},
		{"bad attachments", head + "attachments:\n  max_size_mb: 0\n  mime_types: [pdf]\n  filename_patterns: ['[']\n",
			[]string{"line 5: attachments.max_size_mb: 0 is out of range", `line 6: attachments.mime_types[0]: "pdf" is not a MIME type`, `line 7: attachments.filename_patterns[0]: "[" is not a file name pattern`}},
		{"wrong shape", head + "fields: {a: b}\nstatuses: [a]\n", []string{"line 4: fields: want a list of fields", "line 5: statuses: want a mapping of local name: alias, got a list"}},
		{"syntax error", "name: [\n", []string{"line 1: did not find expected node content"}},
		{"tab indentation", "name: s\n\tproject: AB\n", []string{"line 2: found a tab character"}},
		{"anchors", head + "statuses: &s {Open: open}\nwatchers: *s\n", []string{"line 4: statuses: YAML anchors and aliases"}},
		{"two documents", head + "---\nname: t\n", []string{"line 4: only one document is allowed"}},
		{"empty", "", []string{"the file is empty"}},
		{"not a mapping", "- a\n", []string{"line 1: want a mapping of keys, got a list"}},
		{"version", "version: 2\n" + head, []string{"line 1: version: version 2 is not supported"}},
		{"empty alias", head + "statuses:\n  Open: ''\n", []string{`line 5: statuses.Open: alias is empty`}},
		{"every problem at once", "name: s\nproject: x\nissue_types: {Bug: bug}\nwatchers: maybe\nfoo: 1\n",
			[]string{"line 2: project", `line 4: watchers: "maybe" is not true or false`, "line 5: foo: unknown key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := ParseSync([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseSync succeeded: %+v", d)
			}
			if d != nil {
				t.Errorf("got a SyncDef with an error")
			}
			var se *SyncError
			if !errors.As(err, &se) {
				t.Fatalf("error is %T, want *SyncError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadSyncFileNamesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "sync.yaml")
	if err := os.WriteFile(p, []byte("name: s\nproject: AB\nissue_types: {Bug: bug}\nfields:\n  - {local: a, alias: a, direction: sideways}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSyncFile(p)
	want := p + `:5: fields[0].direction: "sideways" is not one of both, outgoing, incoming`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if _, err := LoadSyncFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "read sync definition") {
		t.Errorf("missing file: %v", err)
	}
}

func TestAttachmentsAllows(t *testing.T) {
	t.Parallel()
	a := Attachments{MaxSizeMB: 1, MIMETypes: []string{"image/*", "application/pdf"}, FilenamePatterns: []string{"*.png", "*.pdf"}}
	cases := []struct {
		name, mime string
		size       int64
		want       bool
	}{
		{"a.png", "image/png", 100, true},
		{"A.PDF", "application/pdf; charset=binary", 100, true},
		{"a.png", "image/png", 2 << 20, false},
		{"a.exe", "image/png", 100, false},
		{"a.png", "text/plain", 100, false},
	}
	for _, tc := range cases {
		if got := a.Allows(tc.name, tc.mime, tc.size); got != tc.want {
			t.Errorf("Allows(%q, %q, %d) = %v, want %v", tc.name, tc.mime, tc.size, got, tc.want)
		}
	}
	if !(Attachments{MaxSizeMB: 1}).Allows("x", "y/z", 5) {
		t.Error("no filters must allow")
	}
}

func TestAliasMapBothWays(t *testing.T) {
	t.Parallel()
	m := AliasMap{{Local: "A", Alias: "a"}, {Local: "B", Alias: "b"}}
	if !reflect.DeepEqual(m.ByLocal(), map[string]string{"A": "a", "B": "b"}) ||
		!reflect.DeepEqual(m.ByAlias(), map[string]string{"a": "A", "b": "B"}) {
		t.Errorf("maps: %v %v", m.ByLocal(), m.ByAlias())
	}
}

func FuzzParseSync(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("name: s\nproject: AB\nissue_types: {Bug: bug}\n"))
	f.Add([]byte("fields:\n  - {local: a, alias: a, values: {x: y}}\ncomments: {restricted: map, visibility: {internal: i}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("---\n...\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		d, err := ParseSync(data)
		if err != nil {
			if d != nil {
				t.Fatal("SyncDef returned with an error")
			}
			var se *SyncError
			if !errors.As(err, &se) || len(se.Problems) == 0 {
				t.Fatalf("error %T %v is not a SyncError with problems", err, err)
			}
			return
		}
		// A definition that parses has unique names on both sides.
		for _, m := range []AliasMap{d.IssueTypes, d.Statuses, d.Links.Types} {
			if len(m.ByLocal()) != len(m) || len(m.ByAlias()) != len(m) {
				t.Fatalf("duplicates in %v", m)
			}
		}
		seen := map[string]bool{}
		for _, fm := range d.Fields {
			if fm.Local == "" || fm.Alias == "" || seen["a:"+fm.Alias] || seen["l:"+fm.Local] {
				t.Fatalf("bad or duplicate field %+v", fm)
			}
			seen["a:"+fm.Alias], seen["l:"+fm.Local] = true, true
		}
		if d.Name == "" || d.Project == "" {
			t.Fatalf("missing name or project: %+v", d)
		}
	})
}
