package jql

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Match reports whether the issue d satisfies the query's WHERE part. An
// error means d reported a value of the wrong kind for a field (a bug in the
// Doc), never that the query is bad.
func (q *Query) Match(d Doc) (bool, error) {
	if q.where == nil {
		return true, nil
	}
	return eval(q.where, d)
}

func eval(n node, d Doc) (bool, error) {
	switch n := n.(type) {
	case andNode:
		l, err := eval(n.l, d)
		if err != nil || !l {
			return false, err
		}
		return eval(n.r, d)
	case orNode:
		l, err := eval(n.l, d)
		if err != nil || l {
			return l, err
		}
		return eval(n.r, d)
	case notNode:
		x, err := eval(n.x, d)
		return !x, err
	case clauseNode:
		return n.match(d)
	}
	return false, fmt.Errorf("jql: unknown node %T", n)
}

// wantKind is the Value kind a Doc must return for each kind of field.
func wantKind(k fkind) Kind {
	switch k {
	case kKey:
		return KindIssue
	case kDateTime, kDate:
		return KindTime
	case kNumber:
		return KindNumber
	}
	return KindString
}

func (c clauseNode) values(d Doc) ([]Value, error) {
	raw := d.Values(c.f.id)
	vals := raw[:0:0]
	for _, v := range raw {
		if v.Kind == KindNull {
			continue
		}
		if want := wantKind(c.f.kind); v.Kind != want {
			return nil, fmt.Errorf("jql: field %q: doc returned a %s value, want %s", c.f.id, v.Kind, want)
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func (c clauseNode) match(d Doc) (bool, error) {
	vals, err := c.values(d)
	if err != nil {
		return false, err
	}
	anyMatch := func(pred func(Value, term) bool) bool {
		for _, t := range c.terms {
			if t.empty || t.none {
				continue
			}
			for _, v := range vals {
				if pred(v, t) {
					return true
				}
			}
		}
		return false
	}
	switch c.op {
	case "is":
		return len(vals) == 0, nil
	case "is not":
		return len(vals) > 0, nil
	case "=":
		return anyMatch(c.eq), nil
	case "!=", "not in":
		// Jira never returns issues whose field is empty for a negative
		// clause: "assignee != bob" leaves out unassigned issues.
		return len(vals) > 0 && !anyMatch(c.eq), nil
	case "in":
		for _, t := range c.terms {
			if t.empty && len(vals) == 0 {
				return true, nil
			}
		}
		return anyMatch(c.eq), nil
	case "<", "<=", ">", ">=":
		return anyMatch(func(v Value, t term) bool {
			r, ok := c.cmp(v, t)
			if !ok {
				return false
			}
			switch c.op {
			case "<":
				return r < 0
			case "<=":
				return r <= 0
			case ">":
				return r > 0
			}
			return r >= 0
		}), nil
	case "~":
		return len(vals) > 0 && anyMatch(func(_ Value, t term) bool { return textMatch(vals, t.s) }), nil
	case "!~":
		return len(vals) > 0 && !anyMatch(func(_ Value, t term) bool { return textMatch(vals, t.s) }), nil
	}
	return false, fmt.Errorf("jql: unknown operator %q", c.op)
}

func (c clauseNode) eq(v Value, t term) bool {
	switch c.f.kind {
	case kKey:
		if t.isID {
			return v.Num == t.n
		}
		return strings.EqualFold(v.Str, t.s)
	case kNumber:
		return v.Num == t.n
	case kDateTime:
		return minute(v.Time).Equal(minute(t.t))
	case kDate:
		return sameDay(v.Time, t.t, c.loc) == 0
	}
	if strings.EqualFold(v.Str, t.s) {
		return true
	}
	for _, a := range v.Aliases {
		if strings.EqualFold(a, t.s) {
			return true
		}
	}
	return false
}

// cmp orders a field value against a term; ok is false when they are not
// comparable (issue keys of different projects).
func (c clauseNode) cmp(v Value, t term) (int, bool) {
	switch c.f.kind {
	case kKey:
		if t.isID {
			return cmpFloat(v.Num, t.n), true
		}
		vp, vn, ok1 := splitKey(v.Str)
		tp, tn, ok2 := splitKey(t.s)
		if !ok1 || !ok2 || !strings.EqualFold(vp, tp) {
			return 0, false
		}
		return cmp.Compare(vn, tn), true
	case kNumber:
		return cmpFloat(v.Num, t.n), true
	case kDateTime:
		return minute(v.Time).Compare(minute(t.t)), true
	case kDate:
		return sameDay(v.Time, t.t, c.loc), true
	}
	return 0, false
}

// minute truncates a time to the minute: JQL compares date-times at minute
// precision on both sides, so "updated > '2024/01/02 10:11'" leaves out an
// update at 10:11:30 and "updated = '2024/01/02 10:11'" includes it.
func minute(t time.Time) time.Time { return t.Truncate(time.Minute) }

func splitKey(k string) (string, int64, bool) {
	i := strings.LastIndexByte(k, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(k[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return k[:i], n, true
}

// cmpFloat orders like cmp.Compare except that NaN compares equal to every
// number instead of below it, as the evaluator always has.
func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// textMatch is a small stand-in for Jira's full-text search: every word of
// the query must occur as a word of the text (case-insensitive); a word
// ending in * matches as a prefix; a query in escaped double quotes
// ("\"full screen\"") must occur as a phrase.
func textMatch(vals []Value, q string) bool {
	var words []string
	for _, v := range vals {
		words = append(words, tokenize(v.Str, false)...)
	}
	q = strings.TrimSpace(q)
	if len(q) >= 2 && q[0] == '"' && q[len(q)-1] == '"' {
		phrase := tokenize(q[1:len(q)-1], false)
		if len(phrase) == 0 {
			return false
		}
		for i := 0; i+len(phrase) <= len(words); i++ {
			ok := true
			for j, w := range phrase {
				if words[i+j] != w {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
		return false
	}
	want := tokenize(q, true)
	if len(want) == 0 {
		return false
	}
	for _, w := range want {
		found := false
		for _, have := range words {
			if p, ok := strings.CutSuffix(w, "*"); ok && strings.HasPrefix(have, p) || have == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func tokenize(s string, keepStar bool) []string {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !(keepStar && r == '*')
	})
	for i, w := range words {
		if !strings.HasSuffix(w, "*") {
			words[i] = stem(w)
		}
	}
	return words
}

// stem folds English plurals, a rough stand-in for the stemming of Jira's
// English analyzer: "crashes" and "crash", "logins" and "login" match.
func stem(w string) string {
	switch {
	case len(w) > 4 && strings.HasSuffix(w, "ies"):
		return w[:len(w)-3] + "y"
	case len(w) > 4 && strings.HasSuffix(w, "es") && strings.ContainsAny(w[len(w)-3:len(w)-2], "sxzh"):
		return w[:len(w)-2]
	case len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss"):
		return w[:len(w)-1]
	}
	return w
}
