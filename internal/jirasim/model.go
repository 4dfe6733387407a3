package jirasim

import (
	"encoding/json"
	"time"
)

// state is everything jirasim knows. It is one JSON document so that
// Snapshot, Restore and -state persistence are the same code path.
type state struct {
	NextID      map[string]int64      `json:"nextId"`
	Users       map[string]*user      `json:"users"`    // by lower-case name
	Projects    map[string]*project   `json:"projects"` // by key
	Fields      map[string]*field     `json:"fields"`   // custom fields by id
	Workflows   map[string]*workflow  `json:"workflows"`
	Issues      map[int64]*issue      `json:"issues"`
	Comments    map[int64]*comment    `json:"comments"`
	Attachments map[int64]*attachment `json:"attachments"`
	Links       map[int64]*issueLink  `json:"links"`
	LinkTypes   map[string]*linkType  `json:"linkTypes"`
	Webhooks    map[int64]*webhook    `json:"webhooks"`
	Tokens      map[string]*token     `json:"tokens"`     // by raw token
	KeyAliases  map[string]int64      `json:"keyAliases"` // old keys after a move, unused keys are absent
	Groups      []string              `json:"groups"`     // groups created empty; others exist through their members
}

type user struct {
	Name        string   `json:"name"`
	Key         string   `json:"key"`
	DisplayName string   `json:"displayName"`
	Email       string   `json:"emailAddress"`
	Password    string   `json:"password"`
	Active      bool     `json:"active"`
	Groups      []string `json:"groups"`
	Failures    int      `json:"failures"`
	Captcha     bool     `json:"captcha"`
}

type token struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

type project struct {
	ID       int64               `json:"id"`
	Key      string              `json:"key"`
	Name     string              `json:"name"`
	Lead     string              `json:"lead"`
	TypeKey  string              `json:"projectTypeKey"`
	Desc     string              `json:"description"`
	Workflow string              `json:"workflow"`
	Roles    map[string][]string `json:"roles"` // role name -> "user:name" / "group:name"
	// Perms maps a permission key to its holders: "loggedin", "role:Developers",
	// "group:jira-administrators", "user:alice", "reporter", "assignee".
	Perms   map[string][]string `json:"permissions"`
	Screen  []string            `json:"screen,omitempty"` // field ids on the create/edit screens; nil = every field
	Counter int64               `json:"counter"`
}

// field is a custom field.
type field struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Desc    string   `json:"description"`
	Type    string   `json:"type"` // short type: textfield, textarea, float, select, multiselect, datepicker, datetime, userpicker, labels
	Options []option `json:"options"`
}

type option struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

type workflow struct {
	Name        string       `json:"name"`
	Initial     string       `json:"initial"`  // status id
	Statuses    []string     `json:"statuses"` // status ids
	Transitions []transition `json:"transitions"`
}

type transition struct {
	ID   string   `json:"id"`
	Name string   `json:"name"`
	From []string `json:"from"` // status ids; empty = global transition
	To   string   `json:"to"`
}

type issue struct {
	ID          int64                      `json:"id"`
	Key         string                     `json:"key"`
	Project     string                     `json:"project"`
	Type        string                     `json:"issuetype"` // issue type id
	Summary     string                     `json:"summary"`
	Description *string                    `json:"description"`
	Environment *string                    `json:"environment"`
	Status      string                     `json:"status"`
	Resolution  string                     `json:"resolution"`
	Resolved    *time.Time                 `json:"resolutiondate"`
	Priority    string                     `json:"priority"`
	Labels      []string                   `json:"labels"`
	Assignee    string                     `json:"assignee"`
	Reporter    string                     `json:"reporter"`
	Creator     string                     `json:"creator"`
	Created     time.Time                  `json:"created"`
	Updated     time.Time                  `json:"updated"`
	Due         string                     `json:"duedate"`
	Parent      int64                      `json:"parent"`
	Custom      map[string]any             `json:"custom"` // field id -> string, float64, []string (option ids), or user name
	Watchers    []string                   `json:"watchers"`
	Props       map[string]json.RawMessage `json:"properties"`
	History     []*history                 `json:"history"`
	RemoteLinks []*remoteLink              `json:"remoteLinks"`
}

type history struct {
	ID       int64           `json:"id"`
	Author   string          `json:"author"`
	Created  time.Time       `json:"created"`
	Items    []historyItem   `json:"items"`
	Metadata json.RawMessage `json:"historyMetadata,omitempty"`
}

type historyItem struct {
	Field      string  `json:"field"`
	FieldType  string  `json:"fieldtype"`
	From       *string `json:"from"`
	FromString *string `json:"fromString"`
	To         *string `json:"to"`
	ToString   *string `json:"toString"`
}

type comment struct {
	ID         int64                      `json:"id"`
	Issue      int64                      `json:"issue"`
	Author     string                     `json:"author"`
	UpdAuthor  string                     `json:"updateAuthor"`
	Body       string                     `json:"body"`
	Created    time.Time                  `json:"created"`
	Updated    time.Time                  `json:"updated"`
	Visibility *visibility                `json:"visibility,omitempty"`
	Props      map[string]json.RawMessage `json:"properties"`
}

type visibility struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type attachment struct {
	ID       int64     `json:"id"`
	Issue    int64     `json:"issue"`
	Filename string    `json:"filename"`
	Author   string    `json:"author"`
	Created  time.Time `json:"created"`
	MimeType string    `json:"mimeType"`
	Content  []byte    `json:"content"`
}

type issueLink struct {
	ID      int64  `json:"id"`
	Type    string `json:"type"` // link type id
	Inward  int64  `json:"inward"`
	Outward int64  `json:"outward"`
}

type linkType struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Inward  string `json:"inward"`
	Outward string `json:"outward"`
}

type remoteLink struct {
	ID           int64           `json:"id"`
	GlobalID     string          `json:"globalId,omitempty"`
	Application  json.RawMessage `json:"application,omitempty"`
	Relationship string          `json:"relationship,omitempty"`
	Object       json.RawMessage `json:"object"`
}

type webhook struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	URL      string    `json:"url"`
	Events   []string  `json:"events"`
	JQL      string    `json:"jql"`
	Enabled  bool      `json:"enabled"`
	ExclBody bool      `json:"excludeBody"`
	User     string    `json:"user"`
	Updated  time.Time `json:"updated"`
}

func newState() *state {
	return &state{
		NextID:      map[string]int64{},
		Users:       map[string]*user{},
		Projects:    map[string]*project{},
		Fields:      map[string]*field{},
		Workflows:   map[string]*workflow{},
		Issues:      map[int64]*issue{},
		Comments:    map[int64]*comment{},
		Attachments: map[int64]*attachment{},
		Links:       map[int64]*issueLink{},
		LinkTypes:   map[string]*linkType{},
		Webhooks:    map[int64]*webhook{},
		Tokens:      map[string]*token{},
		KeyAliases:  map[string]int64{},
	}
}

// nextID hands out ids per kind starting at 10000 like Jira.
func (st *state) nextID(kind string) int64 {
	n := st.NextID[kind]
	if n == 0 {
		n = 10000
	}
	st.NextID[kind] = n + 1
	return n
}
