package jql

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

type issue struct {
	key    string
	id     int64
	fields map[string][]Value
}

func (i issue) Values(f string) []Value {
	if f == "key" {
		return []Value{Issue(i.key, i.id)}
	}
	return i.fields[f]
}

var t0 = time.Date(2024, 1, 2, 10, 11, 0, 0, time.UTC)

func mk(key string, id int64, kv ...any) issue {
	is := issue{key: key, id: id, fields: map[string][]Value{}}
	for i := 0; i < len(kv); i += 2 {
		f := kv[i].(string)
		switch v := kv[i+1].(type) {
		case string:
			is.fields[f] = append(is.fields[f], String(v))
		case Value:
			is.fields[f] = append(is.fields[f], v)
		case time.Time:
			is.fields[f] = append(is.fields[f], Time(v))
		case float64:
			is.fields[f] = append(is.fields[f], Number(v))
		}
	}
	return is
}

func TestSmoke(t *testing.T) {
	t.Parallel()
	q, err := ParseWith(`project = ABC AND updated >= "2024/01/02 10:11" ORDER BY updated ASC, key DESC`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := mk("ABC-1", 1, "project", String("ABC", "Alpha"), "updated", t0.Add(30*time.Second))
	b := mk("ABC-2", 2, "project", "ABC", "updated", t0.Add(-time.Millisecond))
	c := mk("XYZ-1", 3, "project", "XYZ", "updated", t0)
	var hits []Doc
	for _, d := range []Doc{a, b, c} {
		ok, err := q.Match(d)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			hits = append(hits, d)
		}
	}
	if len(hits) != 1 || hits[0].(issue).key != "ABC-1" {
		t.Fatalf("hits = %v", hits)
	}
	docs := []Doc{a, b, c}
	slices.SortStableFunc(docs, q.Compare)
	var keys []string
	for _, d := range docs {
		keys = append(keys, d.(issue).key)
	}
	if got, want := strings.Join(keys, ","), "ABC-2,XYZ-1,ABC-1"; got != want {
		t.Errorf("order = %s, want %s", got, want)
	}
	_, err = Parse(`updated >= "2024-01-02 10:11:12"`)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
}
