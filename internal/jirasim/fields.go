package jirasim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fieldMsg is a per-field refusal in Jira's own words (capitalised, with
// punctuation), destined for the "errors" object of Jira's error body.
type fieldMsg string

func (m fieldMsg) Error() string { return string(m) }

func fmsg(m string) error { return fieldMsg(m) }

func fmsgf(format string, args ...any) error { return fieldMsg(fmt.Sprintf(format, args...)) }

// setField applies one operation (set, add, remove) to a field of is and
// returns the history items it causes. Errors carry Jira's per-field message.
func (s *Server) setField(c *reqCtx, is *issue, id, op string, raw json.RawMessage) ([]historyItem, error) {
	isNull := string(raw) == "null"
	if cf := s.st.Fields[id]; cf != nil {
		return s.setCustom(c, is, cf, op, raw)
	}
	if id != "labels" && op != "set" {
		return nil, fmsgf("Field '%s' does not support operation '%s'", id, op)
	}
	textItem := func(name string, old, new *string) []historyItem {
		return []historyItem{{Field: name, FieldType: "jira", FromString: old, ToString: new}}
	}
	switch id {
	case "summary":
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || strings.TrimSpace(v) == "" {
			return nil, fmsg("You must specify a summary of the issue.")
		}
		if len(v) > 255 {
			return nil, fmsg("Summary must be less than 255 characters.")
		}
		old := is.Summary
		is.Summary = v
		return textItem("summary", ptr(old), ptr(v)), nil
	case "description", "environment":
		var v *string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmsgf("Operation value must be a string")
		}
		if v != nil && *v == "" {
			v = nil
		}
		target := &is.Description
		if id == "environment" {
			target = &is.Environment
		}
		old := *target
		*target = v
		return textItem(id, old, v), nil
	case "priority":
		if isNull {
			return nil, fmsg("Priority is required")
		}
		pr, ok := lookupNamed(priorities, raw)
		if !ok {
			return nil, fmsg("Could not find valid 'id' or 'name' in priority object.")
		}
		old := is.Priority
		is.Priority = pr.ID
		return []historyItem{{Field: "priority", FieldType: "jira", From: ptr(old), FromString: ptr(nameOf(priorities, old)),
			To: ptr(pr.ID), ToString: ptr(pr.Name)}}, nil
	case "issuetype":
		t, ok := lookupIssueType(raw)
		cur, _ := issueTypeByID(is.Type)
		if !ok || t.Subtask != cur.Subtask {
			return nil, fmsg("The issue type selected is invalid.")
		}
		old := is.Type
		is.Type = t.ID
		return []historyItem{{Field: "issuetype", FieldType: "jira", From: ptr(old), FromString: ptr(cur.Name),
			To: ptr(t.ID), ToString: ptr(t.Name)}}, nil
	case "labels":
		old := strings.Join(is.Labels, " ")
		labels, err := applyStringList(is.Labels, op, raw)
		if err != nil {
			return nil, err
		}
		for _, l := range labels {
			if strings.ContainsAny(l, " \t") {
				return nil, fmsgf("The label '%s' contains spaces which is invalid.", l)
			}
			if len(l) > 255 {
				return nil, fmsg("The label must not exceed 255 characters.")
			}
		}
		is.Labels = labels
		return []historyItem{{Field: "labels", FieldType: "jira", FromString: ptr(old), ToString: ptr(strings.Join(labels, " "))}}, nil
	case "assignee", "reporter":
		var ref *struct{ Name string }
		if err := json.Unmarshal(raw, &ref); err != nil {
			return nil, fmsgf("expected Object for %s", id)
		}
		newName := ""
		if ref != nil && ref.Name != "" {
			u := s.lookupUser(ref.Name)
			if u == nil {
				if id == "reporter" {
					return nil, fmsg("The reporter specified is not a user.")
				}
				return nil, fmsgf("User '%s' does not exist.", ref.Name)
			}
			if id == "assignee" && !s.hasPerm(u, s.st.Projects[is.Project], permAssignable, is) {
				return nil, fmsgf("User '%s' cannot be assigned issues.", u.Name)
			}
			newName = u.Name
		} else if id == "reporter" {
			return nil, fmsg("Reporter is required.")
		}
		target := &is.Assignee
		if id == "reporter" {
			target = &is.Reporter
		}
		old := *target
		*target = newName
		return []historyItem{s.userItem(id, "jira", old, newName)}, nil
	case "duedate":
		var v *string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmsg("Error parsing date string: " + string(raw))
		}
		nv := ""
		if v != nil && *v != "" {
			if !dateOnly(*v) {
				return nil, fmsg("Error parsing date string: " + *v)
			}
			nv = *v
		}
		old := is.Due
		is.Due = nv
		return []historyItem{{Field: "duedate", FieldType: "jira", From: dueRaw(old), FromString: dueString(old),
			To: dueRaw(nv), ToString: dueString(nv)}}, nil
	}
	return nil, fmsg(notOnScreen(id))
}

func dueRaw(v string) *string {
	if v == "" {
		return nil
	}
	return ptr(v)
}

func dueString(v string) *string {
	if v == "" {
		return nil
	}
	return ptr(v + " 00:00:00.0")
}

func nameOf(list []nameDef, id string) string {
	d, _ := nameDefByID(list, id)
	return d.Name
}

func (s *Server) userItem(field, ftype, old, new string) historyItem {
	ref := func(name string) (*string, *string) {
		if name == "" {
			return nil, nil
		}
		u := s.lookupUser(name)
		if u == nil {
			return ptr(name), ptr(name)
		}
		return ptr(u.Key), ptr(u.DisplayName)
	}
	it := historyItem{Field: field, FieldType: ftype}
	it.From, it.FromString = ref(old)
	it.To, it.ToString = ref(new)
	return it
}

// applyStringList implements set/add/remove on a list of strings.
func applyStringList(cur []string, op string, raw json.RawMessage) ([]string, error) {
	out := slices.Clone(cur)
	switch op {
	case "set":
		var v []string
		if string(raw) != "null" {
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmsg("expected array of strings")
			}
		}
		out = slices.Compact(v)
	case "add":
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmsg("expected a string to add")
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	case "remove":
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmsg("expected a string to remove")
		}
		out = slices.DeleteFunc(out, func(x string) bool { return x == v })
	default:
		return nil, fmsgf("Field does not support update operation '%s'", op)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func (s *Server) setCustom(c *reqCtx, is *issue, cf *field, op string, raw json.RawMessage) ([]historyItem, error) {
	isNull := string(raw) == "null"
	old := is.Custom[cf.ID]
	var nv any
	if op != "set" && cf.Type != "multiselect" && cf.Type != "labels" {
		return nil, fmsgf("Field '%s' does not support operation '%s'", cf.ID, op)
	}
	switch cf.Type {
	case "textfield", "textarea":
		if !isNull {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmsg("Operation value must be a string")
			}
			if cf.Type == "textfield" && len(v) > 255 {
				return nil, fmsg("The entered text is too long. It exceeds the allowed limit of 255 characters.")
			}
			if v != "" {
				nv = v
			}
		}
	case "float":
		if !isNull {
			var v float64
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmsg("Operation value must be a number")
			}
			nv = v
		}
	case "datepicker":
		if !isNull {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil || !dateOnly(v) {
				return nil, fmsgf("Error parsing date string: %s", strings.Trim(string(raw), `"`))
			}
			nv = v
		}
	case "datetime":
		if !isNull {
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmsg("Error parsing time string: " + string(raw))
			}
			t, err := time.Parse(TimeFormat, v)
			if err != nil {
				return nil, fmsg("Error parsing time string: " + v)
			}
			nv = fmtTime(t.In(s.opts.Location))
		}
	case "userpicker":
		if !isNull {
			var ref struct{ Name string }
			if err := json.Unmarshal(raw, &ref); err != nil || s.lookupUser(ref.Name) == nil {
				return nil, fmsgf("User '%s' was not found in the system.", ref.Name)
			}
			nv = s.lookupUser(ref.Name).Name
		}
	case "select":
		if !isNull {
			o, err := findOption(cf, raw)
			if err != nil {
				return nil, err
			}
			nv = o.ID
		}
	case "multiselect":
		cur := toStrings(old)
		switch op {
		case "set":
			var refs []json.RawMessage
			if !isNull {
				if err := json.Unmarshal(raw, &refs); err != nil {
					return nil, fmsg("expected array of options")
				}
			}
			cur = nil
			for _, r := range refs {
				o, err := findOption(cf, r)
				if err != nil {
					return nil, err
				}
				if !slices.Contains(cur, o.ID) {
					cur = append(cur, o.ID)
				}
			}
		case "add", "remove":
			o, err := findOption(cf, raw)
			if err != nil {
				return nil, err
			}
			if op == "add" && !slices.Contains(cur, o.ID) {
				cur = append(slices.Clone(cur), o.ID)
			} else if op == "remove" {
				cur = slices.DeleteFunc(slices.Clone(cur), func(x string) bool { return x == o.ID })
			}
		default:
			return nil, fmsgf("Field does not support update operation '%s'", op)
		}
		if len(cur) > 0 {
			nv = cur
		}
	case "labels":
		labels, err := applyStringList(toStrings(old), op, raw)
		if err != nil {
			return nil, err
		}
		if len(labels) > 0 {
			nv = labels
		}
	}
	if nv == nil {
		delete(is.Custom, cf.ID)
	} else {
		is.Custom[cf.ID] = nv
	}
	return []historyItem{s.customItem(cf, old, nv)}, nil
}

func findOption(cf *field, raw json.RawMessage) (option, error) {
	var ref struct{ ID, Value string }
	if err := json.Unmarshal(raw, &ref); err == nil {
		for _, o := range cf.Options {
			if (ref.ID != "" && o.ID == ref.ID) || (ref.ID == "" && o.Value == ref.Value) {
				return o, nil
			}
		}
	}
	v := ref.Value
	if ref.ID != "" {
		return option{}, fmsgf("Option id '%s' is not valid", ref.ID)
	}
	return option{}, fmsgf("Option value '%s' is not valid", v)
}

// customItem is the history item of a custom field change: under the
// field's display name, raw ids in from/to only where Jira puts them.
func (s *Server) customItem(cf *field, old, nv any) historyItem {
	it := historyItem{Field: cf.Name, FieldType: "custom"}
	str := func(v any) *string {
		switch x := v.(type) {
		case nil:
			return nil
		case string:
			return ptr(x)
		case float64:
			return ptr(strconv.FormatFloat(x, 'f', -1, 64))
		}
		return ptr(fmt.Sprint(v))
	}
	optNames := func(v any) *string {
		ids := toStrings(v)
		if v == nil {
			return nil
		}
		var names []string
		for _, id := range ids {
			for _, o := range cf.Options {
				if o.ID == id {
					names = append(names, o.Value)
				}
			}
		}
		return ptr(strings.Join(names, ","))
	}
	switch cf.Type {
	case "textfield", "textarea", "float":
		it.FromString, it.ToString = str(old), str(nv)
	case "datepicker", "datetime":
		it.From, it.FromString, it.To, it.ToString = str(old), str(old), str(nv), str(nv)
	case "select":
		it.From, it.To = str(old), str(nv)
		it.FromString, it.ToString = optNames(old), optNames(nv)
	case "multiselect":
		it.From, it.To = bracketIDs(old), bracketIDs(nv)
		it.FromString, it.ToString = optNames(old), optNames(nv)
	case "labels":
		if old != nil {
			it.FromString = ptr(strings.Join(toStrings(old), " "))
		}
		if nv != nil {
			it.ToString = ptr(strings.Join(toStrings(nv), " "))
		}
	case "userpicker":
		o, _ := old.(string)
		n, _ := nv.(string)
		u := s.userItem(cf.Name, "custom", o, n)
		return u
	}
	return it
}

func bracketIDs(v any) *string {
	if v == nil {
		return nil
	}
	return ptr("[" + strings.Join(toStrings(v), ", ") + "]")
}
