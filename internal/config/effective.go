package config

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Setting is one effective setting as Effective lists it.
type Setting struct {
	Var    string // e.g. JIRABRIDGE_SMTP_HOST
	Value  string // secrets show as <secret>, or empty when unset
	Source string // SourceDefault, SourceEnv or SourceFile; empty for a hand-built Config
	Desc   string
}

// Effective lists every setting with its value, in the order of the
// documentation, secrets hidden.
func (c *Config) Effective() []Setting {
	cp := *c // variables needs a pointer; do not hand out c's fields
	vars, err := variables(&cp)
	if err != nil {
		return nil
	}
	out := make([]Setting, 0, len(vars))
	for _, v := range vars {
		s := Setting{Var: v.Key, Value: show(v.Field), Desc: v.Tags.Get("desc")}
		if c.set != nil {
			s.Source = c.set[v.Key]
			if s.Source == "" {
				s.Source = SourceDefault
			}
		}
		out = append(out, s)
	}
	return out
}

func show(f reflect.Value) string {
	switch x := f.Interface().(type) {
	case Secret:
		if x.IsSet() {
			return Redacted
		}
		return ""
	case time.Duration:
		return x.String()
	case ByteSize:
		return x.String()
	case []string:
		return strings.Join(x, ",")
	case bool:
		return strconv.FormatBool(x)
	}
	switch f.Kind() {
	case reflect.String:
		return f.String()
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(f.Int(), 10)
	}
	return fmt.Sprint(f.Interface())
}

// Print writes the effective settings as an aligned table, one variable a
// line, with where each value came from.
func (c *Config) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range c.Effective() {
		src := ""
		if s.Source != "" {
			src = "(" + s.Source + ")"
		}
		v := s.Value
		if strings.ContainsFunc(v, unicode.IsControl) {
			v = strconv.Quote(v) // keep one setting a line
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Var, v, src)
	}
	return tw.Flush()
}
