package jql

import (
	"regexp"
	"strings"
)

// Type is the type of a custom field, as the emulator's field catalogue
// knows it. It decides which operators and values a clause accepts.
type Type uint8

// Custom field types.
const (
	TypeText     Type = iota + 1 // free text: ~, !~, IS
	TypeNumber                   // number: =, !=, <, <=, >, >=, IN, IS
	TypeDate                     // date without time: compares whole days
	TypeDateTime                 // date and time: minute precision in JQL
	TypeOption                   // single or multi select: =, !=, IN, IS
	TypeUser                     // user picker: =, !=, IN, IS, currentUser()
	TypeLabels                   // labels: =, !=, IN, IS
)

// CustomField describes a custom field to the parser.
type CustomField struct {
	ID   string // "customfield_10010": the field name Doc.Values receives
	Name string // display name, for messages
	Type Type
}

type fkind uint8

const (
	kIdent fkind = iota + 1 // project, issuetype, status, resolution, priority, select options
	kKey                    // key, issuekey, id, parent
	kLabels
	kUser
	kDateTime
	kDate
	kNumber
	kText
)

// field is a resolved field reference.
type field struct {
	id       string // Doc field id
	name     string // as written in the query, for messages
	kind     fkind
	validate bool // values are checked with the Validator
	sortable bool
}

type sysField struct {
	id       string
	kind     fkind
	validate bool
	sortable bool
}

var systemFields = map[string]sysField{
	"project":        {"project", kIdent, true, true},
	"key":            {"key", kKey, true, true},
	"issuekey":       {"key", kKey, true, true},
	"id":             {"key", kKey, true, true},
	"issue":          {"key", kKey, true, true},
	"parent":         {"parent", kKey, true, false},
	"issuetype":      {"issuetype", kIdent, true, true},
	"type":           {"issuetype", kIdent, true, true},
	"status":         {"status", kIdent, true, true},
	"statuscategory": {"statuscategory", kIdent, false, true},
	"resolution":     {"resolution", kIdent, true, true},
	"priority":       {"priority", kIdent, true, true},
	"labels":         {"labels", kLabels, false, true},
	"label":          {"labels", kLabels, false, true},
	"created":        {"created", kDateTime, false, true},
	"createddate":    {"created", kDateTime, false, true},
	"updated":        {"updated", kDateTime, false, true},
	"updateddate":    {"updated", kDateTime, false, true},
	"resolved":       {"resolutiondate", kDateTime, false, true},
	"resolutiondate": {"resolutiondate", kDateTime, false, true},
	"due":            {"duedate", kDate, false, true},
	"duedate":        {"duedate", kDate, false, true},
	"creator":        {"creator", kUser, true, true},
	"reporter":       {"reporter", kUser, true, true},
	"assignee":       {"assignee", kUser, true, true},
	"summary":        {"summary", kText, false, true},
	"description":    {"description", kText, false, false},
	"environment":    {"environment", kText, false, false},
	"comment":        {"comment", kText, false, false},
	"text":           {"text", kText, false, false},
}

var customIDRe = regexp.MustCompile(`^(?i:customfield_)([0-9]+)$`)

// ops lists the operators each kind of field supports, as Jira does.
var ops = map[fkind]map[string]bool{
	kIdent:    set("=", "!=", "in", "not in", "is", "is not"),
	kKey:      set("=", "!=", "in", "not in", "<", "<=", ">", ">="),
	kLabels:   set("=", "!=", "in", "not in", "is", "is not"),
	kUser:     set("=", "!=", "in", "not in", "is", "is not"),
	kDateTime: set("=", "!=", "in", "not in", "is", "is not", "<", "<=", ">", ">="),
	kDate:     set("=", "!=", "in", "not in", "is", "is not", "<", "<=", ">", ">="),
	kNumber:   set("=", "!=", "in", "not in", "is", "is not", "<", "<=", ">", ">="),
	kText:     set("~", "!~", "is", "is not"),
}

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func customKind(t Type) fkind {
	switch t {
	case TypeText:
		return kText
	case TypeNumber:
		return kNumber
	case TypeDate:
		return kDate
	case TypeDateTime:
		return kDateTime
	case TypeUser:
		return kUser
	case TypeLabels:
		return kLabels
	default:
		return kIdent
	}
}

// resolveField finds a field by the name written in the query. cfID is set
// for the cf[NNN] form.
func (o *Options) resolveField(name string, cfID string) (field, bool) {
	if cfID == "" {
		if sf, ok := systemFields[strings.ToLower(name)]; ok {
			return field{id: sf.id, name: name, kind: sf.kind, validate: sf.validate, sortable: sf.sortable}, true
		}
	}
	if o.CustomField == nil {
		return field{}, false
	}
	ref := name
	if cfID != "" {
		ref = "customfield_" + cfID
	} else if m := customIDRe.FindStringSubmatch(name); m != nil {
		ref = "customfield_" + m[1]
	}
	cf, ok := o.CustomField(ref)
	if !ok || cf.ID == "" {
		return field{}, false
	}
	k := customKind(cf.Type)
	return field{id: cf.ID, name: name, kind: k, validate: k == kIdent, sortable: k != kText}, true
}
