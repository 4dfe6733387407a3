package jql

import (
	"cmp"
	"strings"
)

type sortKey struct {
	f    field
	desc bool
}

// defaultOrder applies when a query has no ORDER BY: newest key first, as
// Jira Data Center's REST search returns issues.
var defaultOrder = []sortKey{{f: field{id: "key", kind: kKey}, desc: true}}

// Compare orders two issues by the query's ORDER BY (or key DESC when it has
// none); ties fall back to the issue id ascending so that pages are stable.
// Empty values sort after every value in ascending order and first in
// descending order. A multi-valued field sorts by its first value. It suits
// slices.SortStableFunc.
func (q *Query) Compare(a, b Doc) int {
	order := q.order
	if len(order) == 0 {
		order = defaultOrder
	}
	for _, k := range order {
		r := compareField(k.f, a, b)
		if k.desc {
			r = -r
		}
		if r != 0 {
			return r
		}
	}
	return cmpFloat(firstNum(a), firstNum(b))
}

// Less reports whether a sorts before b; see Compare.
func (q *Query) Less(a, b Doc) bool { return q.Compare(a, b) < 0 }

func firstNum(d Doc) float64 {
	for _, v := range d.Values("key") {
		if v.Kind == KindIssue {
			return v.Num
		}
	}
	return 0
}

func first(f field, d Doc) (Value, bool) {
	for _, v := range d.Values(f.id) {
		if v.Kind != KindNull {
			return v, true
		}
	}
	return Value{}, false
}

func compareField(f field, a, b Doc) int {
	va, oka := first(f, a)
	vb, okb := first(f, b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return 1
	case !okb:
		return -1
	}
	if va.Kind != vb.Kind {
		return cmp.Compare(int(va.Kind), int(vb.Kind))
	}
	switch va.Kind {
	case KindIssue:
		pa, na, ok1 := splitKey(va.Str)
		pb, nb, ok2 := splitKey(vb.Str)
		if ok1 && ok2 {
			if r := strings.Compare(strings.ToUpper(pa), strings.ToUpper(pb)); r != 0 {
				return r
			}
			return cmp.Compare(na, nb)
		}
		return cmpFloat(va.Num, vb.Num)
	case KindNumber:
		return cmpFloat(va.Num, vb.Num)
	case KindTime:
		return va.Time.Compare(vb.Time)
	}
	return strings.Compare(strings.ToLower(va.Str), strings.ToLower(vb.Str))
}
