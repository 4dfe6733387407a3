package jql

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF    tokKind = iota
	tWord           // unquoted string
	tString         // quoted string
	tLParen         // (
	tRParen         // )
	tComma          // ,
	tLBrack         // [
	tRBrack         // ]
	tOp             // = != < > <= >= ~ !~
	tBang           // !
	tAnd            // AND && &
	tOr             // OR || |
	tNot            // NOT
	tIn             // IN
	tIs             // IS
	tEmpty          // EMPTY NULL
	tOrder          // ORDER
	tBy             // BY
	tAsc            // ASC
	tDesc           // DESC
)

type token struct {
	kind tokKind
	text string // value (unescaped) for words and strings; source text otherwise
	raw  string // source text as typed, for messages
	line int
	col  int
}

func (t token) at() string { return fmt.Sprintf("(line %d, character %d)", t.line, t.col) }

var keywords = map[string]tokKind{
	"and": tAnd, "or": tOr, "not": tNot, "in": tIn, "is": tIs,
	"empty": tEmpty, "null": tEmpty, "order": tOrder, "by": tBy,
	"asc": tAsc, "desc": tDesc,
}

// reservedWords are words Jira refuses unquoted anywhere in a query (from
// Jira's JqlStringSupportImpl, minus the words JQL itself uses).
var reservedWords = wordSet(`abort access add alias all alter any as audit avg begin between
	boolean break byte catch char character check checkpoint collate collation column commit connect
	continue count create current date decimal declare decrement default defaults define delete
	delimiter difference distinct divide do double drop else encoding end equals escape exclusive
	exec execute exists explain false fetch file field first float for function go goto grant greater
	group having identified if immediate increment index initial inner inout input insert int integer
	intersect intersection into isempty isnull join last left less like limit lock long max min minus
	mode modify modulo more multiply next noaudit notin nowait number object of option outer output
	power previous prior privileges public raise raw remainder rename resource return returns revoke
	right row rowid rownum rows select session set share size sqrt start strict string subtract sum
	synonym table then trans transaction trigger true uid union unique update user validate values
	view when whenever where while with`)

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// reservedChars may not appear unquoted in a query.
const reservedChars = "{}*/%+^$#@?;"

var numberRe = regexp.MustCompile(`^-?[0-9]+$`)

const validEscapes = `The valid escape sequences are \', \", \t, \n, \r, \\, '\ ' and \uXXXX.`

type lexer struct {
	src  string
	i    int
	line int
	col  int // 1-based column of src[i]
}

func lex(src string) ([]token, error) {
	lx := &lexer{src: src, line: 1, col: 1}
	var out []token
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		if t.kind == tEOF {
			return out, nil
		}
	}
}

func (lx *lexer) peekRune(off int) rune {
	if lx.i+off >= len(lx.src) {
		return -1
	}
	r, _ := utf8.DecodeRuneInString(lx.src[lx.i+off:])
	return r
}

func (lx *lexer) advance() rune {
	r, n := utf8.DecodeRuneInString(lx.src[lx.i:])
	lx.i += n
	if r == '\n' {
		lx.line++
		lx.col = 1
	} else {
		lx.col++
	}
	return r
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' }

// isIllegal reports control characters Jira insists on escaping.
func isIllegal(r rune) bool {
	return (r < 0x20 && !isSpace(r)) || (r >= 0x7f && r <= 0x9f) || r == 0xfffe || r == 0xffff || r == utf8.RuneError
}

func illegalErr(r rune, line, col int) error {
	return syntaxf("The character 'U+%04X' on line %d at position %d must be escaped. Use the escape '\\u%04x' instead. %s",
		r, line, col, r, fmt.Sprintf("(line %d, character %d)", line, col))
}

func (lx *lexer) next() (token, error) {
	for lx.i < len(lx.src) && isSpace(lx.peekRune(0)) {
		lx.advance()
	}
	t := token{line: lx.line, col: lx.col}
	if lx.i >= len(lx.src) {
		t.kind = tEOF
		return t, nil
	}
	start := lx.i
	r := lx.peekRune(0)
	simple := func(k tokKind, n int) (token, error) {
		for j := 0; j < n; j++ {
			lx.advance()
		}
		t.kind = k
		t.text = lx.src[start:lx.i]
		t.raw = t.text
		return t, nil
	}
	switch r {
	case '(':
		return simple(tLParen, 1)
	case ')':
		return simple(tRParen, 1)
	case ',':
		return simple(tComma, 1)
	case '[':
		return simple(tLBrack, 1)
	case ']':
		return simple(tRBrack, 1)
	case '=', '~':
		return simple(tOp, 1)
	case '<', '>':
		if lx.peekRune(1) == '=' {
			return simple(tOp, 2)
		}
		return simple(tOp, 1)
	case '!':
		if n := lx.peekRune(1); n == '=' || n == '~' {
			return simple(tOp, 2)
		}
		return simple(tBang, 1)
	case '&':
		if lx.peekRune(1) == '&' {
			return simple(tAnd, 2)
		}
		return simple(tAnd, 1)
	case '|':
		if lx.peekRune(1) == '|' {
			return simple(tOr, 2)
		}
		return simple(tOr, 1)
	case '"', '\'':
		return lx.quoted(t, r)
	}
	if strings.ContainsRune(reservedChars, r) {
		return t, syntaxf("The character '%c' is a reserved JQL character. You must enclose it in a string or use the escape '\\u%04x' instead. %s", r, r, t.at())
	}
	if isIllegal(r) {
		return t, illegalErr(r, t.line, t.col)
	}
	// An unquoted word runs until whitespace or a character with meaning.
	var b strings.Builder
	for lx.i < len(lx.src) {
		r = lx.peekRune(0)
		if isSpace(r) || strings.ContainsRune(`()[],=!<>~&|"'`, r) || strings.ContainsRune(reservedChars, r) {
			break
		}
		if isIllegal(r) {
			return t, illegalErr(r, lx.line, lx.col)
		}
		if r == '\\' {
			if err := lx.escape(&b); err != nil {
				return t, err
			}
			continue
		}
		b.WriteRune(lx.advance())
	}
	t.kind = tWord
	t.text = b.String()
	t.raw = lx.src[start:lx.i]
	if numberRe.MatchString(t.raw) {
		if _, err := strconv.ParseInt(t.raw, 10, 64); err != nil {
			return t, syntaxf("'%s' is not a valid number. Numbers must be between -9,223,372,036,854,775,808 and 9,223,372,036,854,775,807. %s", t.raw, t.at())
		}
	}
	if k, ok := keywords[strings.ToLower(t.raw)]; ok {
		t.kind = k
	} else if reservedWords[strings.ToLower(t.raw)] {
		return t, syntaxf("'%s' is a reserved JQL word. You must surround it in quotation marks to use it in a query. %s", t.raw, t.at())
	}
	return t, nil
}

// escape consumes a backslash escape at lx.i and writes its value.
func (lx *lexer) escape(b *strings.Builder) error {
	line, col := lx.line, lx.col
	lx.advance() // backslash
	if lx.i >= len(lx.src) {
		return syntaxf("The escape sequence has not been completed. %s (line %d, character %d)", validEscapes, line, col)
	}
	r := lx.advance()
	switch r {
	case '\'', '"', '\\', ' ':
		b.WriteRune(r)
	case 't':
		b.WriteByte('\t')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 'u':
		hex := ""
		for len(hex) < 4 && lx.i < len(lx.src) && strings.ContainsRune("0123456789abcdefABCDEF", lx.peekRune(0)) {
			hex += string(lx.advance())
		}
		if len(hex) < 4 {
			if lx.i < len(lx.src) {
				hex += string(lx.peekRune(0))
			}
			return syntaxf("'\\u%s' is an illegal JQL escape sequence. %s (line %d, character %d)", hex, validEscapes, line, col)
		}
		n, _ := strconv.ParseUint(hex, 16, 32)
		b.WriteRune(rune(n))
	default:
		return syntaxf("'\\%c' is an illegal JQL escape sequence. %s (line %d, character %d)", r, validEscapes, line, col)
	}
	return nil
}

func (lx *lexer) quoted(t token, q rune) (token, error) {
	start := lx.i
	lx.advance()
	var b strings.Builder
	for {
		if lx.i >= len(lx.src) {
			s := strings.NewReplacer("\n", " ", "\r", " ").Replace(b.String())
			if s == "" {
				return t, syntaxf("The quoted string has not been completed. %s", t.at())
			}
			return t, syntaxf("The quoted string '%s' has not been completed. %s", s, t.at())
		}
		r := lx.peekRune(0)
		switch {
		case r == q:
			lx.advance()
			t.kind = tString
			t.text = b.String()
			t.raw = lx.src[start:lx.i]
			return t, nil
		case r == '\\':
			if err := lx.escape(&b); err != nil {
				return t, err
			}
		case isIllegal(r):
			return t, illegalErr(r, lx.line, lx.col)
		default:
			b.WriteRune(lx.advance())
		}
	}
}
