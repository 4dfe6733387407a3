// Package mapping translates between one Jira site's own names and ids and
// the aliases both bridges of a sync share on the wire: issue types,
// fields (with direction and value maps), statuses, users (by policy) and
// link types. It is built once from the sync definition and the site's
// field list and is then read-only, so it is safe for concurrent use.
//
// Outgoing (detection): a local issue, field value or changelog item
// becomes wire values keyed by alias. Incoming (apply): wire values become
// the "fields" map of Jira's create and edit calls, a status name and an
// issue type name. A value that cannot be mapped is never dropped
// silently: it is an *Error classified errclass.Permanent with reason
// "mapping", naming the issue, field and value, so the issue's lane parks.
package mapping

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
)

// Reason is the errclass reason of every mapping error.
const Reason = "mapping"

// Error says which value of which issue and field could not be mapped and
// why. It always travels wrapped in an errclass.Permanent error with reason
// "mapping"; use errors.As to read it.
type Error struct {
	Issue string // issue key or id the value belongs to; may be empty
	Field string // field alias or local field id, or "issuetype", "status", "user", "linktype"
	Value string // the value that could not be mapped
	Why   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cannot map")
	if e.Issue != "" {
		fmt.Fprintf(&b, " issue %s", e.Issue)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " field %s", e.Field)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, " value %q", e.Value)
	}
	if e.Why != "" {
		b.WriteString(": ")
		b.WriteString(e.Why)
	}
	return b.String()
}

// fail builds the classified error for an unmappable value.
func fail(issue, field, value, why string, args ...any) error {
	if len(args) > 0 {
		why = fmt.Sprintf(why, args...)
	}
	return errclass.New(errclass.Permanent, Reason, &Error{Issue: issue, Field: field, Value: value, Why: why})
}

// IsMappingError reports whether err is (or wraps) a mapping error.
func IsMappingError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// UserDirectory finds local users for the user policy. by_username and
// by_email need it to check that a person exists here (else the fallback
// applies); changelog items name users by key, which UserByKey resolves.
// found is false when there is no such user; err is a Jira failure.
// *jira.Client implements it.
type UserDirectory interface {
	UserByName(ctx context.Context, name string) (u jira.User, found bool, err error)
	UserByKey(ctx context.Context, key string) (u jira.User, found bool, err error)
	UserByEmail(ctx context.Context, email string) (u jira.User, found bool, err error)
}

// Options configure New. Zero values are safe.
type Options struct {
	// Users resolves people for the user policy. Nil means no lookups:
	// by_username trusts the name it gets, by_email without a directory
	// falls back, and changelog user keys are taken as usernames.
	Users UserDirectory
}

// Field is one mapped field, resolved against the site's field list.
type Field struct {
	ID        string           // local Jira field id: "summary", "customfield_10010"
	Name      string           // local display name, as the changelog names custom fields
	Alias     string           // wire alias
	Direction config.Direction // never empty
	Kind      config.FieldKind // resolved, never KindAuto
	Mode      config.ValueMode // never empty
	Line      int              // line in the sync definition
	// JiraKind is the field's type according to Jira's schema (it differs
	// from Kind for a text field that receives a select as text).
	JiraKind config.FieldKind

	toAlias map[string]string // local value -> alias
	toLocal map[string]string // alias -> local value
}

// Mapping is the translation table of one sync on one site.
type Mapping struct {
	def      *config.SyncDef
	opts     Options
	fields   []*Field
	byID     map[string]*Field
	byAlias  map[string]*Field
	byHist   map[string]*Field // changelog item "field" -> field
	types    biMap
	statuses biMap
	links    biMap
	// textTarget is the local field users go to as text (policy text),
	// "" when each user field takes its own text.
	textTarget string

	usersMu   sync.Mutex
	userCache map[string]cachedUser // user key -> answer
}

type biMap struct{ toAlias, toLocal map[string]string }

func newBiMap(m config.AliasMap) biMap {
	return biMap{toAlias: m.ByLocal(), toLocal: m.ByAlias()}
}

// New resolves def against the site's fields (GET /rest/api/2/field). It
// reports every field it cannot resolve at once.
func New(def *config.SyncDef, fields []jira.FieldInfo, opts Options) (*Mapping, error) {
	if def == nil {
		return nil, errors.New("build mapping: no sync definition")
	}
	m := &Mapping{
		def:      def,
		opts:     opts,
		byID:     map[string]*Field{},
		byAlias:  map[string]*Field{},
		byHist:   map[string]*Field{},
		types:    newBiMap(def.IssueTypes),
		statuses: newBiMap(def.Statuses),
		links:    newBiMap(def.Links.Types),
	}
	byID := map[string]jira.FieldInfo{}
	byName := map[string][]jira.FieldInfo{}
	for _, f := range fields {
		byID[f.ID] = f
		byName[strings.ToLower(f.Name)] = append(byName[strings.ToLower(f.Name)], f)
	}
	resolve := func(local string) (jira.FieldInfo, error) {
		if f, ok := byID[local]; ok {
			return f, nil
		}
		switch cands := byName[strings.ToLower(local)]; len(cands) {
		case 1:
			return cands[0], nil
		case 0:
			return jira.FieldInfo{}, fmt.Errorf("no field in Jira with id or name %q", local)
		default:
			ids := make([]string, len(cands))
			for i, c := range cands {
				ids[i] = c.ID
			}
			return jira.FieldInfo{}, fmt.Errorf("%d fields in Jira are named %q (%s): use the field id", len(cands), local, strings.Join(ids, ", "))
		}
	}
	var problems []error
	for _, fm := range def.Fields {
		info, err := resolve(fm.Local)
		if err != nil {
			problems = append(problems, fmt.Errorf("sync definition line %d: field %s: %w", fm.Line, fm.Local, err))
			continue
		}
		jk, jerr := kindOf(info)
		kind := fm.Kind
		if kind == config.KindAuto {
			if jerr != nil {
				problems = append(problems, fmt.Errorf("sync definition line %d: field %s: %w; set kind", fm.Line, fm.Local, jerr))
				continue
			}
			kind = jk
		}
		if jerr != nil {
			jk = kind
		}
		f := &Field{
			ID: info.ID, Name: info.Name, Alias: fm.Alias, Direction: fm.Direction, Kind: kind, Mode: fm.Mode,
			Line: fm.Line, JiraKind: jk, toAlias: fm.Values.ByLocal(), toLocal: fm.Values.ByAlias(),
		}
		if f.Direction == "" {
			f.Direction = config.DirBoth
		}
		if f.Mode == "" {
			f.Mode = config.ValuesPassthrough
			if len(fm.Values) > 0 {
				f.Mode = config.ValuesCorrelation
			}
		}
		if prev, dup := m.byID[f.ID]; dup {
			problems = append(problems, fmt.Errorf("sync definition line %d: field %s is already mapped on line %d", fm.Line, fm.Local, prev.Line))
			continue
		}
		m.fields = append(m.fields, f)
		m.byID[f.ID] = f
		m.byAlias[f.Alias] = f
		m.byHist[f.ID] = f
		if info.Custom {
			m.byHist[info.Name] = f
		}
		for _, h := range historyNames[f.ID] {
			m.byHist[h] = f
		}
	}
	u := def.Users
	if u.Mode == config.UserText || u.Fallback == config.UserText {
		if u.TextField != "" {
			info, err := resolve(u.TextField)
			if err != nil {
				problems = append(problems, fmt.Errorf("sync definition line %d: users.text_field: %w", u.Line, err))
			} else {
				m.textTarget = info.ID
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return m, nil
}

// historyNames are the names Jira's changelog uses for system fields whose
// name differs from their id.
var historyNames = map[string][]string{
	"components":  {"Component", "Component/s"},
	"fixVersions": {"Fix Version", "Fix Version/s"},
	"versions":    {"Version", "Affects Version/s"},
}

// kindOf derives a field's kind from Jira's schema.
func kindOf(f jira.FieldInfo) (config.FieldKind, error) {
	switch f.ID {
	case "summary", "description", "environment":
		return config.KindText, nil
	case "priority":
		return config.KindPriority, nil
	case "labels":
		return config.KindLabels, nil
	case "components":
		return config.KindComponents, nil
	case "duedate":
		return config.KindDate, nil
	case "assignee", "reporter":
		return config.KindUser, nil
	}
	if f.Schema == nil {
		return "", fmt.Errorf("no type in Jira's schema for field %s", f.ID)
	}
	switch f.Schema.Type {
	case "string":
		return config.KindText, nil
	case "number":
		return config.KindNumber, nil
	case "date":
		return config.KindDate, nil
	case "datetime":
		return config.KindDateTime, nil
	case "user":
		return config.KindUser, nil
	case "option":
		return config.KindSelect, nil
	case "priority":
		return config.KindPriority, nil
	case "array":
		switch f.Schema.Items {
		case "option":
			return config.KindMultiSelect, nil
		case "string":
			return config.KindLabels, nil
		case "component":
			return config.KindComponents, nil
		}
		return "", fmt.Errorf("field %s is a list of %s, which the bridge does not sync", f.ID, f.Schema.Items)
	}
	return "", fmt.Errorf("field %s has type %s, which the bridge does not sync", f.ID, f.Schema.Type)
}

// Def is the sync definition the mapping was built from.
func (m *Mapping) Def() *config.SyncDef { return m.def }

// Fields lists the mapped fields in definition order.
func (m *Mapping) Fields() []*Field { return append([]*Field(nil), m.fields...) }

// FieldByAlias finds a field by its wire alias.
func (m *Mapping) FieldByAlias(alias string) (*Field, bool) {
	f, ok := m.byAlias[alias]
	return f, ok
}

// FieldByID finds a field by its local Jira id.
func (m *Mapping) FieldByID(id string) (*Field, bool) {
	f, ok := m.byID[id]
	return f, ok
}

// FieldByHistory finds the field a changelog item is about. Jira DC names
// system fields by id ("summary", "duedate") except a few ("Component"),
// and custom fields by their display name; newer versions add fieldId.
func (m *Mapping) FieldByHistory(it jira.HistoryItem) (*Field, bool) {
	if it.FieldID != "" {
		if f, ok := m.byID[it.FieldID]; ok {
			return f, true
		}
	}
	f, ok := m.byHist[it.Field]
	return f, ok
}

// FieldIDs lists the local field ids detection must request so that
// IssueValues and the issue's type, status, creator and times are known.
func (m *Mapping) FieldIDs() []string {
	ids := []string{"issuetype", "status", "project", "created", "updated", "creator", "reporter", "parent"}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, f := range m.fields {
		add(f.ID)
	}
	add(m.textTarget)
	sort.Strings(ids[8:])
	return ids
}

// JQL is the query that selects the sync's issues: project = P AND (jql).
func (m *Mapping) JQL() string {
	q := fmt.Sprintf("project = %s", quoteJQL(m.def.Project))
	if strings.TrimSpace(m.def.JQL) != "" {
		q += " AND (" + m.def.JQL + ")"
	}
	return q
}

func quoteJQL(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) < 0 {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// IssueTypeAlias returns the alias of a local issue type; ok is false when
// the type is not synced (issues of that type are left out).
func (m *Mapping) IssueTypeAlias(name string) (alias string, ok bool) {
	a, ok := m.types.toAlias[name]
	return a, ok
}

// IssueTypeName returns the local issue type for an alias; an alias this
// side does not map is a mapping error for issue.
func (m *Mapping) IssueTypeName(issue, alias string) (string, error) {
	if n, ok := m.types.toLocal[alias]; ok {
		return n, nil
	}
	return "", fail(issue, "issuetype", alias, "the issue type alias is not in issue_types of the sync definition")
}

// StatusAlias returns the alias of a local status; ok is false when the
// status is not synced.
func (m *Mapping) StatusAlias(name string) (alias string, ok bool) {
	a, ok := m.statuses.toAlias[name]
	return a, ok
}

// StatusName returns the local status for an alias; an alias this side
// does not map is a mapping error for issue.
func (m *Mapping) StatusName(issue, alias string) (string, error) {
	if n, ok := m.statuses.toLocal[alias]; ok {
		return n, nil
	}
	return "", fail(issue, "status", alias, "the status alias is not in statuses of the sync definition")
}

// LinkTypeAlias returns the alias of a local link type name. Without a
// links.types map, link types travel by name.
func (m *Mapping) LinkTypeAlias(name string) (string, bool) {
	if len(m.links.toAlias) == 0 {
		return name, name != ""
	}
	a, ok := m.links.toAlias[name]
	return a, ok
}

// LinkTypeName returns the local link type name for an alias.
func (m *Mapping) LinkTypeName(issue, alias string) (string, error) {
	if len(m.links.toLocal) == 0 && alias != "" {
		return alias, nil
	}
	if n, ok := m.links.toLocal[alias]; ok {
		return n, nil
	}
	return "", fail(issue, "linktype", alias, "the link type alias is not in links.types of the sync definition")
}

// UnmappedIssueType is the mapping error for an issue that moved to a
// local issue type the sync definition does not list.
func UnmappedIssueType(issue, name string) error {
	return fail(issue, "issuetype", name, "the issue type is not in issue_types of the sync definition")
}
