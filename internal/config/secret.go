package config

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what every printed, marshalled or logged Secret shows.
const Redacted = "<secret>"

// Secret holds a password, token or credential-bearing URL. Every way Go
// prints or encodes a value (fmt verbs, %#v, JSON, text, YAML, slog) shows
// Redacted instead of the value; only Reveal returns it, so a leak has to be
// written on purpose.
//
// The value sits behind a pointer so that even a Secret stored in an
// unexported struct field, which fmt prints by reflection without calling
// its methods, shows an address rather than the value.
type Secret struct {
	p *string
}

// NewSecret wraps s. An empty s gives an unset Secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{p: &s}
}

// Reveal returns the value, for the one place that must send it (an
// Authorization header, a LOGIN command).
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsSet reports whether the secret has a non-empty value.
func (s Secret) IsSet() bool { return s.p != nil && *s.p != "" }

// Equal compares two secrets in constant time.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.Reveal()), []byte(o.Reveal())) == 1
}

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter so that no verb (%x, %q, %d...) reaches
// the value.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalYAML implements yaml.Marshaler.
func (Secret) MarshalYAML() (any, error) { return Redacted, nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// Decode implements envconfig.Decoder, which also makes envconfig treat a
// Secret as one variable rather than a nested struct.
func (s *Secret) Decode(value string) error {
	*s = NewSecret(value)
	return nil
}
