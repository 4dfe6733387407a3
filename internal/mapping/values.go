package mapping

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// DateLayout is the wire form of a date field.
const DateLayout = "2006-01-02"

// local is a field value in this site's terms, decoded from Jira: nil,
// string (text, date, option or priority name), float64, time.Time
// (datetime), *jira.User, or []string (option, label or component names).
type local = any

// decodeCurrent decodes a field's value as Jira's issue JSON shows it.
func decodeCurrent(kind config.FieldKind, raw json.RawMessage) (local, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	switch kind {
	case config.KindText, config.KindDate:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			// A number or object in a field the definition calls text:
			// carry Jira's JSON text rather than lose it.
			return strings.TrimSpace(string(raw)), nil
		}
		if s == "" {
			return nil, nil
		}
		if kind == config.KindDate && len(s) > 10 {
			s = s[:10]
		}
		return s, nil
	case config.KindNumber:
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("number field holds %s", raw)
		}
		return f, nil
	case config.KindDateTime:
		var t jira.Time
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, err
		}
		if t.IsZero() {
			return nil, nil
		}
		return t.Time, nil
	case config.KindUser:
		var u jira.User
		if err := json.Unmarshal(raw, &u); err != nil {
			return nil, fmt.Errorf("user field holds %s", raw)
		}
		if u.Name == "" && u.Key == "" {
			return nil, nil
		}
		return &u, nil
	case config.KindSelect, config.KindPriority:
		var o struct{ Value, Name string }
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("option field holds %s", raw)
		}
		if o.Value != "" {
			return o.Value, nil
		}
		if o.Name != "" {
			return o.Name, nil
		}
		return nil, nil
	case config.KindLabels:
		var l []string
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("labels field holds %s", raw)
		}
		return listOrNil(l), nil
	case config.KindMultiSelect, config.KindComponents:
		var os []struct{ Value, Name string }
		if err := json.Unmarshal(raw, &os); err != nil {
			return nil, fmt.Errorf("list field holds %s", raw)
		}
		l := make([]string, 0, len(os))
		for _, o := range os {
			if o.Value != "" {
				l = append(l, o.Value)
			} else {
				l = append(l, o.Name)
			}
		}
		return listOrNil(l), nil
	}
	return nil, fmt.Errorf("field kind %q is not supported", kind)
}

func listOrNil(l []string) local {
	if len(l) == 0 {
		return nil
	}
	l = slices.Clone(l)
	slices.Sort(l)
	return slices.Compact(l)
}

// decodeHistory reads one side (from or to) of a changelog item.
func (m *Mapping) decodeHistory(ctx context.Context, kind config.FieldKind, id, str *string) (local, error) {
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	switch kind {
	case config.KindText:
		if s(str) == "" {
			return nil, nil
		}
		return s(str), nil
	case config.KindNumber:
		if strings.TrimSpace(s(str)) == "" {
			return nil, nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s(str)), 64)
		if err != nil {
			return nil, fmt.Errorf("changelog number %q: %w", s(str), err)
		}
		return f, nil
	case config.KindDate:
		v := s(id)
		if v == "" {
			v = s(str)
		}
		if v == "" {
			return nil, nil
		}
		if len(v) > 10 {
			v = v[:10]
		}
		return v, nil
	case config.KindDateTime:
		v := s(id)
		if v == "" {
			v = s(str)
		}
		if v == "" {
			return nil, nil
		}
		t, err := parseTime(v)
		if err != nil {
			return nil, err
		}
		return t, nil
	case config.KindUser:
		key := s(id)
		if key == "" {
			return nil, nil
		}
		if m.opts.Users != nil {
			u, found, err := m.userByKey(ctx, key)
			if err != nil {
				return nil, fmt.Errorf("look up user key %s: %w", key, err)
			}
			if found {
				return &u, nil
			}
		}
		return &jira.User{Name: key, Key: key, DisplayName: s(str)}, nil
	case config.KindSelect, config.KindPriority:
		if s(str) == "" {
			return nil, nil
		}
		return s(str), nil
	case config.KindLabels:
		return listOrNil(strings.Fields(s(str))), nil
	case config.KindMultiSelect:
		var l []string
		for _, p := range strings.Split(s(str), ",") {
			if p = strings.TrimSpace(p); p != "" {
				l = append(l, p)
			}
		}
		return listOrNil(l), nil
	}
	return nil, fmt.Errorf("field kind %q is not supported", kind)
}

var timeLayouts = []string{jira.TimeLayout, "2006-01-02T15:04:05-0700", time.RFC3339Nano, "2006-01-02 15:04:05.0", "2006-01-02T15:04:05.000Z07:00"}

func parseTime(v string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is not in a format Jira uses", v)
}

// FormatTime is the wire form of a datetime: Jira's layout in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(jira.TimeLayout) }

// toWire translates a local value of f into its wire value. send is false
// when the user policy drops the value.
func (m *Mapping) toWire(issue string, f *Field, v local) (wire.Value, bool, error) {
	if f.Mode == config.ValuesToText {
		t, err := m.text(issue, f, v)
		if err != nil {
			return wire.Value{}, false, err
		}
		if t == "" {
			return wire.NullValue(), true, nil
		}
		return wire.StringValue(t), true, nil
	}
	if v == nil {
		return wire.NullValue(), f.Kind != config.KindUser || m.def.Users.Mode != config.UserDrop, nil
	}
	switch x := v.(type) {
	case string:
		switch f.Kind {
		case config.KindSelect, config.KindPriority:
			a, err := m.valueAlias(issue, f, x)
			return wire.StringValue(a), err == nil, err
		case config.KindDateTime:
			t, err := parseTime(x)
			if err != nil {
				return wire.Value{}, false, fail(issue, f.Alias, x, "not a date-time")
			}
			return wire.StringValue(FormatTime(t)), true, nil
		case config.KindNumber:
			n, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return wire.Value{}, false, fail(issue, f.Alias, x, "not a number")
			}
			return wire.NumberValue(n), true, nil
		case config.KindMultiSelect, config.KindLabels, config.KindComponents:
			return m.toWire(issue, f, []string{x})
		}
		return wire.StringValue(x), true, nil
	case float64:
		if f.Kind == config.KindText {
			return wire.StringValue(strconv.FormatFloat(x, 'f', -1, 64)), true, nil
		}
		return wire.NumberValue(x), true, nil
	case time.Time:
		if f.Kind == config.KindDate {
			return wire.StringValue(x.Format(DateLayout)), true, nil
		}
		return wire.StringValue(FormatTime(x)), true, nil
	case *jira.User:
		return m.userToWire(issue, f, x)
	case []string:
		out := make([]string, 0, len(x))
		for _, s := range x {
			a := s
			if f.Kind == config.KindMultiSelect || f.Kind == config.KindComponents || f.Mode == config.ValuesCorrelation {
				var err error
				if a, err = m.valueAlias(issue, f, s); err != nil {
					return wire.Value{}, false, err
				}
			}
			out = append(out, a)
		}
		slices.Sort(out)
		return wire.ListValue(out...), true, nil
	}
	return wire.Value{}, false, fail(issue, f.Alias, fmt.Sprint(v), "unexpected value type %T", v)
}

// valueAlias maps one option name through the field's value map.
func (m *Mapping) valueAlias(issue string, f *Field, name string) (string, error) {
	if a, ok := f.toAlias[name]; ok {
		return a, nil
	}
	if f.Mode == config.ValuesCorrelation {
		return "", fail(issue, f.Alias, name, "the value is not in the field's values map (mode correlation, line %d)", f.Line)
	}
	return name, nil
}

// text renders a local value as text for mode totext.
func (m *Mapping) text(issue string, f *Field, v local) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		if f.Kind == config.KindDateTime {
			return x, nil
		}
		if a, ok := f.toAlias[x]; ok {
			return a, nil
		}
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case time.Time:
		if f.JiraKind == config.KindDate {
			return x.Format(DateLayout), nil
		}
		return FormatTime(x), nil
	case *jira.User:
		return m.UserText(userToWireAll(x)), nil
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = s
			if a, ok := f.toAlias[s]; ok {
				out[i] = a
			}
		}
		slices.Sort(out)
		return strings.Join(out, ", "), nil
	}
	return "", fail(issue, f.Alias, fmt.Sprint(v), "unexpected value type %T", v)
}

func userToWireAll(u *jira.User) wire.User {
	return wire.User{Name: u.Name, Display: u.DisplayName, Email: u.EmailAddress}
}

// OutgoingUser is how the user policy sends a person (authors, watchers,
// user fields); send is false when the policy drops people.
func (m *Mapping) OutgoingUser(u *jira.User) (wu wire.User, send bool) {
	if u == nil {
		return wire.User{}, false
	}
	p := m.def.Users
	switch p.Mode {
	case config.UserDrop:
		return wire.User{}, false
	case config.UserByEmail:
		return wire.User{Email: u.EmailAddress, Display: u.DisplayName}, true
	case config.UserFixed, config.UserText:
		return wire.User{Display: displayOf(u)}, true
	default:
		return wire.User{Name: u.Name, Display: u.DisplayName}, true
	}
}

func displayOf(u *jira.User) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Name
}

func (m *Mapping) userToWire(issue string, f *Field, u *jira.User) (wire.Value, bool, error) {
	wu, ok := m.OutgoingUser(u)
	if !ok {
		return wire.Value{}, false, nil
	}
	return wire.UserValue(wu), true, nil
}

// UserText is a person as text: "Alice Smith (Partner Jira)", for the
// text policy and comment prefixes.
func (m *Mapping) UserText(u wire.User) string {
	name := u.Display
	if name == "" {
		name = u.Name
	}
	if name == "" {
		name = u.Email
	}
	if s := m.def.Users.DisplaySuffix; s != "" {
		return strings.TrimSpace(name + " " + s)
	}
	return name
}

// IssueValues returns the current wire value of every mapped field whose
// local changes are sent (direction both or outgoing), keyed by alias.
// Fields the user policy drops are left out. Empty values and empty lists
// are null.
func (m *Mapping) IssueValues(ctx context.Context, is *jira.Issue) (map[string]wire.Value, error) {
	return m.issueValues(ctx, is, func(f *Field) bool { return f.Direction.Sends() }, false)
}

// AllValues is IssueValues for every mapped field whatever its direction:
// the applier compares it with incoming values to write only differences.
// A local value that cannot be mapped is left out rather than failing the
// whole issue: it only means "differs", and the incoming value replaces it.
func (m *Mapping) AllValues(ctx context.Context, is *jira.Issue) (map[string]wire.Value, error) {
	return m.issueValues(ctx, is, func(*Field) bool { return true }, true)
}

func (m *Mapping) issueValues(_ context.Context, is *jira.Issue, want func(*Field) bool, lenient bool) (map[string]wire.Value, error) {
	out := map[string]wire.Value{}
	for _, f := range m.fields {
		if !want(f) {
			continue
		}
		v, send, err := m.FieldValue(is, f)
		if err != nil && lenient && IsMappingError(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if send {
			out[f.Alias] = v
		}
	}
	return out, nil
}

// FieldValue is the current wire value of f in is; send is false when the
// user policy drops it.
func (m *Mapping) FieldValue(is *jira.Issue, f *Field) (v wire.Value, send bool, err error) {
	lv, err := decodeCurrent(f.JiraKind, is.Fields[f.ID])
	if err != nil {
		return wire.Value{}, false, fail(issueName(is), f.Alias, "", "decode field %s: %v", f.ID, err)
	}
	return m.toWire(issueName(is), f, lv)
}

func issueName(is *jira.Issue) string {
	if is.Key != "" {
		return is.Key
	}
	return is.ID
}

// HistoryChange is what one changelog entry did to the mapped fields:
// field alias -> before and after.
type HistoryChange struct {
	History jira.History
	Fields  map[string]wire.FieldChange
}

// HistoryChanges walks the issue's changelog (is.Changelog, oldest first)
// backwards from the issue's current values and returns, for each entry
// want accepts, the wire before/after of each mapped, sent field it
// touched, oldest first; entries that touched none are left out. Walking
// back from the current value makes the newest change exact for every
// field kind, and earlier ones exact wherever Jira's changelog is (it is
// lossy only for option names containing commas).
//
// A value that cannot be mapped fails only the entry it belongs to: its
// error is returned in errs keyed by history id, and the other entries are
// still returned.
func (m *Mapping) HistoryChanges(ctx context.Context, is *jira.Issue, want func(jira.History) bool) (changes []HistoryChange, errs map[string]error, err error) {
	if is.Changelog == nil {
		return nil, nil, nil
	}
	cur := map[*Field]local{}
	for _, f := range m.fields {
		if !f.Direction.Sends() {
			continue
		}
		lv, err := decodeCurrent(f.JiraKind, is.Fields[f.ID])
		if err != nil {
			return nil, nil, fail(issueName(is), f.Alias, "", "decode field %s: %v", f.ID, err)
		}
		cur[f] = lv
	}
	hs := is.Changelog.Histories
	// The walk needs to go back only as far as the oldest wanted entry.
	oldest := len(hs)
	for i, h := range hs {
		if want == nil || want(h) {
			oldest = i
			break
		}
	}
	for i := len(hs) - 1; i >= oldest; i-- {
		h := hs[i]
		byField := map[*Field][]jira.HistoryItem{}
		var order []*Field
		for _, it := range h.Items {
			f, ok := m.FieldByHistory(it)
			if !ok || !f.Direction.Sends() {
				continue
			}
			if _, seen := byField[f]; !seen {
				order = append(order, f)
			}
			byField[f] = append(byField[f], it)
		}
		if len(order) == 0 {
			continue
		}
		wanted := want == nil || want(h)
		hc := HistoryChange{History: h, Fields: map[string]wire.FieldChange{}}
		var herr error
		for _, f := range order {
			after := cur[f]
			before, err := m.before(ctx, f, byField[f], after)
			if err != nil {
				if wanted && herr == nil {
					herr = fail(issueName(is), f.Alias, "", "changelog entry %s: %v", h.ID, err)
				}
				// Without a before value the walk continues from the
				// changelog's own "to" side for older entries.
				before = nil
			}
			cur[f] = before
			if !wanted || herr != nil {
				continue
			}
			bw, bsend, berr := m.toWire(issueName(is), f, before)
			aw, asend, aerr := m.toWire(issueName(is), f, after)
			if aerr != nil {
				herr = aerr
				continue
			}
			if berr != nil {
				// An unmappable old value does not stop the new one:
				// the peer needs only After; Before is informative.
				bw = wire.NullValue()
			}
			if !asend || !bsend && berr == nil {
				continue
			}
			if bw.Equal(aw) {
				continue
			}
			hc.Fields[f.Alias] = wire.FieldChange{Before: bw, After: aw}
		}
		if !wanted {
			continue
		}
		if herr != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[h.ID] = herr
			continue
		}
		if len(hc.Fields) > 0 {
			changes = append(changes, hc)
		}
	}
	slices.Reverse(changes)
	return changes, errs, nil
}

// before computes the value of f before the items of one history entry,
// given its value after them.
func (m *Mapping) before(ctx context.Context, f *Field, items []jira.HistoryItem, after local) (local, error) {
	if f.JiraKind == config.KindComponents {
		// One item per component added (to set) or removed (from set).
		set, _ := after.([]string)
		set = slices.Clone(set)
		for _, it := range items {
			if it.ToString != nil && *it.ToString != "" {
				set = slices.DeleteFunc(set, func(s string) bool { return s == *it.ToString })
			}
			if it.FromString != nil && *it.FromString != "" {
				set = append(set, *it.FromString)
			}
		}
		return listOrNil(set), nil
	}
	it := items[0]
	return m.decodeHistory(ctx, f.JiraKind, it.From, it.FromString)
}

// State is an issue's current state in wire terms: what IssueCreate and
// resync send.
type State struct {
	IssueType string                // alias
	Status    string                // alias; "" when the status is not synced
	Fields    map[string]wire.Value // sent fields by alias (see IssueValues)
}

// IssueState reads the issue's type, status and sent field values. ok is
// false when the issue's type is not mapped: such issues are not synced.
func (m *Mapping) IssueState(ctx context.Context, is *jira.Issue) (st State, ok bool, err error) {
	var named struct{ Name string }
	if found, err := is.Field("issuetype", &named); err != nil || !found {
		return State{}, false, fail(issueName(is), "issuetype", "", "the issue has no readable issue type")
	}
	st.IssueType, ok = m.IssueTypeAlias(named.Name)
	if !ok {
		return State{}, false, nil
	}
	named.Name = ""
	if found, _ := is.Field("status", &named); found {
		st.Status, _ = m.StatusAlias(named.Name)
	}
	st.Fields, err = m.IssueValues(ctx, is)
	if err != nil {
		return State{}, false, err
	}
	return st, true, nil
}

// userByKey resolves a user key through the directory, remembering the
// answers for the mapping's lifetime: the changelog walk meets the same
// few people on every poll.
func (m *Mapping) userByKey(ctx context.Context, key string) (jira.User, bool, error) {
	m.usersMu.Lock()
	c, ok := m.userCache[key]
	m.usersMu.Unlock()
	if ok {
		return c.u, c.found, nil
	}
	u, found, err := m.opts.Users.UserByKey(ctx, key)
	if err != nil {
		return u, found, err
	}
	m.usersMu.Lock()
	if m.userCache == nil {
		m.userCache = map[string]cachedUser{}
	}
	if len(m.userCache) < maxUserCache {
		m.userCache[key] = cachedUser{u, found}
	}
	m.usersMu.Unlock()
	return u, found, nil
}

type cachedUser struct {
	u     jira.User
	found bool
}

// maxUserCache bounds the user cache; past it, lookups go to Jira.
const maxUserCache = 10000
