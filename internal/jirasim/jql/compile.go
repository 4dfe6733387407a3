package jql

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

type compiler struct {
	opts *Options
	now  time.Time
	errs []string
}

func (c *compiler) errf(parts ...string) { c.errs = append(c.errs, strings.Join(parts, "")) }

// term is one resolved operand value.
type term struct {
	empty bool      // EMPTY / NULL
	none  bool      // matches nothing (currentUser() when anonymous)
	s     string    // string, user, key, text
	n     float64   // number or issue id
	isID  bool      // issue field given a numeric id
	t     time.Time // dates
}

type node interface{}

type andNode struct{ l, r node }
type orNode struct{ l, r node }
type notNode struct{ x node }

type clauseNode struct {
	f     field
	op    string
	terms []term
	loc   *time.Location
}

func (c *compiler) node(a astNode) node {
	switch a := a.(type) {
	case astAnd:
		return andNode{c.node(a.l), c.node(a.r)}
	case astOr:
		return orNode{c.node(a.l), c.node(a.r)}
	case astNot:
		return notNode{c.node(a.x)}
	case astClause:
		return c.clause(a)
	}
	return nil
}

// statusCategories are Jira's fixed status categories by name, key and id.
var statusCategories = map[string]bool{
	"1": true, "2": true, "3": true, "4": true,
	"undefined": true, "new": true, "indeterminate": true, "done": true,
	"no category": true, "to do": true, "in progress": true,
}

var issueKeyRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[0-9]+$`)

func (c *compiler) clause(a astClause) node {
	f, ok := c.opts.resolveField(a.field, a.cfID)
	if !ok {
		c.errf("Field '", a.field, "' does not exist or you do not have permission to view it.")
		return nil
	}
	if !ops[f.kind][a.op] {
		c.errf("The operator '", a.op, "' is not supported by the '", f.name, "' field.")
		return nil
	}
	cn := clauseNode{f: f, op: a.op, loc: c.opts.Location}
	o := a.operand
	switch a.op {
	case "in", "not in":
		if o.kind != oList && o.kind != oFunc {
			c.errf("Operator '", a.op, "' does not support the non-list value '", o.tok.text, "' for field '", f.name, "'.")
			return nil
		}
	case "is", "is not":
		if o.kind != oEmpty {
			c.errf("The operator '", a.op, "' only supports searching for EMPTY values. Field '", f.name, "' is not valid with '", a.op, "'.")
			return nil
		}
	default:
		if o.kind == oList {
			c.errf("Operator '", a.op, "' does not support the list value for field '", f.name, "'.")
			return nil
		}
	}
	if o.kind == oEmpty && a.op != "=" && a.op != "!=" && a.op != "is" && a.op != "is not" {
		c.errf("The operator '", a.op, "' does not support searching for EMPTY values for field '", f.name, "'.")
		return nil
	}
	n := len(c.errs)
	cn.terms = c.terms(f, a.op, o, nil)
	if len(c.errs) > n {
		return nil
	}
	// = EMPTY and != EMPTY are IS and IS NOT in Jira.
	if len(cn.terms) == 1 && cn.terms[0].empty {
		switch cn.op {
		case "=":
			cn.op = "is"
		case "!=":
			cn.op = "is not"
		}
	}
	return cn
}

func (c *compiler) terms(f field, op string, o astOperand, out []term) []term {
	switch o.kind {
	case oEmpty:
		if f.kind == kKey {
			c.errf("The field '", f.name, "' does not support searching for EMPTY values.")
			return out
		}
		return append(out, term{empty: true})
	case oList:
		for _, item := range o.list {
			out = c.terms(f, op, item, out)
		}
		return out
	case oFunc:
		return c.function(f, o, out)
	}
	v := o.tok.text
	switch f.kind {
	case kDateTime, kDate:
		t, ok := parseDate(v, c.opts.Location, c.now)
		if !ok {
			c.errf(dateErr(v, f.name))
			return out
		}
		return append(out, term{t: t})
	case kNumber:
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			c.errf("The value '", v, "' does not exist for the field '", f.name, "'.")
			return out
		}
		return append(out, term{n: n})
	case kKey:
		if isDigits(v) {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				c.errf("The value '", v, "' does not exist for the field '", f.name, "'.")
				return out
			}
			return append(out, term{n: float64(n), isID: true})
		}
		if !issueKeyRe.MatchString(v) {
			c.errf("The issue key '", v, "' for field '", f.name, "' is invalid.")
			return out
		}
		if c.opts.Validator != nil && !c.opts.Validator.Exists(f.id, v) {
			c.errf("An issue with key '", v, "' does not exist for field '", f.name, "'.")
			return out
		}
		return append(out, term{s: v})
	case kText:
		if strings.TrimSpace(v) == "" {
			c.errf("The field '", f.name, "' does not support searching for an empty string.")
			return out
		}
		return append(out, term{s: v})
	}
	if f.id == "resolution" && strings.EqualFold(v, "unresolved") {
		return append(out, term{empty: true})
	}
	if f.id == "statuscategory" && !statusCategories[strings.ToLower(v)] {
		c.errf("The value '", v, "' does not exist for the field '", f.name, "'.")
		return out
	}
	if f.validate && c.opts.Validator != nil && !c.opts.Validator.Exists(f.id, v) {
		c.errf("The value '", v, "' does not exist for the field '", f.name, "'.")
		return out
	}
	return append(out, term{s: v})
}

func (c *compiler) function(f field, o astOperand, out []term) []term {
	name := strings.ToLower(o.tok.text)
	want := 0
	var t term
	switch name {
	case "currentuser":
		if f.kind != kUser {
			c.errf("A value for the field '", f.name, "' provided by the function 'currentUser' is not valid.")
			return out
		}
		t = term{s: c.opts.CurrentUser, none: c.opts.CurrentUser == ""}
	case "now":
		if f.kind != kDateTime && f.kind != kDate {
			c.errf("A value for the field '", f.name, "' provided by the function 'now' is not valid.")
			return out
		}
		t = term{t: c.now}
	case "startofday", "endofday":
		want = -1
		if f.kind != kDateTime && f.kind != kDate {
			c.errf("A value for the field '", f.name, "' provided by the function '", o.tok.text, "' is not valid.")
			return out
		}
		day := c.now.In(c.opts.Location)
		y, m, d := day.Date()
		start := time.Date(y, m, d, 0, 0, 0, 0, c.opts.Location)
		if len(o.args) > 1 {
			c.errf("Function '", o.tok.text, "' expected between '0' and '1' arguments but received '", strconv.Itoa(len(o.args)), "'.")
			return out
		}
		if len(o.args) == 1 {
			shifted, ok := parseDate(o.args[0], c.opts.Location, start)
			if !ok || periodRe.FindStringSubmatch(strings.TrimSpace(o.args[0])) == nil {
				c.errf("Duration for function '", o.tok.text, "' should have the format (+/-)n(yMwdm), e.g -1M for 1 month earlier.")
				return out
			}
			start = shifted
		}
		if name == "endofday" {
			start = start.AddDate(0, 0, 1).Add(-time.Millisecond)
		}
		t = term{t: start}
	default:
		c.errf("Unable to find JQL function '", o.tok.text, "(", strings.Join(o.args, ", "), ")'.")
		return out
	}
	if want >= 0 && len(o.args) != want {
		c.errf("Function '", o.tok.text, "' expected '", strconv.Itoa(want), "' arguments but received '", strconv.Itoa(len(o.args)), "'.")
		return out
	}
	return append(out, t)
}
