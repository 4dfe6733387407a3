package jql_test

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jirabridge/jirabridge/internal/jirasim/jql"
)

// issue is how an emulator might expose its issue model to the evaluator.
type issue struct {
	key     string
	id      int64
	project string
	updated time.Time
}

func (i issue) Values(field string) []jql.Value {
	switch field {
	case "key":
		return []jql.Value{jql.Issue(i.key, i.id)}
	case "project":
		return []jql.Value{jql.String(i.project)}
	case "updated":
		return []jql.Value{jql.Time(i.updated)}
	}
	return nil
}

func Example() {
	at := func(hm string) time.Time {
		t, _ := time.Parse("2006-01-02 15:04:05", "2024-01-02 "+hm)
		return t
	}
	issues := []issue{
		{"ABC-1", 10001, "ABC", at("10:11:00")},
		{"ABC-2", 10002, "ABC", at("10:10:59")},
		{"ABC-3", 10003, "ABC", at("10:11:30")},
		{"XYZ-1", 10004, "XYZ", at("10:30:00")},
	}
	opts := jql.Options{Location: time.UTC, Now: func() time.Time { return at("10:40:00") }}

	q, err := jql.ParseWith(`project = ABC AND updated >= "2024/01/02 10:11" ORDER BY updated DESC`, opts)
	if err != nil {
		panic(err)
	}
	var hits []issue
	for _, is := range issues {
		if ok, _ := q.Match(is); ok {
			hits = append(hits, is)
		}
	}
	slices.SortStableFunc(hits, func(a, b issue) int { return q.Compare(a, b) })
	for _, is := range hits {
		fmt.Println(is.key)
	}

	_, err = jql.ParseWith(`updated >= "2024-01-02 10:11:12"`, opts)
	var e *jql.Error
	if errors.As(err, &e) {
		fmt.Println(e.Messages[0])
	}
	// Output:
	// ABC-3
	// ABC-1
	// Date value '2024-01-02 10:11:12' for field 'updated' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.
}
