package jql

import (
	"strings"
	"time"
)

// Options configure how a query is resolved. The zero value works: UTC,
// the wall clock, no current user, no custom fields, no value validation.
type Options struct {
	// Location interprets dates without an offset, as Jira does with the
	// searching user's time zone. Nil means UTC.
	Location *time.Location
	// Now is the clock for relative dates ("-5m") and now(). Nil means time.Now.
	Now func() time.Time
	// CurrentUser is the username currentUser() stands for; empty means an
	// anonymous search, for which currentUser() matches nothing.
	CurrentUser string
	// CustomField resolves a custom field reference: "customfield_10010" for
	// cf[10010] and customfield_10010, or a display name as written (quoted
	// or not) for any other name that is not a system field. Nil means the
	// site has no custom fields.
	CustomField func(ref string) (CustomField, bool)
	// Validator, if set, is asked whether the values a query names exist,
	// so that unknown ones fail as in Jira.
	Validator Validator
}

// Validator tells the parser whether a value exists on the site.
type Validator interface {
	// Exists reports whether value names an existing object for the field
	// with the given Doc id: "project" (key, name or id), "issuetype",
	// "status", "resolution", "priority" (name or id), "assignee",
	// "reporter", "creator" (username, display name or e-mail), "key" and
	// "parent" (an issue key), or a custom select field id (an option).
	Exists(field, value string) bool
}

// Query is a parsed, validated JQL query. It is immutable and safe for
// concurrent use.
type Query struct {
	where node // nil matches every issue
	order []sortKey
}

// SortKey is one ORDER BY term.
type SortKey struct {
	Field string // Doc field id, e.g. "updated", "key", "customfield_10010"
	Desc  bool
}

// OrderBy returns the query's ORDER BY terms as written (field ids
// resolved); empty when the query has none.
func (q *Query) OrderBy() []SortKey {
	out := make([]SortKey, len(q.order))
	for i, k := range q.order {
		out[i] = SortKey{Field: k.f.id, Desc: k.desc}
	}
	return out
}

// Parse parses a query with zero Options: system fields only, UTC, the wall
// clock, no value validation.
func Parse(s string) (*Query, error) { return ParseWith(s, Options{}) }

// ParseWith parses and validates a query. Errors are *Error with Jira's
// messages: a syntax error (one message), or every validation problem.
func ParseWith(s string, opts Options) (*Query, error) {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	ast, order, err := p.query()
	if err != nil {
		return nil, err
	}
	c := &compiler{opts: &opts, now: opts.Now()}
	q := &Query{}
	if ast != nil {
		q.where = c.node(ast)
	}
	for _, o := range order {
		f, ok := opts.resolveField(o.name, o.cfID)
		if !ok || !f.sortable {
			c.errs = append(c.errs, "Not able to sort using field '"+o.name+"'.")
			continue
		}
		q.order = append(q.order, sortKey{f: f, desc: o.desc})
	}
	if len(c.errs) > 0 {
		return nil, &Error{Messages: dedupe(c.errs)}
	}
	return q, nil
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// Syntax tree, before field resolution.

type astNode interface{}

type astAnd struct{ l, r astNode }
type astOr struct{ l, r astNode }
type astNot struct{ x astNode }

type astClause struct {
	field   string
	cfID    string
	op      string // lower case: "=", "not in", "is not", ...
	operand astOperand
}

type operandKind uint8

const (
	oValue operandKind = iota
	oEmpty
	oFunc
	oList
)

type astOperand struct {
	kind   operandKind
	tok    token // value token (word or string); function name token
	args   []string
	list   []astOperand
	quoted bool
}

type astOrder struct {
	name string
	cfID string
	desc bool
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) take() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

const validOps = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."

func (p *parser) query() (astNode, []astOrder, error) {
	var where astNode
	if k := p.peek().kind; k != tEOF && k != tOrder {
		var err error
		if where, err = p.or(); err != nil {
			return nil, nil, err
		}
	}
	var order []astOrder
	if p.peek().kind == tOrder {
		var err error
		if order, err = p.orderBy(); err != nil {
			return nil, nil, err
		}
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, nil, syntaxf("Expecting either 'OR' or 'AND' but got '%s'. %s", t.raw, t.at())
	}
	return where, order, nil
}

func (p *parser) or() (astNode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tOr {
		p.take()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = astOr{l, r}
	}
	return l, nil
}

func (p *parser) and() (astNode, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tAnd {
		p.take()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = astAnd{l, r}
	}
	return l, nil
}

func (p *parser) not() (astNode, error) {
	switch p.peek().kind {
	case tNot, tBang:
		p.take()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return astNot{x}, nil
	case tLParen:
		p.take()
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		t := p.take()
		switch t.kind {
		case tRParen:
			return x, nil
		case tEOF:
			return nil, syntaxf("Expecting ')' before the end of the query.")
		default:
			return nil, syntaxf("Expecting ')' but got '%s'. %s", t.raw, t.at())
		}
	}
	return p.clause()
}

// fieldName parses a field reference: a word, a quoted name or cf[NNN].
func (p *parser) fieldName() (name, cfID string, err error) {
	t := p.take()
	switch t.kind {
	case tEOF:
		return "", "", syntaxf("Expecting a field name at the end of the query.")
	case tLBrack:
		return "", "", syntaxf("Expecting a field name but got '['. Did you mean 'cf['? %s", t.at())
	case tString:
		if t.text == "" {
			return "", "", syntaxf("A field name cannot be empty. %s", t.at())
		}
		return t.text, "", nil
	case tWord:
		if strings.EqualFold(t.raw, "cf") {
			return p.cfRef(t)
		}
		return t.text, "", nil
	}
	return "", "", syntaxf("Expecting a field name but got '%s'. You must surround '%s' in quotation marks to use it as a field name. %s", t.raw, t.raw, t.at())
}

func (p *parser) cfRef(cf token) (string, string, error) {
	t := p.take()
	if t.kind == tEOF {
		return "", "", syntaxf("Expecting '[' before the end of the query.")
	}
	if t.kind != tLBrack {
		return "", "", syntaxf("Expecting '[' but got '%s'. %s", t.raw, t.at())
	}
	t = p.take()
	if t.kind == tEOF {
		return "", "", syntaxf("Expecting a custom field id (a positive number) before the end of the query.")
	}
	if t.kind != tWord || !isDigits(t.raw) || len(t.raw) > 18 {
		return "", "", syntaxf("Expecting a custom field id (a positive number) but got '%s'. %s", t.raw, t.at())
	}
	id := t.raw
	t = p.take()
	if t.kind == tEOF {
		return "", "", syntaxf("Expecting ']' before the end of the query.")
	}
	if t.kind != tRBrack {
		return "", "", syntaxf("Expecting ']' but got '%s'. %s", t.raw, t.at())
	}
	return cf.raw + "[" + id + "]", id, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (p *parser) clause() (astNode, error) {
	name, cfID, err := p.fieldName()
	if err != nil {
		return nil, err
	}
	c := astClause{field: name, cfID: cfID}
	t := p.take()
	switch t.kind {
	case tOp:
		c.op = t.raw
	case tIn:
		c.op = "in"
	case tNot:
		n := p.take()
		if n.kind == tEOF {
			return nil, syntaxf("Expecting 'IN' before the end of the query.")
		}
		if n.kind != tIn {
			return nil, syntaxf("Expecting 'IN' but got '%s'. %s", n.raw, n.at())
		}
		c.op = "not in"
	case tIs:
		c.op = "is"
		switch n := p.peek(); n.kind {
		case tNot:
			p.take()
			c.op = "is not"
		case tBang:
			return nil, syntaxf("Expecting 'NOT' but got '%s'. %s", n.raw, n.at())
		}
	case tEOF:
		return nil, syntaxf("Expecting operator before the end of the query. %s", validOps)
	default:
		return nil, syntaxf("Expecting operator but got '%s'. %s %s", t.raw, validOps, t.at())
	}
	if c.operand, err = p.operand(); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *parser) operand() (astOperand, error) {
	t := p.take()
	switch t.kind {
	case tEmpty:
		return astOperand{kind: oEmpty, tok: t}, nil
	case tWord, tString:
		if p.peek().kind == tLParen {
			p.take()
			if t.text == "" {
				return astOperand{}, syntaxf("A function name cannot be empty. %s", t.at())
			}
			args, err := p.args()
			if err != nil {
				return astOperand{}, err
			}
			return astOperand{kind: oFunc, tok: t, args: args}, nil
		}
		return astOperand{kind: oValue, tok: t, quoted: t.kind == tString}, nil
	case tLParen:
		o := astOperand{kind: oList, tok: t}
		for {
			item, err := p.operand()
			if err != nil {
				return astOperand{}, err
			}
			o.list = append(o.list, item)
			n := p.take()
			switch n.kind {
			case tComma:
				continue
			case tRParen:
				return o, nil
			case tEOF:
				return astOperand{}, syntaxf("Expecting ')' before the end of the query.")
			default:
				return astOperand{}, syntaxf("Expecting ')' but got '%s'. %s", n.raw, n.at())
			}
		}
	case tEOF:
		return astOperand{}, syntaxf("Expecting either a value, list or function before the end of the query.")
	}
	return astOperand{}, syntaxf("Expecting either a value, list or function but got '%s'. You must surround '%s' in quotation marks to use it as a value. %s", t.raw, t.raw, t.at())
}

func (p *parser) args() ([]string, error) {
	var args []string
	switch p.peek().kind {
	case tRParen:
		p.take()
		return args, nil
	case tEOF:
		return nil, syntaxf("Expecting ')' before the end of the query.")
	}
	for {
		t := p.take()
		switch t.kind {
		case tWord, tString:
			args = append(args, t.text)
		case tEOF:
			return nil, syntaxf("Expecting a function argument at the end of the query.")
		case tRParen:
			return nil, syntaxf("Function argument must be specified. %s", t.at())
		case tComma:
			return nil, syntaxf("Expecting ')' but got ','. %s", t.at())
		default:
			return nil, syntaxf("Expecting a function argument but got '%s'. You must surround '%s' in quotation marks to use it as an argument. %s", t.raw, t.raw, t.at())
		}
		n := p.take()
		switch n.kind {
		case tRParen:
			return args, nil
		case tComma:
			continue
		case tEOF:
			return nil, syntaxf("Expecting ')' before the end of the query.")
		default:
			return nil, syntaxf("Expecting ')' or ',' but got '%s'. %s", n.raw, n.at())
		}
	}
}

func (p *parser) orderBy() ([]astOrder, error) {
	p.take() // ORDER
	t := p.take()
	if t.kind == tEOF {
		return nil, syntaxf("Expecting 'by' before the end of the query.")
	}
	if t.kind != tBy {
		return nil, syntaxf("Expecting 'by' but got '%s'. %s", t.raw, t.at())
	}
	var out []astOrder
	for {
		name, cfID, err := p.fieldName()
		if err != nil {
			return nil, err
		}
		o := astOrder{name: name, cfID: cfID}
		switch p.peek().kind {
		case tAsc:
			p.take()
		case tDesc:
			p.take()
			o.desc = true
		case tEOF, tComma:
		default:
			t := p.peek()
			return nil, syntaxf("Expecting either 'ASC' or 'DESC' but got '%s'. %s", t.raw, t.at())
		}
		out = append(out, o)
		t := p.take()
		switch t.kind {
		case tEOF:
			return out, nil
		case tComma:
			continue
		default:
			return nil, syntaxf("Expecting ',' but got '%s'. %s", t.raw, t.at())
		}
	}
}
