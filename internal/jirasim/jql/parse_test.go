package jql

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const prefix = "Error in the JQL Query: "

// Expected texts come from Jira Data Center's own JQL parser tests
// (TestJqlParsing), so the emulator answers bad JQL word for word.
func TestSyntaxErrors(t *testing.T) {
	t.Parallel()
	ops := " The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
	esc := ` The valid escape sequences are \', \", \t, \n, \r, \\, '\ ' and \uXXXX.`
	tests := []struct{ in, want string }{
		{"comment ~ 'test", "The quoted string 'test' has not been completed. (line 1, character 11)"},
		{"comment ~ 'test\n", "The quoted string 'test ' has not been completed. (line 1, character 11)"},
		{"priority=\"test\nword", "The quoted string 'test word' has not been completed. (line 1, character 10)"},
		{"comment ~ '", "The quoted string has not been completed. (line 1, character 11)"},
		{`comme\unt ~ 'test`, `'\un' is an illegal JQL escape sequence.` + esc + " (line 1, character 6)"},
		{`status = "\c"`, `'\c' is an illegal JQL escape sequence.` + esc + " (line 1, character 11)"},
		{`status = \`, `The escape sequence has not been completed.` + esc + " (line 1, character 10)"},
		{"mine{www = qwwr", `The character '{' is a reserved JQL character. You must enclose it in a string or use the escape '\u007b' instead. (line 1, character 5)`},
		{"minewww# = qwwr", `The character '#' is a reserved JQL character. You must enclose it in a string or use the escape '\u0023' instead. (line 1, character 8)`},
		{"minewww = qwwr}", `The character '}' is a reserved JQL character. You must enclose it in a string or use the escape '\u007d' instead. (line 1, character 15)`},
		{"reporter = bob@example.com", `The character '@' is a reserved JQL character. You must enclose it in a string or use the escape '\u0040' instead. (line 1, character 15)`},
		{"minewww =\u007fqwwr", `The character 'U+007F' on line 1 at position 10 must be escaped. Use the escape '\u007f' instead. (line 1, character 10)`},
		{"mqwwr=\"\u007f this is broken\"", `The character 'U+007F' on line 1 at position 8 must be escaped. Use the escape '\u007f' instead. (line 1, character 8)`},
		{"aaaaa=-3482094382084092840932809482", "'-3482094382084092840932809482' is not a valid number. Numbers must be between -9,223,372,036,854,775,808 and 9,223,372,036,854,775,807. (line 1, character 7)"},
		{"cf[1002020202002020202020202020020202822]=a", "'1002020202002020202020202020020202822' is not a valid number. Numbers must be between -9,223,372,036,854,775,808 and 9,223,372,036,854,775,807. (line 1, character 4)"},
		{"a =b order", "Expecting 'by' before the end of the query."},
		{"a =b order summary", "Expecting 'by' but got 'summary'. (line 1, character 12)"},
		{"a =b order by", "Expecting a field name at the end of the query."},
		{"a =b order by asc", "Expecting a field name but got 'asc'. You must surround 'asc' in quotation marks to use it as a field name. (line 1, character 15)"},
		{"a =b order by ajsks blah", "Expecting either 'ASC' or 'DESC' but got 'blah'. (line 1, character 21)"},
		{`a =b order by "" desc`, "A field name cannot be empty. (line 1, character 15)"},
		{"'' = c", "A field name cannot be empty. (line 1, character 1)"},
		{"a = ''()", "A function name cannot be empty. (line 1, character 5)"},
		{`a = ""()`, "A function name cannot be empty. (line 1, character 5)"},
		{"a", "Expecting operator before the end of the query." + ops},
		{"a blah >", "Expecting operator but got 'blah'." + ops + " (line 1, character 3)"},
		{"project & x", "Expecting operator but got '&'." + ops + " (line 1, character 9)"},
		{"a =a and j not is empty", "Expecting 'IN' but got 'is'. (line 1, character 16)"},
		{"a =a and j is ! empty", "Expecting 'NOT' but got '!'. (line 1, character 15)"},
		{"cf", "Expecting '[' before the end of the query."},
		{"a = b and not (cf = 6)", "Expecting '[' but got '='. (line 1, character 19)"},
		{"cf[", "Expecting a custom field id (a positive number) before the end of the query."},
		{"cf[ = 9", "Expecting a custom field id (a positive number) but got '='. (line 1, character 5)"},
		{"cf[] = 1", "Expecting a custom field id (a positive number) but got ']'. (line 1, character 4)"},
		{"cf[29829k] = ", "Expecting a custom field id (a positive number) but got '29829k'. (line 1, character 4)"},
		{"cf[-29829] = ", "Expecting a custom field id (a positive number) but got '-29829'. (line 1, character 4)"},
		{"cf[29829 = world", "Expecting ']' but got '='. (line 1, character 10)"},
		{"cf[29829", "Expecting ']' before the end of the query."},
		{"a = func(", "Expecting ')' before the end of the query."},
		{"a = func(, and not (a = x)", "Expecting ')' but got ','. (line 1, character 10)"},
		{"b=func(bad", "Expecting ')' before the end of the query."},
		{"bas=func(bad,)", "Function argument must be specified. (line 1, character 14)"},
		{"bas=func(bad,", "Expecting a function argument at the end of the query."},
		{"k = func(!", "Expecting a function argument but got '!'. You must surround '!' in quotation marks to use it as an argument. (line 1, character 10)"},
		{"k = func(abc, jk!)", "Expecting ')' or ',' but got '!'. (line 1, character 17)"},
		{"(a=b and c = d", "Expecting ')' before the end of the query."},
		{"a=b or (c=d and not l ~ kate", "Expecting ')' before the end of the query."},
		{"b in ((12, (288)", "Expecting ')' before the end of the query."},
		{"abc IN ((foo) abc = a", "Expecting ')' but got 'abc'. (line 1, character 15)"},
		{"a=", "Expecting either a value, list or function before the end of the query."},
		{"a=!", "Expecting either a value, list or function but got '!'. You must surround '!' in quotation marks to use it as a value. (line 1, character 3)"},
		{"a=b c=d", "Expecting either 'OR' or 'AND' but got 'c'. (line 1, character 5)"},
		{"a=b !c=d", "Expecting either 'OR' or 'AND' but got '!'. (line 1, character 5)"},
		{"project = ABC x", "Expecting either 'OR' or 'AND' but got 'x'. (line 1, character 15)"},
		{"a=(a,", "Expecting either a value, list or function before the end of the query."},
		{"a=(a,(,bad))", "Expecting either a value, list or function but got ','. You must surround ',' in quotation marks to use it as a value. (line 1, character 7)"},
		{"a = ((c,d), d, e, f, yyy) and", "Expecting a field name at the end of the query."},
		{`comment !~ "brenden" and`, "Expecting a field name at the end of the query."},
		{`comment !~ "brenden" jack = jill`, "Expecting either 'OR' or 'AND' but got 'jack'. (line 1, character 22)"},
		{`comment !~ "brenden" and cf[1000] = jill order by a desc b`, "Expecting ',' but got 'b'. (line 1, character 58)"},
		{", a = b", "Expecting a field name but got ','. You must surround ',' in quotation marks to use it as a field name. (line 1, character 1)"},
		{"order by a desc d", "Expecting ',' but got 'd'. (line 1, character 17)"},
		{"[brenden] = a", "Expecting a field name but got '['. Did you mean 'cf['? (line 1, character 1)"},
		{"a = brenden and [78] = q", "Expecting a field name but got '['. Did you mean 'cf['? (line 1, character 17)"},
		{"project = IN", "Expecting either a value, list or function but got 'IN'. You must surround 'IN' in quotation marks to use it as a value. (line 1, character 11)"},
		{"project = OR", "Expecting either a value, list or function but got 'OR'. You must surround 'OR' in quotation marks to use it as a value. (line 1, character 11)"},
		{"summary ~ for", "'for' is a reserved JQL word. You must surround it in quotation marks to use it in a query. (line 1, character 11)"},
		{"project = DO", "'DO' is a reserved JQL word. You must surround it in quotation marks to use it in a query. (line 1, character 11)"},
		{"status = 'End'\nand status = End", "'End' is a reserved JQL word. You must surround it in quotation marks to use it in a query. (line 2, character 14)"},
		{"updated >= 2024/01/02", `The character '/' is a reserved JQL character. You must enclose it in a string or use the escape '\u002f' instead. (line 1, character 16)`},
		{"(project = A))", "Expecting either 'OR' or 'AND' but got ')'. (line 1, character 14)"},
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want error %q", tt.in, q, tt.want)
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%q) error %T, want *Error", tt.in, err)
			continue
		}
		if len(e.Messages) != 1 || e.Messages[0] != prefix+tt.want {
			t.Errorf("Parse(%q)\n got %q\nwant %q", tt.in, e.Messages, prefix+tt.want)
		}
	}
}

type sites struct{ known map[string]bool }

func (s sites) Exists(field, value string) bool { return s.known[field+":"+strings.ToUpper(value)] }

func testOptions() Options {
	return Options{
		Now:         func() time.Time { return t0 },
		CurrentUser: "bob",
		CustomField: func(ref string) (CustomField, bool) {
			switch strings.ToLower(ref) {
			case "customfield_10010", "story points":
				return CustomField{ID: "customfield_10010", Name: "Story Points", Type: TypeNumber}, true
			case "customfield_10020", "team":
				return CustomField{ID: "customfield_10020", Name: "Team", Type: TypeOption}, true
			case "customfield_10030", "go live":
				return CustomField{ID: "customfield_10030", Name: "Go Live", Type: TypeDate}, true
			case "customfield_10040", "notes":
				return CustomField{ID: "customfield_10040", Name: "Notes", Type: TypeText}, true
			case "customfield_10050", "approver":
				return CustomField{ID: "customfield_10050", Name: "Approver", Type: TypeUser}, true
			}
			return CustomField{}, false
		},
		Validator: sites{known: map[string]bool{
			"project:ABC": true, "project:XYZ": true, "project:ALPHA": true,
			"issuetype:BUG": true, "issuetype:TASK": true, "issuetype:SUB-TASK": true,
			"status:OPEN": true, "status:DONE": true, "status:IN PROGRESS": true,
			"resolution:FIXED": true, "priority:HIGH": true, "priority:LOW": true,
			"assignee:BOB": true, "assignee:ALICE": true, "reporter:BOB": true, "reporter:ALICE": true, "creator:BOB": true,
			"key:ABC-1": true, "key:ABC-2": true, "key:ABC-10": true, "key:XYZ-1": true, "parent:ABC-1": true,
			"customfield_10020:RED": true, "customfield_10020:BLUE": true,
		}},
	}
}

func TestValidationErrors(t *testing.T) {
	t.Parallel()
	dateHelp := " is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
	tests := []struct {
		in   string
		want []string
	}{
		{"foo = bar", []string{"Field 'foo' does not exist or you do not have permission to view it."}},
		{"cf[99999] = 1", []string{"Field 'cf[99999]' does not exist or you do not have permission to view it."}},
		{`"No Such Field" = 1`, []string{"Field 'No Such Field' does not exist or you do not have permission to view it."}},
		{"project = NOPE", []string{"The value 'NOPE' does not exist for the field 'project'."}},
		{"project in (ABC, NOPE, ZZZ)", []string{
			"The value 'NOPE' does not exist for the field 'project'.",
			"The value 'ZZZ' does not exist for the field 'project'."}},
		{"project = NOPE AND issuetype = Story AND foo = 1", []string{
			"The value 'NOPE' does not exist for the field 'project'.",
			"The value 'Story' does not exist for the field 'issuetype'.",
			"Field 'foo' does not exist or you do not have permission to view it."}},
		{"statusCategory = Closed", []string{"The value 'Closed' does not exist for the field 'statusCategory'."}},
		{"status = Closed", []string{"The value 'Closed' does not exist for the field 'status'."}},
		{"assignee = carol", []string{"The value 'carol' does not exist for the field 'assignee'."}},
		{"Team = green", []string{"The value 'green' does not exist for the field 'Team'."}},
		{"key = ABC-99", []string{"An issue with key 'ABC-99' does not exist for field 'key'."}},
		{"issuekey = ABC", []string{"The issue key 'ABC' for field 'issuekey' is invalid."}},
		{"parent = ABC-2", []string{"An issue with key 'ABC-2' does not exist for field 'parent'."}},
		{`updated >= "2024-01-02 10:11:12"`, []string{"Date value '2024-01-02 10:11:12' for field 'updated'" + dateHelp}},
		{`created > "2024/01/02 10:11:12"`, []string{"Date value '2024/01/02 10:11:12' for field 'created'" + dateHelp}},
		{`updated > "2024-01-02T10:11:12.000+0000"`, []string{"Date value '2024-01-02T10:11:12.000+0000' for field 'updated'" + dateHelp}},
		{`updated > yesterday`, []string{"Date value 'yesterday' for field 'updated'" + dateHelp}},
		{`"Go Live" > "2024/13/01"`, []string{"Date value '2024/13/01' for field 'Go Live'" + dateHelp}},
		{"project ~ ABC", []string{"The operator '~' is not supported by the 'project' field."}},
		{"summary = x", []string{"The operator '=' is not supported by the 'summary' field."}},
		{"labels > x", []string{"The operator '>' is not supported by the 'labels' field."}},
		{"key is EMPTY", []string{"The operator 'is' is not supported by the 'key' field."}},
		{`summary ~ ""`, []string{"The field 'summary' does not support searching for an empty string."}},
		{"project = bogus()", []string{"Unable to find JQL function 'bogus()'."}},
		{"updated > now(1)", []string{"Function 'now' expected '0' arguments but received '1'."}},
		{"assignee = currentUser(x)", []string{"Function 'currentUser' expected '0' arguments but received '1'."}},
		{"updated > startOfDay(x)", []string{"Duration for function 'startOfDay' should have the format (+/-)n(yMwdm), e.g -1M for 1 month earlier."}},
		{"updated > currentUser()", []string{"A value for the field 'updated' provided by the function 'currentUser' is not valid."}},
		{"\"Story Points\" = many", []string{"The value 'many' does not exist for the field 'Story Points'."}},
		{"project = ABC ORDER BY foo, text", []string{
			"Not able to sort using field 'foo'.",
			"Not able to sort using field 'text'."}},
		{"project in ABC", []string{"Operator 'in' does not support the non-list value 'ABC' for field 'project'."}},
		{"project = (ABC, XYZ)", []string{"Operator '=' does not support the list value for field 'project'."}},
		{"project is ABC", []string{"The operator 'is' only supports searching for EMPTY values. Field 'project' is not valid with 'is'."}},
		{"updated > EMPTY", []string{"The operator '>' does not support searching for EMPTY values for field 'updated'."}},
	}
	for _, tt := range tests {
		q, err := ParseWith(tt.in, testOptions())
		if err == nil {
			t.Errorf("ParseWith(%q) = %v, want error %q", tt.in, q, tt.want)
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("ParseWith(%q) error %T, want *Error", tt.in, err)
			continue
		}
		if strings.Join(e.Messages, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("ParseWith(%q)\n got %q\nwant %q", tt.in, e.Messages, tt.want)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	good := []string{
		"",
		"   ",
		"ORDER BY key",
		"order by updated asc, key desc",
		"project = ABC",
		"PROJECT = abc and STATUS = open Or status = done",
		`project = "ABC" AND issuetype = 'Sub-task'`,
		`project = ALPHA`,
		"key in (ABC-1, ABC-2) AND NOT (status = Done) AND !(status = open)",
		"project = ABC && status = open || status = done",
		"project = ABC & status = open | status = done",
		"id = 10001",
		"issuekey > ABC-1",
		"assignee = currentUser() OR assignee IS EMPTY OR reporter is not null",
		"assignee in (currentUser(), alice, EMPTY)",
		"labels in (a, b) and labels not in (c) and labels = x and labels != y",
		`updated >= "2024/01/02 10:11" and updated < "2024-01-03 00:00" and created >= "2024/01/02" and created <= 2024-01-02`,
		`updated >= -5m and updated >= "-1h" and created > -2d and created > -1w and updated > "4w 2d" and updated > now()`,
		`updated > 1704190260000`,
		`cf[10010] > 3 and customfield_10010 <= 8.5 and "Story Points" in (1, 2) and "story points" is not empty`,
		`Team in (red, blue) and "Go Live" = "2024/01/02" and Notes ~ "hello world*" and Approver = currentUser()`,
		`summary ~ "\"exact phrase\"" and description !~ bug and text ~ 'it\'s'`,
		`resolution = Unresolved and priority in (High, Low)`,
		`statusCategory in ("To Do", indeterminate, 3, "No Category")`,
		`parent = ABC-1 and parent in (10001)`,
		`updated >= startOfDay() and updated <= endOfDay("-1d")`,
		"project = ABC\nAND\tstatus = open",
		`summary ~ "caf\u00e9"`,
	}
	for _, s := range good {
		if _, err := ParseWith(s, testOptions()); err != nil {
			t.Errorf("ParseWith(%q): %v", s, err)
		}
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	_, err := ParseWith("project = NOPE and foo = 1", testOptions())
	want := "The value 'NOPE' does not exist for the field 'project'. Field 'foo' does not exist or you do not have permission to view it."
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}
}
