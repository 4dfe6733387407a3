package jql

import (
	"fmt"
	"strings"
)

// Error is a query Jira would refuse with HTTP 400. Messages are Jira's own
// texts, one per problem, ready for the errorMessages array of Jira's error
// body. A syntax error carries one message; validation (unknown fields,
// values that do not exist, bad dates) carries every problem found.
type Error struct {
	Messages []string
}

func (e *Error) Error() string { return strings.Join(e.Messages, " ") }

// syntaxf builds a parse error; Jira prefixes every one of them.
func syntaxf(format string, args ...any) error {
	return &Error{Messages: []string{"Error in the JQL Query: " + fmt.Sprintf(format, args...)}}
}
