package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The body encodings are encoding/json of structs: fields come out in
// declaration order, map keys sorted, no insignificant whitespace, times in
// UTC with millisecond precision. The same value therefore always encodes to
// the same bytes, which the golden tests in testdata/ pin down.

// EncodeChanges encodes a batch of changes as the body of a KindChanges
// envelope. Each change is validated, its Version set to ChangeVersion when
// zero and its time normalized to UTC milliseconds; the caller's slice is
// not modified.
func EncodeChanges(changes []Change) ([]byte, error) {
	out := make([]Change, len(changes))
	for i, c := range changes {
		if c.Version == 0 {
			c.Version = ChangeVersion
		}
		c.At = msUTC(c.At)
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("encode change %d: %w", i, err)
		}
		out[i] = c
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode changes: %w", err)
	}
	return b, nil
}

// DecodeChanges decodes the body of a KindChanges envelope. Anything that
// is not a JSON array of valid changes is ErrCorruptBody; a change of a
// newer version is ErrUnsupportedVersion. Errors name the change by index
// and id only, never its content.
func DecodeChanges(b []byte) ([]Change, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, fmt.Errorf("decode changes: not a list: %w", ErrCorruptBody)
	}
	var changes []Change
	if err := json.Unmarshal(b, &changes); err != nil {
		return nil, fmt.Errorf("decode changes: %w", corrupt(err))
	}
	for i := range changes {
		c := &changes[i]
		if c.Version == 0 {
			return nil, fmt.Errorf("decode change %d: no version: %w", i, ErrCorruptBody)
		}
		if err := c.Validate(); err != nil {
			if errors.Is(err, ErrUnsupportedVersion) {
				return nil, fmt.Errorf("decode change %d: %w", i, err)
			}
			return nil, fmt.Errorf("decode change %d: %v: %w", i, err, ErrCorruptBody)
		}
		c.At = msUTC(c.At)
	}
	if changes == nil {
		changes = []Change{}
	}
	return changes, nil
}

// corrupt turns a JSON decoding error into ErrCorruptBody without quoting
// the input: encoding/json's syntax errors carry only offsets and types, but
// a wrapped UnmarshalJSON error could carry more, so only its class is kept.
func corrupt(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at offset %d: %w", se.Offset, ErrCorruptBody)
	case errors.As(err, &te):
		return fmt.Errorf("wrong JSON type for %q: %w", clip(te.Field), ErrCorruptBody)
	}
	var ve *valueError
	if errors.As(err, &ve) {
		return fmt.Errorf("%v: %w", ve, ErrCorruptBody)
	}
	// Other errors (time.ParseError, for one) quote the input.
	return fmt.Errorf("malformed value: %w", ErrCorruptBody)
}

// Control is the body of a KindControl envelope: a message of the link
// protocol (ack, resend request, heartbeat, ...). Type names it; Data is its
// JSON payload, defined by the sync engine, kept raw here so the wire format
// does not change when the engine adds a message.
type Control struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// EncodeControl encodes a control message of the given type whose payload
// is data encoded as JSON (nil for none).
func EncodeControl(typ string, data any) ([]byte, error) {
	if typ == "" {
		return nil, errors.New("encode control: empty type")
	}
	c := Control{Type: typ}
	if data != nil {
		d, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("encode control %q: %w", typ, err)
		}
		c.Data = d
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode control %q: %w", typ, err)
	}
	return b, nil
}

// DecodeControl decodes the body of a KindControl envelope; use
// Control.Decode for its payload.
func DecodeControl(b []byte) (Control, error) {
	var c Control
	if err := strictUnmarshal(b, &c); err != nil {
		return Control{}, fmt.Errorf("decode control: %w", corrupt(err))
	}
	if c.Type == "" {
		return Control{}, fmt.Errorf("decode control: empty type: %w", ErrCorruptBody)
	}
	return c, nil
}

// Decode decodes the payload of c into v; a payload that does not fit v is
// ErrCorruptBody.
func (c Control) Decode(v any) error {
	if len(c.Data) == 0 {
		return fmt.Errorf("decode control %q: no payload: %w", clip(c.Type), ErrCorruptBody)
	}
	if err := json.Unmarshal(c.Data, v); err != nil {
		return fmt.Errorf("decode control %q: %w", clip(c.Type), corrupt(err))
	}
	return nil
}

func msUTC(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Millisecond)
}
