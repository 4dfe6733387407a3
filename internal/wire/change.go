package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ChangeVersion is the version of the Change encoding this build writes and
// the highest it reads. Adding an optional (omitempty) field does not need a
// new version; changing the meaning of a field does.
const ChangeVersion = 1

// ChangeKind says what happened to the origin issue.
type ChangeKind string

// Change kinds. All are defined now so the wire vocabulary is fixed even
// where later issues fill in detection and application.
const (
	IssueCreate      ChangeKind = "issue.create"
	IssueUpdate      ChangeKind = "issue.update"
	IssueDelete      ChangeKind = "issue.delete"
	IssueMove        ChangeKind = "issue.move" // issue type change
	CommentAdd       ChangeKind = "comment.add"
	CommentEdit      ChangeKind = "comment.edit"
	CommentDelete    ChangeKind = "comment.delete"
	AttachmentAdd    ChangeKind = "attachment.add"
	AttachmentDelete ChangeKind = "attachment.delete"
	WatcherAdd       ChangeKind = "watcher.add"
	WatcherRemove    ChangeKind = "watcher.remove"
	LinkAdd          ChangeKind = "link.add"
	LinkRemove       ChangeKind = "link.remove"
	// WatcherSet carries all of an issue's watchers (Watchers) as a
	// resync sends them: the receiver adds the missing ones and removes
	// the ones it has beyond them.
	WatcherSet ChangeKind = "watcher.set"
	// LinkSet carries all links of an issue as their outward end (Links)
	// as a resync sends them: the receiver makes the missing ones and
	// removes the ones it has beyond them between synced issues.
	LinkSet ChangeKind = "link.set"
	// IssuePair is sent back by the side that created the peer issue of an
	// IssueCreate: IssueID and IssueKey name the new issue, PeerIssueID and
	// PeerIssueKey the origin issue it copies, so the origin side records the
	// pair too and can route the new issue's later changes.
	IssuePair ChangeKind = "issue.pair"
)

// Change is one change of one issue at the origin site, expressed in aliases
// so the peer can map it to its own ids. It is the unit the peer applies,
// deduplicates (by ID) and orders (per IssueID).
type Change struct {
	// Version is the Change encoding version; EncodeChanges sets 0 to
	// ChangeVersion.
	Version int `json:"v"`
	// ID is the origin change id, globally unique; the peer's ledger and
	// the entity properties on created objects key on it.
	ID string `json:"id"`
	// IssueID and IssueKey identify the issue at the origin site. The id is
	// the stable key; the key is for people and logs.
	IssueID  string     `json:"issue_id"`
	IssueKey string     `json:"issue_key,omitempty"`
	Kind     ChangeKind `json:"kind"`
	// At is the Jira timestamp of the change. Jira keeps milliseconds, so
	// the encoding does too (finer precision is dropped, times are UTC).
	At time.Time `json:"at"`
	// Author is who made the change, as far as the sync's user policy allows
	// sending it; nil when the policy sends nobody.
	Author *User `json:"author,omitempty"`
	// Fields holds field values by field alias, before and after the change.
	Fields map[string]FieldChange `json:"fields,omitempty"`

	IssueType     string      `json:"issue_type,omitempty"` // issue type alias
	Status        string      `json:"status,omitempty"`     // status alias
	ParentIssueID string      `json:"parent_issue_id,omitempty"`
	Comment       *Comment    `json:"comment,omitempty"`
	Attachment    *Attachment `json:"attachment,omitempty"`
	Link          *Link       `json:"link,omitempty"`
	Watcher       *User       `json:"watcher,omitempty"`
	// Watchers is the whole watcher set of a WatcherSet (none: empty).
	Watchers []User `json:"watchers,omitempty"`
	// Links is the whole outward link set of a LinkSet (none: empty).
	Links []Link `json:"links,omitempty"`
	// Chunk is one piece of a large attachment (kind attachment.chunk),
	// see Chunk.
	Chunk *Chunk `json:"chunk,omitempty"`
	// PeerIssueID and PeerIssueKey name the receiving side's issue, for
	// IssuePair.
	PeerIssueID  string `json:"peer_issue_id,omitempty"`
	PeerIssueKey string `json:"peer_issue_key,omitempty"`
}

// User is a person as the user policy allows sending them; every part is
// optional (a policy may send only a display name, or nothing but an alias).
type User struct {
	Name    string `json:"name,omitempty"`
	Display string `json:"display,omitempty"`
	Email   string `json:"email,omitempty"`
}

// FieldChange is one field's value before and after a change.
type FieldChange struct {
	Before Value `json:"before"`
	After  Value `json:"after"`
}

// Comment is the comment a comment.* change is about.
type Comment struct {
	ID         string      `json:"id"`
	Body       string      `json:"body,omitempty"`
	Visibility *Visibility `json:"visibility,omitempty"`
	// PeerID, when set, is the RECEIVING side's comment id: the change is
	// an edit or delete a person made of the bridge's copy of a comment
	// that came from the receiver, so it applies to the original there.
	PeerID string `json:"peer_id,omitempty"`
}

// Visibility restricts a comment to a group or project role, as Jira does.
type Visibility struct {
	Type  string `json:"type"`  // "group" or "role"
	Value string `json:"value"` // alias of the group or role
}

// Attachment is the attachment an attachment.* change is about. Small files
// travel inline in Data; large ones are sent separately and referenced by
// ChunkRef (defined by the attachment issue).
type Attachment struct {
	ID       string `json:"id"`
	Filename string `json:"filename,omitempty"`
	MimeType string `json:"mime_type,omitempty"`
	Size     int64  `json:"size,omitempty"`
	SHA256   string `json:"sha256,omitempty"` // lowercase hex of the content
	Data     []byte `json:"data,omitempty"`
	ChunkRef string `json:"chunk_ref,omitempty"`
	// PeerID, when set, is the RECEIVING side's attachment id: a delete
	// of the bridge's copy of an attachment that came from the receiver.
	PeerID string `json:"peer_id,omitempty"`
}

// Link is the issue link a link.* change is about.
type Link struct {
	ID           string `json:"id"`
	Type         string `json:"type"` // link type alias
	OtherIssueID string `json:"other_issue_id"`
	Direction    string `json:"direction"` // "outward" or "inward", seen from IssueID
}

// Validate reports what makes c unusable on the wire. EncodeChanges and
// DecodeChanges call it, so a change that decodes is one the engine can
// route: it has an id, an issue and a time.
func (c *Change) Validate() error {
	switch {
	case c.Version > ChangeVersion:
		return fmt.Errorf("change %q: version %d: %w", clip(c.ID), c.Version, ErrUnsupportedVersion)
	case c.Version < 0:
		return fmt.Errorf("change %q: negative version", clip(c.ID))
	case c.ID == "":
		return errors.New("change without id")
	case c.IssueID == "":
		return fmt.Errorf("change %q: no issue id", clip(c.ID))
	case c.Kind == "":
		return fmt.Errorf("change %q: no kind", clip(c.ID))
	case c.At.IsZero():
		return fmt.Errorf("change %q: no timestamp", clip(c.ID))
	}
	return nil
}

// ValueKind says which of its forms a Value holds.
type ValueKind uint8

// Value kinds.
const (
	ValueNull ValueKind = iota
	ValueString
	ValueNumber
	ValueList // list of strings (labels, components, multi-select aliases)
	ValueUser
)

// Value is a field value on the wire: null, a string, a number, a list of
// strings or a user. The zero Value is null. It encodes as JSON null, a JSON
// string, a JSON number, a JSON array of strings, or {"user":{...}}; the
// object form is tagged so later kinds can be added without ambiguity.
type Value struct {
	kind ValueKind
	str  string
	num  float64
	list []string
	user User
}

// NullValue returns the null value (a cleared field).
func NullValue() Value { return Value{} }

// StringValue returns a string value (text fields, option aliases).
func StringValue(s string) Value { return Value{kind: ValueString, str: s} }

// NumberValue returns a number value. NaN and infinities cannot be encoded.
func NumberValue(f float64) Value { return Value{kind: ValueNumber, num: f} }

// ListValue returns a list of strings; the slice is copied.
func ListValue(items ...string) Value {
	return Value{kind: ValueList, list: append(make([]string, 0, len(items)), items...)}
}

// UserValue returns a user value (assignee, reporter, user pickers).
func UserValue(u User) Value { return Value{kind: ValueUser, user: u} }

// Kind returns which form v holds.
func (v Value) Kind() ValueKind { return v.kind }

// Text returns the string of a ValueString, "" otherwise.
func (v Value) Text() string { return v.str }

// Number returns the number of a ValueNumber, 0 otherwise.
func (v Value) Number() float64 { return v.num }

// Strings returns a copy of the list of a ValueList, nil otherwise.
func (v Value) Strings() []string {
	if v.kind != ValueList {
		return nil
	}
	return slices.Clone(v.list)
}

// User returns the user of a ValueUser, the zero User otherwise.
func (v Value) User() User { return v.user }

// Equal reports whether v and w are the same value.
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case ValueString:
		return v.str == w.str
	case ValueNumber:
		return v.num == w.num
	case ValueList:
		return slices.Equal(v.list, w.list)
	case ValueUser:
		return v.user == w.user
	}
	return true
}

type userValueJSON struct {
	User User `json:"user"`
}

// MarshalJSON encodes v in its one canonical form.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.kind {
	case ValueNull:
		return []byte("null"), nil
	case ValueString:
		return json.Marshal(v.str)
	case ValueNumber:
		if math.IsNaN(v.num) || math.IsInf(v.num, 0) {
			return nil, errors.New("number value is NaN or infinite")
		}
		return json.Marshal(v.num)
	case ValueList:
		if v.list == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(v.list)
	case ValueUser:
		return json.Marshal(userValueJSON{User: v.user})
	}
	return nil, fmt.Errorf("value of unknown kind %d", v.kind)
}

// UnmarshalJSON decodes the forms MarshalJSON writes and refuses anything
// else (booleans, mixed lists, unknown objects), so a value has one meaning.
func (v *Value) UnmarshalJSON(b []byte) error {
	if err := v.unmarshal(b); err != nil {
		return &valueError{msg: err.Error()}
	}
	return nil
}

func (v *Value) unmarshal(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("empty value")
	}
	switch b[0] {
	case 'n':
		if string(b) != "null" {
			return errors.New("malformed null value")
		}
		*v = Value{}
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errors.New("malformed string value")
		}
		*v = StringValue(s)
	case '[':
		l, err := decodeStringList(b)
		if err != nil {
			return fmt.Errorf("list value: %s", err)
		}
		*v = Value{kind: ValueList, list: l}
	case '{':
		var u struct {
			User *User `json:"user"`
		}
		if err := strictUnmarshal(b, &u); err != nil || u.User == nil {
			return errors.New("malformed user value")
		}
		*v = UserValue(*u.User)
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var f float64
		if err := json.Unmarshal(b, &f); err != nil {
			return errors.New("malformed or out-of-range number value")
		}
		*v = NumberValue(f)
	default:
		return errors.New("value is not null, string, number, list or user")
	}
	return nil
}

// valueError is a Value decoding error. Its text is built from this
// package's own messages and encoding/json's offsets, never from the input,
// so it may be shown with ErrCorruptBody.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// strictUnmarshal decodes one JSON value into v, refusing unknown fields
// and trailing data.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// decodeStringList decodes a JSON array whose elements are all strings.
// encoding/json would turn a null element into "", silently changing the
// value, so each element is checked first.
func decodeStringList(b []byte) ([]string, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, errors.New("list is null")
	}
	l := make([]string, len(raw))
	for i, r := range raw {
		if len(r) == 0 || r[0] != '"' {
			return nil, fmt.Errorf("list element %d is not a string", i)
		}
		if err := json.Unmarshal(r, &l[i]); err != nil {
			return nil, fmt.Errorf("list element %d is malformed", i)
		}
	}
	return l, nil
}
