package jql

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse checks that no input makes the parser or evaluator panic, that
// every refusal is an *Error with at least one message, and that accepted
// queries evaluate and sort without error. The seeds run in every go test.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "project = ABC", "ORDER BY key", `updated >= "2024/01/02 10:11"`, `updated >= -5m`,
		`updated > "2024-01-02 10:11:12"`, "a = b c", "cf[10010] > 3", `"Story Points" in (1, 2, EMPTY)`,
		"NOT (a = b OR c != d) AND e in (f, (g, h))", `summary ~ "\"x y\"" and text !~ 'z*'`,
		`assignee = currentUser() or reporter is not empty order by updated desc, key`,
		"status = \"unterminated", `x = \u00`, "'\\", "cf[", "((((", "a in ()", "key > ABC-1",
		"project = ABC\nAND\r\nstatus = open", "labels != EMPTY", `created > startOfDay("-1d")`,
		"\u007f", "\xff\xfe", "a=b order by a desc d", "!!!a=b", "a ~ for", "updated > 99999999999999999999",
	} {
		f.Add(s)
	}
	docs := corpus()
	f.Fuzz(func(t *testing.T, s string) {
		opts := testOptions()
		opts.Now = func() time.Time { return t0 }
		q, err := ParseWith(s, opts)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Messages) == 0 {
				t.Fatalf("ParseWith(%q) error %T %v, want *Error with messages", s, err, err)
			}
			for _, m := range e.Messages {
				if m == "" {
					t.Fatalf("ParseWith(%q): empty message", s)
				}
			}
			if utf8.ValidString(s) && strings.Contains(e.Error(), "%!") {
				t.Fatalf("ParseWith(%q): bad format in %q", s, e.Error())
			}
			return
		}
		for _, d := range docs {
			if _, err := q.Match(d); err != nil {
				t.Fatalf("Match(%q, %s): %v", s, d.key, err)
			}
		}
		sorted := slices.Clone(docs)
		slices.SortStableFunc(sorted, func(a, b issue) int { return q.Compare(a, b) })
	})
}
