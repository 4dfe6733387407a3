package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// SyncDef is a parsed, validated sync definition file: which issues are
// synced and how local names translate to the aliases both sides share on
// the wire. See docs/sync-definition.md.
type SyncDef struct {
	Version int    // format version; 1
	Name    string // sync name, shown in mail subjects and the status page
	Project string // local Jira project key
	// JQL narrows the issues of Project that are synced; empty means all.
	// The detector combines it as: project = Project AND (JQL).
	JQL         string
	IssueTypes  AliasMap // local issue type name -> alias
	Statuses    AliasMap // local status name -> alias
	Fields      []FieldMap
	Users       UsersPolicy
	Comments    Comments
	Attachments Attachments
	Watchers    Switch
	Links       Links
	Subtasks    Switch
	// Deletes says what this side does when the partner deletes its copy
	// of a synced issue; default DeletesKeep.
	Deletes DeleteMode
}

// DeleteMode says what happens here when the partner issue of a synced
// issue is deleted on the other side. Each site chooses for its own
// issues: the switch of the side that would lose an issue decides.
type DeleteMode string

// Delete modes.
const (
	// DeletesKeep (the default, as Backbone): the issue here stays; the
	// pair is dissolved on both sides, the sync user comments that the
	// partner issue was deleted, and the issue is no longer synced.
	DeletesKeep DeleteMode = "keep"
	// DeletesPropagate deletes the issue here too (with its sub-tasks).
	DeletesPropagate DeleteMode = "propagate"
)

// AliasPair maps one local name to its alias. Line is where it was
// written, for messages at run time.
type AliasPair struct {
	Local string
	Alias string
	Line  int
}

// AliasMap is an ordered list of pairs; neither side repeats.
type AliasMap []AliasPair

// ByLocal returns local name -> alias.
func (m AliasMap) ByLocal() map[string]string {
	out := make(map[string]string, len(m))
	for _, p := range m {
		out[p.Local] = p.Alias
	}
	return out
}

// ByAlias returns alias -> local name.
func (m AliasMap) ByAlias() map[string]string {
	out := make(map[string]string, len(m))
	for _, p := range m {
		out[p.Alias] = p.Local
	}
	return out
}

// Direction says which way a field's changes travel.
type Direction string

// Field directions.
const (
	DirBoth     Direction = "both"
	DirOutgoing Direction = "outgoing" // local changes are sent; the peer's are ignored
	DirIncoming Direction = "incoming" // the peer's changes are applied; local ones are not sent
)

// Sends reports whether local changes of the field are sent.
func (d Direction) Sends() bool { return d == DirBoth || d == DirOutgoing }

// Receives reports whether the peer's changes of the field are applied.
func (d Direction) Receives() bool { return d == DirBoth || d == DirIncoming }

// FieldKind is a hint of a field's type; empty means "ask Jira".
type FieldKind string

// Field kinds.
const (
	KindAuto        FieldKind = ""
	KindText        FieldKind = "text"
	KindNumber      FieldKind = "number"
	KindDate        FieldKind = "date"
	KindDateTime    FieldKind = "datetime"
	KindSelect      FieldKind = "select"
	KindMultiSelect FieldKind = "multiselect"
	KindUser        FieldKind = "user"
	KindPriority    FieldKind = "priority"
	KindLabels      FieldKind = "labels"
	KindComponents  FieldKind = "components"
)

// ValueMode says how a field's values are carried.
type ValueMode string

// Value modes (Backbone's names).
const (
	// ValuesPassthrough sends values as they are; both sides use the same.
	ValuesPassthrough ValueMode = "passthrough"
	// ValuesCorrelation translates each value through Map; a value
	// missing from Map is an error that parks the issue.
	ValuesCorrelation ValueMode = "correlation"
	// ValuesToText sends values as text (through Map when it has the
	// value), for a text field on the other side.
	ValuesToText ValueMode = "totext"
)

// FieldMap maps one local field to its alias.
type FieldMap struct {
	Local     string // field id (customfield_10010, priority) or name (Severity)
	Alias     string
	Direction Direction // default both
	Kind      FieldKind // default auto
	Mode      ValueMode // default passthrough, or correlation when Values is given
	Values    AliasMap  // local value -> alias
	Line      int
}

// UserMode says how a person on one side becomes a user on the other.
type UserMode string

// User modes; UserError only as a fallback.
const (
	UserByUsername UserMode = "by_username" // same username on both sides
	UserByEmail    UserMode = "by_email"    // same e-mail address on both sides
	UserFixed      UserMode = "fixed"       // always FixedUser
	UserText       UserMode = "text"        // "Alice Smith (Partner Jira)" as text
	UserDrop       UserMode = "drop"        // the value is left out
	UserError      UserMode = "error"       // park the change (fallback only)
)

// CommentAuthor says how the author of a synced comment is shown.
type CommentAuthor string

// Comment author styles.
const (
	AuthorPrefix CommentAuthor = "prefix" // "Alice Smith (Partner Jira): " before the body
	AuthorMap    CommentAuthor = "map"    // the comment is posted as the mapped user where Jira allows, else prefix
)

// UsersPolicy is how people are carried (user fields, comment authors,
// watchers).
type UsersPolicy struct {
	Mode UserMode // default by_username
	// Fallback applies when by_username or by_email finds nobody; default
	// error (the change is parked, never silently dropped).
	Fallback  UserMode
	FixedUser string // for mode or fallback fixed
	// TextField is the local field that receives users as text (mode or
	// fallback text); empty means the mapped field itself, which must then
	// be a text field.
	TextField     string
	CommentAuthor CommentAuthor // default prefix
	DisplaySuffix string        // default "(Partner Jira)"
	Line          int
}

// Switch is a feature that is on or off.
type Switch struct {
	Enabled bool
	Line    int
}

// RestrictedComments says what happens to comments with a visibility
// restriction (role, group, or Jira Service Management internal).
type RestrictedComments string

// Restricted comment handling.
const (
	RestrictedSkip RestrictedComments = "skip" // never sent (default)
	RestrictedMap  RestrictedComments = "map"  // sent with the mapped visibility; unmapped ones skipped
)

// Visibility is one local comment restriction and its alias. Type is
// "role", "group" or "internal" (Jira Service Management; Value empty).
type Visibility struct {
	Type  string
	Value string
	Alias string
	Line  int
}

// Comments configures comment sync.
type Comments struct {
	Switch
	Restricted RestrictedComments
	Visibility []Visibility
}

// Attachments configures attachment sync.
type Attachments struct {
	Switch
	MaxSizeMB        int      // default 10
	MIMETypes        []string // "image/png", "image/*"; empty means all
	FilenamePatterns []string // path.Match patterns; empty means all
	// NoticeOnSkip adds a comment by the sync user when an attachment is
	// not sent (too large, filtered); default true.
	NoticeOnSkip bool
}

// Allows reports whether an attachment passes the size, type and name
// filters.
func (a Attachments) Allows(name, mimeType string, size int64) bool {
	if size > int64(a.MaxSizeMB)<<20 {
		return false
	}
	if len(a.MIMETypes) > 0 {
		ok := false
		mt := strings.ToLower(strings.TrimSpace(strings.SplitN(mimeType, ";", 2)[0]))
		for _, p := range a.MIMETypes {
			if m, _ := path.Match(strings.ToLower(p), mt); m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(a.FilenamePatterns) > 0 {
		for _, p := range a.FilenamePatterns {
			if m, _ := path.Match(strings.ToLower(p), strings.ToLower(name)); m {
				return true
			}
		}
		return false
	}
	return true
}

// Links configures issue link sync.
type Links struct {
	Switch
	// Types maps local link type names to aliases; empty means link types
	// travel by name.
	Types AliasMap
}

// SyncProblem is one problem in a sync definition.
type SyncProblem struct {
	Line int
	Path string // e.g. fields[2].direction
	Msg  string
}

// SyncError lists every problem found in a sync definition.
type SyncError struct {
	File     string // empty for ParseSync
	Problems []SyncProblem
}

func (e *SyncError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			fmt.Fprintf(&b, "%s:%d: ", e.File, p.Line)
		} else {
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		if p.Path != "" {
			b.WriteString(p.Path + ": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// maxSyncFile bounds what LoadSyncFile reads; a real file is a few KiB.
const maxSyncFile = 1 << 20

// LoadSyncFile reads and parses a sync definition file. Problems are a
// *SyncError whose lines start with path:line.
func LoadSyncFile(name string) (*SyncDef, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read sync definition: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSyncFile+1))
	if err != nil {
		return nil, fmt.Errorf("read sync definition %s: %w", name, err)
	}
	if len(data) > maxSyncFile {
		return nil, fmt.Errorf("read sync definition %s: larger than %d bytes", name, maxSyncFile)
	}
	def, err := ParseSync(data)
	var se *SyncError
	if errors.As(err, &se) {
		se.File = name
	}
	return def, err
}

// ParseSync parses and validates a sync definition. Every problem is
// reported at once in a *SyncError, each with its line.
func ParseSync(data []byte) (*SyncDef, error) {
	p := &syncParser{}
	root, err := decodeYAML(data)
	if err != nil {
		line, msg := yamlErrorLine(err)
		p.add(line, "", "%s", msg)
		return nil, p.err()
	}
	def := p.parse(root)
	if err := p.err(); err != nil {
		return nil, err
	}
	return def, nil
}

// decodeYAML reads exactly one YAML document into a node tree. yaml.v3
// reports its own errors as values, but a recover guards against any
// panic on hostile input, so a bad file is always an error.
func decodeYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: cannot parse the file (%v)", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty; see deploy/sync.example.yaml")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: only one document is allowed (remove the extra ---)", extra.Line)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return &doc, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 1, strings.TrimPrefix(msg, "yaml: ")
}

type syncParser struct {
	problems []SyncProblem
}

func (p *syncParser) add(line int, path, format string, args ...any) {
	p.problems = append(p.problems, SyncProblem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *syncParser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
	return &SyncError{Problems: p.problems}
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// mapping walks a mapping node. Each known key's handler receives its value;
// unknown and repeated keys are problems. It returns false when n is not a
// mapping (null counts as an empty mapping).
func (p *syncParser) mapping(n *yaml.Node, at string, handlers map[string]func(v *yaml.Node, path string)) bool {
	if isNull(n) {
		return true
	}
	if !p.noAlias(n, at) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, at, "want a mapping of keys, got %s", describe(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, at, "keys must be plain names")
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			p.add(k.Line, join(at, k.Value), "repeated key (first at line %d)", prev)
			continue
		}
		seen[k.Value] = k.Line
		h, ok := handlers[k.Value]
		if !ok {
			p.add(k.Line, join(at, k.Value), "unknown key; known keys are %s", keyList(handlers))
			continue
		}
		h(v, join(at, k.Value))
	}
	return true
}

func keyList(h map[string]func(*yaml.Node, string)) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// noAlias rejects YAML anchors and aliases: they make errors hard to place
// and invite expansion bombs, and a sync file does not need them.
func (p *syncParser) noAlias(n *yaml.Node, at string) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		p.add(n.Line, at, "YAML anchors and aliases (& and *) are not supported; write the value out")
		return false
	}
	return true
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// str reads a scalar as a string (numbers and booleans as written).
func (p *syncParser) str(n *yaml.Node, at string) (string, bool) {
	if !p.noAlias(n, at) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, at, "want a single value, got %s", describe(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

func (p *syncParser) boolean(n *yaml.Node, at string, dst *bool) {
	s, ok := p.str(n, at)
	if !ok {
		return
	}
	switch s {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		p.add(n.Line, at, "%q is not true or false", s)
	}
}

func (p *syncParser) integer(n *yaml.Node, at string, dst *int) {
	s, ok := p.str(n, at)
	if !ok {
		return
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		p.add(n.Line, at, "%q is not a whole number", s)
		return
	}
	*dst = v
}

// oneOf reads an enumerated value.
func oneOf[T ~string](p *syncParser, n *yaml.Node, at string, dst *T, allowed ...T) {
	s, ok := p.str(n, at)
	if !ok {
		return
	}
	for _, a := range allowed {
		if T(s) == a {
			*dst = a
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	p.add(n.Line, at, "%q is not one of %s", s, strings.Join(names, ", "))
}

func (p *syncParser) strings(n *yaml.Node, at string) []string {
	if isNull(n) || !p.noAlias(n, at) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, at, "want a list, got %s", describe(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		if s, ok := p.str(item, fmt.Sprintf("%s[%d]", at, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

// name checks a local name or alias: non-empty, no surrounding spaces or
// control characters, at most 255 bytes.
func (p *syncParser) name(line int, at, what, s string) bool {
	switch {
	case s == "":
		p.add(line, at, "%s is empty", what)
	case strings.TrimSpace(s) != s:
		p.add(line, at, "%s %q has leading or trailing spaces", what, s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		p.add(line, at, "%s %q contains a control character", what, s)
	case len(s) > 255:
		p.add(line, at, "%s is longer than 255 bytes", what)
	default:
		return true
	}
	return false
}

// aliasMap reads "local: alias" pairs; neither side may repeat.
func (p *syncParser) aliasMap(n *yaml.Node, at string) AliasMap {
	if isNull(n) || !p.noAlias(n, at) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, at, "want a mapping of local name: alias, got %s", describe(n))
		return nil
	}
	var out AliasMap
	locals, aliases := map[string]int{}, map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		local, ok1 := p.str(k, at)
		alias, ok2 := p.str(v, join(at, local))
		if !ok1 || !ok2 {
			continue
		}
		good := p.name(k.Line, at, "local name", local)
		good = p.name(v.Line, join(at, local), "alias", alias) && good
		if prev, dup := locals[local]; dup {
			p.add(k.Line, join(at, local), "duplicate local name %q (first at line %d)", local, prev)
			good = false
		}
		if prev, dup := aliases[alias]; dup && alias != "" {
			p.add(v.Line, join(at, local), "duplicate alias %q (first at line %d)", alias, prev)
			good = false
		}
		locals[local], aliases[alias] = k.Line, v.Line
		if good {
			out = append(out, AliasPair{Local: local, Alias: alias, Line: k.Line})
		}
	}
	return out
}

var (
	projectKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,254}$`)
	syncName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	mimeType   = regexp.MustCompile(`^(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$`)
)

func (p *syncParser) parse(root *yaml.Node) *SyncDef {
	d := &SyncDef{
		Version: 1,
		Users: UsersPolicy{
			Mode: UserByUsername, Fallback: UserError, CommentAuthor: AuthorPrefix,
			DisplaySuffix: "(Partner Jira)",
		},
		Comments:    Comments{Restricted: RestrictedSkip},
		Attachments: Attachments{MaxSizeMB: 10, NoticeOnSkip: true},
		Deletes:     DeletesKeep,
	}
	var seenName, seenProject bool
	ok := p.mapping(root, "", map[string]func(*yaml.Node, string){
		"version": func(v *yaml.Node, at string) {
			p.integer(v, at, &d.Version)
			if d.Version != 1 {
				p.add(v.Line, at, "version %d is not supported; this bridge reads version 1", d.Version)
			}
		},
		"name": func(v *yaml.Node, at string) {
			seenName = true
			if s, ok := p.str(v, at); ok {
				d.Name = s
				if !syncName.MatchString(s) {
					p.add(v.Line, at, "%q is not a sync name (letters, digits, '.', '_', '-'; at most 64)", s)
				}
			}
		},
		"project": func(v *yaml.Node, at string) {
			seenProject = true
			if s, ok := p.str(v, at); ok {
				d.Project = s
				if !projectKey.MatchString(s) {
					p.add(v.Line, at, "%q is not a Jira project key (upper-case letters, digits, '_', starting with a letter)", s)
				}
			}
		},
		"jql": func(v *yaml.Node, at string) {
			if s, ok := p.str(v, at); ok {
				d.JQL = strings.TrimSpace(s)
			}
		},
		"issue_types": func(v *yaml.Node, at string) {
			d.IssueTypes = p.aliasMap(v, at)
			if isNull(v) {
				p.add(v.Line, at, "map at least one issue type (local name: alias)")
			}
		},
		"statuses": func(v *yaml.Node, at string) { d.Statuses = p.aliasMap(v, at) },
		"fields": func(v *yaml.Node, at string) {
			d.Fields = p.fields(v, at)
		},
		"users":       func(v *yaml.Node, at string) { p.users(v, at, &d.Users) },
		"comments":    func(v *yaml.Node, at string) { p.comments(v, at, &d.Comments) },
		"attachments": func(v *yaml.Node, at string) { p.attachments(v, at, &d.Attachments) },
		"watchers":    func(v *yaml.Node, at string) { p.switchOnly(v, at, &d.Watchers) },
		"links":       func(v *yaml.Node, at string) { p.links(v, at, &d.Links) },
		"subtasks":    func(v *yaml.Node, at string) { p.switchOnly(v, at, &d.Subtasks) },
		"deletes": func(v *yaml.Node, at string) {
			oneOf(p, v, at, &d.Deletes, DeletesKeep, DeletesPropagate)
		},
	})
	if !ok {
		return d
	}
	if !seenName {
		p.add(root.Line, "name", "is required (the sync's name, e.g. partner-support)")
	}
	if !seenProject {
		p.add(root.Line, "project", "is required (the local Jira project key, e.g. SUP)")
	}
	if !hasKey(root, "issue_types") {
		p.add(root.Line, "issue_types", "is required: map at least one issue type (local name: alias)")
	}
	return d
}

func hasKey(n *yaml.Node, key string) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func (p *syncParser) fields(n *yaml.Node, at string) []FieldMap {
	if isNull(n) || !p.noAlias(n, at) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, at, "want a list of fields (- local: ..., alias: ...), got %s", describe(n))
		return nil
	}
	var out []FieldMap
	locals, aliases := map[string]int{}, map[string]int{}
	for i, item := range n.Content {
		fat := fmt.Sprintf("%s[%d]", at, i)
		f := FieldMap{Direction: DirBoth, Line: item.Line}
		var hasLocal, hasAlias, hasMode bool
		var valuesNode *yaml.Node
		if !p.mapping(item, fat, map[string]func(*yaml.Node, string){
			"local": func(v *yaml.Node, at string) {
				hasLocal = true
				if s, ok := p.str(v, at); ok && p.name(v.Line, at, "local field", s) {
					f.Local = s
					if prev, dup := locals[s]; dup {
						p.add(v.Line, at, "duplicate local field %q (first at line %d)", s, prev)
					}
					locals[s] = v.Line
				}
			},
			"alias": func(v *yaml.Node, at string) {
				hasAlias = true
				if s, ok := p.str(v, at); ok && p.name(v.Line, at, "alias", s) {
					f.Alias = s
					if prev, dup := aliases[s]; dup {
						p.add(v.Line, at, "duplicate alias %q (first at line %d)", s, prev)
					}
					aliases[s] = v.Line
				}
			},
			"direction": func(v *yaml.Node, at string) {
				oneOf(p, v, at, &f.Direction, DirBoth, DirOutgoing, DirIncoming)
			},
			"kind": func(v *yaml.Node, at string) {
				oneOf(p, v, at, &f.Kind, KindAuto, KindText, KindNumber, KindDate, KindDateTime, KindSelect,
					KindMultiSelect, KindUser, KindPriority, KindLabels, KindComponents)
			},
			"mode": func(v *yaml.Node, at string) {
				hasMode = true
				oneOf(p, v, at, &f.Mode, ValuesPassthrough, ValuesCorrelation, ValuesToText)
			},
			"values": func(v *yaml.Node, at string) {
				valuesNode = v
				f.Values = p.aliasMap(v, at)
			},
		}) {
			continue
		}
		if isNull(item) {
			p.add(item.Line, fat, "empty field entry; give local and alias")
			continue
		}
		if !hasLocal {
			p.add(item.Line, fat+".local", "is required (the local field id or name)")
		}
		if !hasAlias {
			p.add(item.Line, fat+".alias", "is required (the name both sides use for this field)")
		}
		if !hasMode {
			f.Mode = ValuesPassthrough
			if len(f.Values) > 0 {
				f.Mode = ValuesCorrelation
			}
		}
		switch {
		case f.Mode == ValuesCorrelation && len(f.Values) == 0 && (valuesNode == nil || isNull(valuesNode) || len(valuesNode.Content) == 0):
			p.add(item.Line, fat+".values", "mode correlation needs values (local value: alias)")
		case f.Mode == ValuesPassthrough && valuesNode != nil && len(f.Values) > 0:
			p.add(valuesNode.Line, fat+".values", "values are not used with mode passthrough; set mode to correlation or totext, or remove them")
		}
		out = append(out, f)
	}
	return out
}

func (p *syncParser) users(n *yaml.Node, at string, u *UsersPolicy) {
	u.Line = n.Line
	var hasFallback bool
	var fallbackLine int
	if !p.mapping(n, at, map[string]func(*yaml.Node, string){
		"mode": func(v *yaml.Node, at string) {
			oneOf(p, v, at, &u.Mode, UserByUsername, UserByEmail, UserFixed, UserText, UserDrop)
		},
		"fallback": func(v *yaml.Node, at string) {
			hasFallback, fallbackLine = true, v.Line
			oneOf(p, v, at, &u.Fallback, UserError, UserFixed, UserText, UserDrop)
		},
		"fixed_user": func(v *yaml.Node, at string) {
			if s, ok := p.str(v, at); ok {
				u.FixedUser = strings.TrimSpace(s)
			}
		},
		"text_field": func(v *yaml.Node, at string) {
			if s, ok := p.str(v, at); ok {
				u.TextField = strings.TrimSpace(s)
			}
		},
		"comment_author": func(v *yaml.Node, at string) {
			oneOf(p, v, at, &u.CommentAuthor, AuthorPrefix, AuthorMap)
		},
		"display_suffix": func(v *yaml.Node, at string) {
			if s, ok := p.str(v, at); ok {
				u.DisplaySuffix = strings.TrimSpace(s)
			}
		},
	}) {
		return
	}
	if hasFallback && u.Mode != UserByUsername && u.Mode != UserByEmail {
		p.add(fallbackLine, at+".fallback", "is only used with mode by_username or by_email")
	}
	if (u.Mode == UserFixed || (u.Fallback == UserFixed && (u.Mode == UserByUsername || u.Mode == UserByEmail))) && u.FixedUser == "" {
		p.add(n.Line, at+".fixed_user", "is required with mode or fallback fixed (the local user that stands in for the peer's people)")
	}
}

// enabled returns the handler of the "enabled" key; a section that
// is present is enabled unless it says enabled: false.
func (p *syncParser) enabled(s *Switch) func(*yaml.Node, string) {
	return func(v *yaml.Node, at string) { p.boolean(v, at, &s.Enabled) }
}

// section prepares a switchable section: written as true/false, as null
// (enabled, defaults) or as a mapping (handled by the caller). It returns
// true when the caller should walk the mapping.
func (p *syncParser) section(n *yaml.Node, at string, s *Switch) bool {
	s.Line, s.Enabled = n.Line, true
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		p.boolean(n, at, &s.Enabled)
		return false
	}
	return true
}

func (p *syncParser) switchOnly(n *yaml.Node, at string, s *Switch) {
	if p.section(n, at, s) {
		p.mapping(n, at, map[string]func(*yaml.Node, string){"enabled": p.enabled(s)})
	}
}

func (p *syncParser) comments(n *yaml.Node, at string, c *Comments) {
	if !p.section(n, at, &c.Switch) {
		return
	}
	var visNode *yaml.Node
	if !p.mapping(n, at, map[string]func(*yaml.Node, string){
		"enabled": p.enabled(&c.Switch),
		"restricted": func(v *yaml.Node, at string) {
			oneOf(p, v, at, &c.Restricted, RestrictedSkip, RestrictedMap)
		},
		"visibility": func(v *yaml.Node, at string) {
			visNode = v
			for _, pair := range p.aliasMap(v, at) {
				vis := Visibility{Alias: pair.Alias, Line: pair.Line}
				typ, val, _ := strings.Cut(pair.Local, ":")
				vis.Type, vis.Value = strings.TrimSpace(typ), strings.TrimSpace(val)
				switch {
				case vis.Type == "internal" && vis.Value == "":
				case (vis.Type == "role" || vis.Type == "group") && vis.Value != "":
				default:
					p.add(pair.Line, join(at, pair.Local), "%q is not role:NAME, group:NAME or internal", pair.Local)
					continue
				}
				c.Visibility = append(c.Visibility, vis)
			}
		},
	}) {
		return
	}
	if c.Restricted == RestrictedMap && visNode == nil {
		p.add(n.Line, at+".visibility", "restricted: map needs a visibility map (role:NAME, group:NAME or internal: alias)")
	}
}

func (p *syncParser) attachments(n *yaml.Node, at string, a *Attachments) {
	if !p.section(n, at, &a.Switch) {
		return
	}
	p.mapping(n, at, map[string]func(*yaml.Node, string){
		"enabled": p.enabled(&a.Switch),
		"max_size_mb": func(v *yaml.Node, at string) {
			p.integer(v, at, &a.MaxSizeMB)
			if a.MaxSizeMB < 1 || a.MaxSizeMB > 10240 {
				p.add(v.Line, at, "%d is out of range; use 1 to 10240", a.MaxSizeMB)
			}
		},
		"mime_types": func(v *yaml.Node, at string) {
			for i, s := range p.strings(v, at) {
				s = strings.ToLower(strings.TrimSpace(s))
				if !mimeType.MatchString(s) {
					p.add(lineOf(v, i), fmt.Sprintf("%s[%d]", at, i), "%q is not a MIME type (type/subtype, type/* or */*)", s)
					continue
				}
				a.MIMETypes = append(a.MIMETypes, s)
			}
		},
		"filename_patterns": func(v *yaml.Node, at string) {
			for i, s := range p.strings(v, at) {
				if _, err := path.Match(s, ""); err != nil || s == "" {
					p.add(lineOf(v, i), fmt.Sprintf("%s[%d]", at, i), "%q is not a file name pattern (like *.pdf)", s)
					continue
				}
				a.FilenamePatterns = append(a.FilenamePatterns, s)
			}
		},
		"notice_on_skip": func(v *yaml.Node, at string) { p.boolean(v, at, &a.NoticeOnSkip) },
	})
}

func lineOf(seq *yaml.Node, i int) int {
	if seq.Kind == yaml.SequenceNode && i < len(seq.Content) {
		return seq.Content[i].Line
	}
	return seq.Line
}

func (p *syncParser) links(n *yaml.Node, at string, l *Links) {
	if !p.section(n, at, &l.Switch) {
		return
	}
	p.mapping(n, at, map[string]func(*yaml.Node, string){
		"enabled": p.enabled(&l.Switch),
		"types":   func(v *yaml.Node, at string) { l.Types = p.aliasMap(v, at) },
	})
}
