package jql

import (
	"strconv"
	"time"
)

// Kind says what a Value holds.
type Kind uint8

// The kinds of Value. The zero Value is KindNull; a Doc may return it or,
// simpler, no value at all for an empty field.
const (
	KindNull Kind = iota
	KindString
	KindNumber
	KindTime
	KindIssue
)

func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindTime:
		return "time"
	case KindIssue:
		return "issue"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one value of an issue field as a Doc reports it.
type Value struct {
	Kind Kind
	// Str is the text of a string (a project key, a status name, a
	// username, a label, a summary) or the key of an issue.
	Str string
	// Aliases are other names JQL accepts for the same thing, such as a
	// project's name and id, a user's display name and e-mail, a status id.
	// They take part in equality, not in ordering.
	Aliases []string
	// Num is a number, or the numeric id of an issue.
	Num float64
	// Time is a point in time (for date-only fields, any time on that day).
	Time time.Time
}

// String returns a string value; aliases are other names for the same thing.
func String(s string, aliases ...string) Value {
	return Value{Kind: KindString, Str: s, Aliases: aliases}
}

// Number returns a number value.
func Number(n float64) Value { return Value{Kind: KindNumber, Num: n} }

// Time returns a time value.
func Time(t time.Time) Value { return Value{Kind: KindTime, Time: t} }

// Issue returns an issue reference (for key, id and parent): JQL matches it
// by key or by numeric id.
func Issue(key string, id int64) Value { return Value{Kind: KindIssue, Str: key, Num: float64(id)} }

// Doc is one issue as the evaluator sees it. Values returns the values of a
// field, no values when the field is empty, several for a multi-valued field
// (labels, multi-selects). field is one of the ids listed in the package
// documentation, or a custom field id such as "customfield_10010".
type Doc interface {
	Values(field string) []Value
}
