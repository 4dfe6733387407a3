package jira

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// TimeLayout is Jira's timestamp format: milliseconds always, offset
// without a colon.
const TimeLayout = "2006-01-02T15:04:05.000-0700"

// Time is a Jira timestamp.
type Time struct{ time.Time }

// UnmarshalJSON accepts Jira's layout, RFC 3339, and null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("jira time: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	for _, layout := range []string{TimeLayout, time.RFC3339Nano, "2006-01-02T15:04:05-0700"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("jira time %q: not in Jira's format %s", s, TimeLayout)
}

// MarshalJSON writes Jira's layout.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.Format(TimeLayout))
}

// User is a Jira Data Center user as REST v2 shows it.
type User struct {
	Name         string `json:"name,omitempty"`
	Key          string `json:"key,omitempty"`
	EmailAddress string `json:"emailAddress,omitempty"`
	DisplayName  string `json:"displayName,omitempty"`
	Active       bool   `json:"active,omitempty"`
}

// Ref is what Jira answers to a create: the new entity's id, key and URL.
type Ref struct {
	ID   string `json:"id"`
	Key  string `json:"key,omitempty"`
	Self string `json:"self,omitempty"`
}

// Property is an entity property as create bodies accept them.
type Property struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// Issue keeps fields raw: which fields exist depends on the site, and the
// mapping package decodes the ones the sync definition names.
type Issue struct {
	ID        string                     `json:"id"`
	Key       string                     `json:"key"`
	Self      string                     `json:"self,omitempty"`
	Fields    map[string]json.RawMessage `json:"fields,omitempty"`
	Changelog *Changelog                 `json:"changelog,omitempty"`
	Names     map[string]string          `json:"names,omitempty"`
}

// Field decodes one field into v; it reports false when the field is absent
// or null.
func (i *Issue) Field(id string, v any) (bool, error) {
	raw, ok := i.Fields[id]
	if !ok || len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("issue %s field %s: %w", i.Key, id, err)
	}
	return true, nil
}

// Updated is the issue's updated time, zero when absent.
func (i *Issue) Updated() time.Time {
	var t Time
	if ok, _ := i.Field("updated", &t); ok {
		return t.Time
	}
	return time.Time{}
}

// Changelog is the issue history, oldest first.
type Changelog struct {
	StartAt    int       `json:"startAt"`
	MaxResults int       `json:"maxResults"`
	Total      int       `json:"total"`
	Histories  []History `json:"histories"`
}

// History is one change set of an issue.
type History struct {
	ID              string           `json:"id"`
	Author          *User            `json:"author,omitempty"`
	Created         Time             `json:"created"`
	Items           []HistoryItem    `json:"items"`
	HistoryMetadata *HistoryMetadata `json:"historyMetadata,omitempty"`
}

// HistoryItem is one field change inside a History.
type HistoryItem struct {
	Field      string  `json:"field"`
	FieldType  string  `json:"fieldtype"`
	FieldID    string  `json:"fieldId,omitempty"`
	From       *string `json:"from"`
	FromString *string `json:"fromString"`
	To         *string `json:"to"`
	ToString   *string `json:"toString"`
}

// HistoryMetadata tags a change in Jira's history; the applier sets it on
// its own edits so detection can recognise them even when the sync user is
// shared with people.
type HistoryMetadata struct {
	Type                   string            `json:"type,omitempty"`
	Description            string            `json:"description,omitempty"`
	DescriptionKey         string            `json:"descriptionKey,omitempty"`
	ActivityDescription    string            `json:"activityDescription,omitempty"`
	EmailDescription       string            `json:"emailDescription,omitempty"`
	ExtraData              map[string]string `json:"extraData,omitempty"`
	Actor                  *Participant      `json:"actor,omitempty"`
	Generator              *Participant      `json:"generator,omitempty"`
	Cause                  *Participant      `json:"cause,omitempty"`
	ActivityDescriptionKey string            `json:"activityDescriptionKey,omitempty"`
}

// Participant is an actor, generator or cause in HistoryMetadata.
type Participant struct {
	ID          string `json:"id,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Type        string `json:"type,omitempty"`
	URL         string `json:"url,omitempty"`
}

// Visibility restricts a comment to a role or group.
type Visibility struct {
	Type  string `json:"type"` // "role" or "group"
	Value string `json:"value"`
}

// Comment is an issue comment.
type Comment struct {
	ID           string      `json:"id"`
	Self         string      `json:"self,omitempty"`
	Author       *User       `json:"author,omitempty"`
	UpdateAuthor *User       `json:"updateAuthor,omitempty"`
	Body         string      `json:"body"`
	Created      Time        `json:"created"`
	Updated      Time        `json:"updated"`
	Visibility   *Visibility `json:"visibility,omitempty"`
}

// Attachment is attachment metadata.
type Attachment struct {
	ID       string `json:"id"`
	Self     string `json:"self,omitempty"`
	Filename string `json:"filename"`
	Author   *User  `json:"author,omitempty"`
	Created  Time   `json:"created"`
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
	Content  string `json:"content,omitempty"`
}

// Status is a workflow status.
type Status struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	StatusCategory *struct {
		Key  string `json:"key"`
		Name string `json:"name,omitempty"`
	} `json:"statusCategory,omitempty"`
}

// Transition is one transition available from the issue's current status.
type Transition struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	To   Status `json:"to"`
}

// LinkType is an issue link type.
type LinkType struct {
	ID      string `json:"id,omitempty"`
	Name    string `json:"name"`
	Inward  string `json:"inward,omitempty"`
	Outward string `json:"outward,omitempty"`
}

// IssueLink links two issues.
type IssueLink struct {
	ID           string    `json:"id,omitempty"`
	Type         LinkType  `json:"type"`
	InwardIssue  *LinkedIs `json:"inwardIssue,omitempty"`
	OutwardIssue *LinkedIs `json:"outwardIssue,omitempty"`
}

// LinkedIs is the other end of an issue link.
type LinkedIs struct {
	ID  string `json:"id,omitempty"`
	Key string `json:"key,omitempty"`
}

// RemoteLink points from an issue to something outside this Jira: the
// bridge uses one to show the peer issue.
type RemoteLink struct {
	ID           int64            `json:"id,omitempty"`
	GlobalID     string           `json:"globalId,omitempty"`
	Relationship string           `json:"relationship,omitempty"`
	Object       RemoteLinkObject `json:"object"`
}

// RemoteLinkObject is what a remote link shows.
type RemoteLinkObject struct {
	URL     string `json:"url"`
	Title   string `json:"title"`
	Summary string `json:"summary,omitempty"`
}

// FieldInfo describes a field from GET /rest/api/2/field.
type FieldInfo struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Custom bool   `json:"custom"`
	Schema *struct {
		Type     string `json:"type"`
		Items    string `json:"items,omitempty"`
		System   string `json:"system,omitempty"`
		Custom   string `json:"custom,omitempty"`
		CustomID int64  `json:"customId,omitempty"`
	} `json:"schema,omitempty"`
}

// ServerInfo is GET /rest/api/2/serverInfo.
type ServerInfo struct {
	BaseURL        string `json:"baseUrl"`
	Version        string `json:"version"`
	DeploymentType string `json:"deploymentType"`
	ServerTitle    string `json:"serverTitle,omitempty"`
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
