package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Where a setting's value came from, as Effective reports it.
const (
	SourceDefault = "default"
	SourceEnv     = "env"
	SourceFile    = "file" // the _FILE variant of a secret
)

// FileSuffix is appended to a secret's variable name for the variant that
// names a file holding the secret.
const FileSuffix = "_FILE"

// variable is one setting as envconfig names it, with a settable reference
// into a Config.
type variable struct {
	Key   string
	Field reflect.Value
	Tags  reflect.StructTag
}

var secretType = reflect.TypeFor[Secret]()

// variables lists the settings of c in struct order, named exactly as
// envconfig names them. envconfig v1.4.0 reads only the process
// environment (its lookup function is unexported), so Load cannot call
// envconfig.Process with an injected getenv. Instead it asks envconfig for
// its own list of variables, through the public Usaget, whose template sees
// each variable's key, struct tags and a settable reflect.Value of the
// field; Load then looks each key up with getenv and decodes the value with
// envconfig's rules. TestLoadMatchesEnvconfigProcess proves both agree.
func variables(c *Config) ([]variable, error) {
	var vars []variable
	var fail error
	collect := func(v any) string {
		rv := reflect.ValueOf(v)
		key := rv.FieldByName("Key")
		field := rv.FieldByName("Field")
		tags := rv.FieldByName("Tags")
		if !key.IsValid() || !field.IsValid() || !tags.IsValid() {
			fail = errors.New("envconfig's variable description changed; update config.variables")
			return ""
		}
		vars = append(vars, variable{
			Key:   key.String(),
			Field: field.Interface().(reflect.Value),
			Tags:  tags.Interface().(reflect.StructTag),
		})
		return ""
	}
	tmpl := template.Must(template.New("vars").Funcs(template.FuncMap{"collect": collect}).
		Parse(`{{range .}}{{collect .}}{{end}}`))
	if err := envconfig.Usaget(Prefix, c, io.Discard, tmpl); err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	if fail != nil {
		return nil, fail
	}
	return vars, nil
}

// Variables returns the name of every variable Load reads, in struct
// order, including the _FILE variant of each secret.
func Variables() []string {
	vars, err := variables(&Config{})
	if err != nil {
		return nil
	}
	var names []string
	for _, v := range vars {
		names = append(names, v.Key)
		if v.Field.Type() == secretType {
			names = append(names, v.Key+FileSuffix)
		}
	}
	return names
}

// Defaults returns a Config holding only the default values.
func Defaults() *Config {
	c, _ := load(func(string) string { return "" })
	return c
}

// Load reads the settings through getenv (nil means nothing is set; an
// empty value counts as unset), reads the _FILE variant of each secret,
// and validates the result. The error joins every problem found, each
// naming the variable to fix. On error the returned Config holds what
// could be read, for reporting only; it must not be used to run.
func Load(getenv func(string) string) (*Config, error) {
	c, loadErr := load(getenv)
	return c, errors.Join(loadErr, c.Validate())
}

func load(getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	c := &Config{set: map[string]string{}}
	vars, err := variables(c)
	if err != nil {
		return c, err
	}
	var problems []error
	for _, v := range vars {
		value, source := getenv(v.Key), SourceEnv
		if v.Field.Type() == secretType {
			fileVar := v.Key + FileSuffix
			if path := getenv(fileVar); path != "" {
				if value != "" {
					problems = append(problems, fmt.Errorf("%s and %s are both set; set only one", v.Key, fileVar))
					continue
				}
				b, err := os.ReadFile(path)
				if err != nil {
					problems = append(problems, fmt.Errorf("%s: read secret: %w", fileVar, err))
					continue
				}
				value, source = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), SourceFile
				if value == "" {
					problems = append(problems, fmt.Errorf("%s: file %s is empty", fileVar, path))
					continue
				}
			}
		}
		if value == "" {
			// Required settings are reported by Validate, with a hint.
			value, source = v.Tags.Get("default"), SourceDefault
			if value == "" {
				continue
			}
		}
		if err := decode(value, v.Field); err != nil {
			shown := strconv.Quote(value)
			if v.Field.Type() == secretType {
				shown = Redacted
			}
			problems = append(problems, fmt.Errorf("%s=%s: %w", v.Key, shown, err))
			continue
		}
		if source != SourceDefault {
			c.set[v.Key] = source
		}
	}
	c.derive()
	return c, errors.Join(problems...)
}

// derive fills settings whose default depends on another one.
func (c *Config) derive() {
	if c.SMTP.Port == 0 {
		switch c.SMTP.TLSMode {
		case TLSImplicit:
			c.SMTP.Port = 465
		case TLSPlain:
			c.SMTP.Port = 25
		default:
			c.SMTP.Port = 587
		}
	}
	if c.IMAP.Port == 0 {
		if c.IMAP.TLSMode == TLSImplicit {
			c.IMAP.Port = 993
		} else {
			c.IMAP.Port = 143
		}
	}
}

var durationType = reflect.TypeFor[time.Duration]()

// decode sets field from value with envconfig's rules (Decoder, Setter,
// TextUnmarshaler, then by kind; lists split on commas), except that list
// items are trimmed and empty items dropped.
func decode(value string, field reflect.Value) error {
	if field.CanAddr() {
		switch d := field.Addr().Interface().(type) {
		case envconfig.Decoder:
			return d.Decode(value)
		case envconfig.Setter:
			return d.Set(value)
		case encoding.TextUnmarshaler:
			return d.UnmarshalText([]byte(value))
		}
	}
	switch field.Kind() {
	case reflect.String:
		field.SetString(value)
	case reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return errors.New("not true or false")
		}
		field.SetBool(b)
	case reflect.Int, reflect.Int64:
		if field.Type() == durationType {
			d, err := time.ParseDuration(value)
			if err != nil {
				return errors.New("not a duration (e.g. 30s, 5m, 2h)")
			}
			field.SetInt(int64(d))
			return nil
		}
		n, err := strconv.ParseInt(value, 0, field.Type().Bits())
		if err != nil {
			return errors.New("not a whole number")
		}
		field.SetInt(n)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		sl := reflect.MakeSlice(field.Type(), len(items), len(items))
		for i, item := range items {
			if err := decode(item, sl.Index(i)); err != nil {
				return fmt.Errorf("item %d: %w", i+1, err)
			}
		}
		field.Set(sl)
	default:
		return fmt.Errorf("unsupported setting type %s", field.Type())
	}
	return nil
}

// UnknownVars returns the JIRABRIDGE_ variables in environ (os.Environ's
// form, NAME=value) that Load does not read: most likely typos, which
// would otherwise silently leave a default in place.
func UnknownVars(environ []string) []string {
	known := map[string]bool{}
	for _, n := range Variables() {
		known[n] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, Prefix+"_") && !known[name] {
			out = append(out, name)
		}
	}
	return out
}
