package mapping

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Assignment is one local field value to write, as Jira's create and edit
// calls take it in "fields".
type Assignment struct {
	FieldID string
	Value   any // JSON-encodable; nil clears the field
}

// Incoming translates the peer's value of the field with alias into what
// to write locally. ok is false, with no error, when nothing is written:
// the alias is not mapped here, the field's direction does not receive, or
// the user policy drops the value. A value that cannot be mapped is a
// mapping error naming issue, alias and value.
func (m *Mapping) Incoming(ctx context.Context, issue, alias string, v wire.Value) (a Assignment, ok bool, err error) {
	f, found := m.byAlias[alias]
	if !found || !f.Direction.Receives() {
		return Assignment{}, false, nil
	}
	val, target, ok, err := m.fromWire(ctx, issue, f, v)
	if err != nil || !ok {
		return Assignment{}, false, err
	}
	return Assignment{FieldID: target, Value: val}, true, nil
}

// IncomingFields translates several field values (alias -> value, as in
// a change's Fields[alias].After or an IssueCreate) into Jira's "fields"
// map. Aliases that are not written here (see Incoming) are listed in
// ignored, sorted. The first unmappable value fails the whole call, since
// a partial edit would hide the problem.
func (m *Mapping) IncomingFields(ctx context.Context, issue string, vals map[string]wire.Value) (fields map[string]any, ignored []string, err error) {
	fields = map[string]any{}
	aliases := make([]string, 0, len(vals))
	for a := range vals {
		aliases = append(aliases, a)
	}
	slices.Sort(aliases)
	var texts []string // users as text into one shared text field
	for _, alias := range aliases {
		a, ok, err := m.Incoming(ctx, issue, alias, vals[alias])
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			ignored = append(ignored, alias)
			continue
		}
		if m.textTarget != "" && a.FieldID == m.textTarget {
			if f, _ := m.FieldByAlias(alias); f != nil && f.ID != m.textTarget {
				if s, _ := a.Value.(string); s != "" {
					texts = append(texts, f.Alias+": "+s)
				}
				continue
			}
		}
		fields[a.FieldID] = a.Value
	}
	if len(texts) > 0 {
		fields[m.textTarget] = strings.Join(texts, "\n")
	}
	return fields, ignored, nil
}

// fromWire converts a wire value for f into a Jira REST value and the
// local field it goes to.
func (m *Mapping) fromWire(ctx context.Context, issue string, f *Field, v wire.Value) (val any, target string, ok bool, err error) {
	bad := func(why string, args ...any) (any, string, bool, error) {
		return nil, "", false, fail(issue, f.Alias, valueText(v), why, args...)
	}
	if v.Kind() == wire.ValueNull {
		if f.JiraKind == config.KindUser && (m.def.Users.Mode == config.UserDrop) {
			return nil, "", false, nil
		}
		return nil, f.ID, true, nil
	}
	if f.Mode == config.ValuesToText {
		s := valueText(v)
		if v.Kind() == wire.ValueUser {
			s = m.UserText(v.User())
		}
		if v.Kind() == wire.ValueList {
			items := v.Strings()
			for i, it := range items {
				if n, ok := f.toLocal[it]; ok {
					items[i] = n
				}
			}
			slices.Sort(items)
			s = strings.Join(items, ", ")
		} else if n, ok := f.toLocal[s]; ok {
			s = n
		}
		return m.jiraScalar(issue, f, s)
	}
	switch f.JiraKind {
	case config.KindText:
		switch v.Kind() {
		case wire.ValueString:
			return v.Text(), f.ID, true, nil
		case wire.ValueNumber:
			return strconv.FormatFloat(v.Number(), 'f', -1, 64), f.ID, true, nil
		case wire.ValueUser:
			return m.UserText(v.User()), f.ID, true, nil
		}
		return bad("a text field takes text, got a %s", kindName(v))
	case config.KindNumber:
		switch v.Kind() {
		case wire.ValueNumber:
			return v.Number(), f.ID, true, nil
		case wire.ValueString:
			n, err := strconv.ParseFloat(strings.TrimSpace(v.Text()), 64)
			if err != nil {
				return bad("a number field takes a number")
			}
			return n, f.ID, true, nil
		}
		return bad("a number field takes a number, got a %s", kindName(v))
	case config.KindDate:
		if v.Kind() != wire.ValueString {
			return bad("a date field takes a date, got a %s", kindName(v))
		}
		s := v.Text()
		if t, err := parseTime(s); err == nil {
			s = t.Format(DateLayout)
		}
		if len(s) != len(DateLayout) {
			return bad("a date field takes YYYY-MM-DD")
		}
		return s, f.ID, true, nil
	case config.KindDateTime:
		if v.Kind() != wire.ValueString {
			return bad("a date-time field takes a date-time, got a %s", kindName(v))
		}
		t, err := parseTime(v.Text())
		if err != nil {
			return bad("a date-time field takes Jira's time format")
		}
		return FormatTime(t), f.ID, true, nil
	case config.KindSelect, config.KindPriority:
		if v.Kind() != wire.ValueString {
			return bad("a %s field takes one value alias, got a %s", f.JiraKind, kindName(v))
		}
		name, err := m.localValue(issue, f, v.Text())
		if err != nil {
			return nil, "", false, err
		}
		if f.JiraKind == config.KindPriority {
			return map[string]string{"name": name}, f.ID, true, nil
		}
		return map[string]string{"value": name}, f.ID, true, nil
	case config.KindLabels, config.KindMultiSelect, config.KindComponents:
		var items []string
		switch v.Kind() {
		case wire.ValueList:
			items = v.Strings()
		case wire.ValueString:
			items = []string{v.Text()}
		default:
			return bad("a list field takes a list, got a %s", kindName(v))
		}
		out := make([]any, 0, len(items))
		names := make([]string, 0, len(items))
		for _, it := range items {
			name := it
			if f.JiraKind != config.KindLabels || f.Mode == config.ValuesCorrelation {
				var err error
				if name, err = m.localValue(issue, f, it); err != nil {
					return nil, "", false, err
				}
			}
			if f.JiraKind == config.KindLabels && strings.ContainsAny(name, " \t") {
				return nil, "", false, fail(issue, f.Alias, it, "a label cannot contain spaces")
			}
			names = append(names, name)
		}
		slices.Sort(names)
		names = slices.Compact(names)
		for _, n := range names {
			switch f.JiraKind {
			case config.KindLabels:
				out = append(out, n)
			case config.KindMultiSelect:
				out = append(out, map[string]string{"value": n})
			default:
				out = append(out, map[string]string{"name": n})
			}
		}
		return out, f.ID, true, nil
	case config.KindUser:
		if v.Kind() != wire.ValueUser {
			return bad("a user field takes a user, got a %s", kindName(v))
		}
		return m.incomingUser(ctx, issue, f, v.User())
	}
	return bad("field kind %s is not supported", f.JiraKind)
}

// jiraScalar writes text s into f's local field type (mode totext).
func (m *Mapping) jiraScalar(issue string, f *Field, s string) (any, string, bool, error) {
	switch f.JiraKind {
	case config.KindSelect:
		return map[string]string{"value": s}, f.ID, true, nil
	case config.KindPriority:
		return map[string]string{"name": s}, f.ID, true, nil
	case config.KindText:
		return s, f.ID, true, nil
	}
	return nil, "", false, fail(issue, f.Alias, s, "mode totext needs a text or select field here, %s is %s", f.ID, f.JiraKind)
}

// localValue maps a value alias back to the local option name.
func (m *Mapping) localValue(issue string, f *Field, alias string) (string, error) {
	if n, ok := f.toLocal[alias]; ok {
		return n, nil
	}
	if f.Mode == config.ValuesCorrelation {
		return "", fail(issue, f.Alias, alias, "the value alias is not in the field's values map (mode correlation, line %d)", f.Line)
	}
	return alias, nil
}

// incomingUser applies the user policy to a person from the peer.
func (m *Mapping) incomingUser(ctx context.Context, issue string, f *Field, u wire.User) (any, string, bool, error) {
	p := m.def.Users
	mode := p.Mode
	if mode == "" {
		mode = config.UserByUsername
	}
	switch mode {
	case config.UserByUsername, config.UserByEmail:
		name, found, err := m.findUser(ctx, mode, u)
		if err != nil {
			return nil, "", false, err
		}
		if found {
			return map[string]string{"name": name}, f.ID, true, nil
		}
		fb := p.Fallback
		if fb == "" {
			fb = config.UserError
		}
		if fb == config.UserError {
			return nil, "", false, fail(issue, f.Alias, userLabel(u), "no local user matches (users.mode %s, fallback error)", mode)
		}
		mode = fb
	}
	switch mode {
	case config.UserFixed:
		return map[string]string{"name": p.FixedUser}, f.ID, true, nil
	case config.UserText:
		target := m.textTarget
		if target == "" {
			if f.JiraKind != config.KindText {
				return nil, "", false, fail(issue, f.Alias, userLabel(u), "users as text need users.text_field or a text field")
			}
			target = f.ID
		}
		return m.UserText(u), target, true, nil
	case config.UserDrop:
		return nil, "", false, nil
	}
	return nil, "", false, fail(issue, f.Alias, userLabel(u), "users.mode %s is not supported", mode)
}

// IncomingUser resolves a person from the peer to a local username by the
// user policy (for watchers and comment authors). ok is false when the
// policy drops the person or renders them as text (use UserText).
func (m *Mapping) IncomingUser(ctx context.Context, issue string, u wire.User) (name string, ok bool, err error) {
	p := m.def.Users
	mode := p.Mode
	if mode == "" {
		mode = config.UserByUsername
	}
	if mode == config.UserByUsername || mode == config.UserByEmail {
		name, found, err := m.findUser(ctx, mode, u)
		if err != nil || found {
			return name, found, err
		}
		mode = p.Fallback
		if mode == "" || mode == config.UserError {
			return "", false, fail(issue, "user", userLabel(u), "no local user matches (users.mode %s, fallback error)", p.Mode)
		}
	}
	if mode == config.UserFixed {
		return p.FixedUser, true, nil
	}
	return "", false, nil
}

func (m *Mapping) findUser(ctx context.Context, mode config.UserMode, u wire.User) (string, bool, error) {
	d := m.opts.Users
	switch mode {
	case config.UserByUsername:
		if u.Name == "" {
			return "", false, nil
		}
		if d == nil {
			return u.Name, true, nil
		}
		ju, found, err := d.UserByName(ctx, u.Name)
		if err != nil {
			return "", false, fmt.Errorf("look up user %s: %w", u.Name, err)
		}
		return ju.Name, found, nil
	default:
		if u.Email == "" || d == nil {
			return "", false, nil
		}
		ju, found, err := d.UserByEmail(ctx, u.Email)
		if err != nil {
			return "", false, fmt.Errorf("look up user by e-mail: %w", err)
		}
		return ju.Name, found, nil
	}
}

func userLabel(u wire.User) string {
	switch {
	case u.Name != "":
		return u.Name
	case u.Email != "":
		return u.Email
	}
	return u.Display
}

func valueText(v wire.Value) string {
	switch v.Kind() {
	case wire.ValueString:
		return v.Text()
	case wire.ValueNumber:
		return strconv.FormatFloat(v.Number(), 'f', -1, 64)
	case wire.ValueList:
		return strings.Join(v.Strings(), ", ")
	case wire.ValueUser:
		return userLabel(v.User())
	}
	return ""
}

func kindName(v wire.Value) string {
	switch v.Kind() {
	case wire.ValueString:
		return "string"
	case wire.ValueNumber:
		return "number"
	case wire.ValueList:
		return "list"
	case wire.ValueUser:
		return "user"
	}
	return "null"
}
