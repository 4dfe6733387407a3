// Package jql parses and evaluates the subset of Jira Query Language that
// jirasim's search endpoint supports, with Jira Data Center's semantics and
// error texts. It does no I/O: the emulator adapts its issues to Doc.
//
// Use:
//
//	q, err := jql.ParseWith(s, jql.Options{Location: userTZ, Now: clock, CurrentUser: "bob",
//		CustomField: catalogue.Lookup, Validator: site})
//	var e *jql.Error
//	if errors.As(err, &e) { /* 400, {"errorMessages": e.Messages, "errors": {}} */ }
//	for _, is := range issues { if ok, _ := q.Match(is); ok { hits = append(hits, is) } }
//	slices.SortStableFunc(hits, q.Compare)
//
// # Grammar
//
// Clauses "field operator operand" joined by AND (also && and &), OR (|| and
// |), NOT (or !) and parentheses; NOT binds tighter than AND, AND tighter
// than OR. Keywords are case-insensitive. Operators: = != < <= > >= ~ !~
// IN, NOT IN, IS, IS NOT. Operands: bare words, quoted strings ('...' or
// "...", escapes \' \" \t \n \r \\ '\ ' \uXXXX), EMPTY and NULL, lists
// "(a, b)", functions currentUser(), now(), startOfDay([inc]) and
// endOfDay([inc]). An optional "ORDER BY f [ASC|DESC], g ..." ends the
// query. The empty query matches every issue. Jira's reserved words and
// characters must be quoted, as in Jira.
//
// # Fields and the Doc ids they read
//
//	project                 "project"        String(key, name, id)
//	key, issuekey, id       "key"            Issue(key, id)
//	parent                  "parent"         Issue(key, id)
//	issuetype, type         "issuetype"      String(name, id)
//	status                  "status"         String(name, id)
//	statusCategory          "statuscategory" String(name, key, id): "To Do", "new", "2"
//	resolution              "resolution"     String(name, id); "Unresolved" means EMPTY
//	priority                "priority"       String(name, id)
//	labels                  "labels"         String per label
//	created, createdDate    "created"        Time
//	updated, updatedDate    "updated"        Time
//	resolved                "resolutiondate" Time
//	due, duedate            "duedate"        Time (day precision)
//	creator, reporter, assignee              String(username, display name, e-mail, ...)
//	summary, description, environment, comment (~ only)   String per text
//	text (~ only)           "text"           summary, description, environment, comments
//	cf[10010], customfield_10010, "Display Name"   Options.CustomField, then "customfield_10010"
//
// # Semantics (Jira's, where known)
//
//   - = and IN on a multi-valued field match when any value matches.
//   - != and NOT IN never match an issue whose field is empty ("assignee !=
//     bob" leaves unassigned issues out); add "OR assignee IS EMPTY" for them.
//     IN (..., EMPTY) also matches empty fields; = EMPTY is IS EMPTY.
//   - String equality is case-insensitive and also tries a value's Aliases.
//   - Dates: "yyyy/MM/dd HH:mm", "yyyy-MM-dd HH:mm", "yyyy/MM/dd",
//     "yyyy-MM-dd" in Options.Location (a date alone is the start of that
//     day), periods relative to Options.Now such as -5m, -1h, -2d, -1w,
//     "4w 2d" (d = 24h, w = 7d), and milliseconds since the epoch. A value
//     with seconds is refused with Jira's "Date value ... is invalid"
//     message. Date-time comparisons run at minute precision on both
//     sides (the field's time and the operand are truncated to the minute):
//     updated >= "2024/01/02 10:11" includes 10:11:00.000, updated >
//     "2024/01/02 10:11" leaves out 10:11:30, and = matches the whole
//     minute. Fields of TypeDate compare whole days in Options.Location.
//     Ordering uses the full stored precision.
//   - Keys compare by number within one project (key > ABC-10); a numeric
//     operand of key/id/parent matches the issue id.
//   - ~ is a small full-text stand-in: all words must appear (case-
//     insensitive, "win*" as a prefix, "\"a phrase\"" as a phrase); no stemming.
//   - Without ORDER BY, issues come newest key first (key DESC); ties are
//     broken by issue id ascending. Empty values sort last ascending, first
//     descending; strings sort case-insensitively (priority and status by
//     name, not by Jira's scheme order).
//
// # Errors
//
// Every refusal is an *Error whose Messages are Jira's texts for
// errorMessages: syntax errors ("Error in the JQL Query: Expecting either
// 'OR' or 'AND' but got 'x'. (line 1, character 12)"), unknown fields
// ("Field 'foo' does not exist or you do not have permission to view it."),
// values the Validator does not know ("The value 'XYZ' does not exist for
// the field 'project'.", "An issue with key 'ABC-9' does not exist for field
// 'key'."), bad dates, unsortable fields ("Not able to sort using field
// 'x'."). The texts for IS with a value and for IN with a single value are
// modelled on Jira's style, not captured from it.
package jql
