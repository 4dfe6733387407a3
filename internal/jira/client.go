// Package jira is the bridge's view of one Jira Data Center site, over
// go-jira v1.16.0. Every call goes through one function that classifies the
// answer (see Classify), so the rest of the bridge only ever sees errclass
// errors that say what to do next.
package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojira "github.com/andygrunwald/go-jira"

	"github.com/jirabridge/jirabridge/internal/errclass"
)

// Call describes one finished Jira call, for metrics.
type Call struct {
	Method   string
	Endpoint string // a template such as "issue/{id}", not the concrete path
	Status   int    // 0 when no answer arrived
	Duration time.Duration
}

// Options configure a Client. Zero values are safe.
type Options struct {
	BaseURL  string
	Username string
	Password string // basic auth
	Token    string // personal access token (bearer); wins over Password
	// Transport is the HTTP round tripper under the authentication (TLS
	// settings live there); nil means http.DefaultTransport.
	Transport http.RoundTripper
	Timeout   time.Duration // per call; default 60s
	// OnCall, when set, is told about every call (metrics).
	OnCall func(Call)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Client talks to one Jira. It is safe for concurrent use.
type Client struct {
	jc   *gojira.Client
	opts Options

	// The authentication latch. Every failed login brings the sync user
	// closer to Jira's CAPTCHA lock, so: until one answer has shown that
	// the credentials work, calls go one at a time (parallel workers
	// starting with a wrong password make one failed call, not one each);
	// after Jira refused the credentials, no call is made at all until
	// ResetAuth.
	authMu   sync.Mutex   // held by the one call in flight while unverified
	verified atomic.Bool  // an answer other than an authentication failure came back
	refused  atomic.Value // error: the Pause error of the refusal, or nil
}

// New builds a Client; it makes no call.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == "" {
		return nil, errors.New("jira base URL is empty: set JIRABRIDGE_JIRA_BASE_URL")
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("jira base URL %q is not an http(s) URL: fix JIRABRIDGE_JIRA_BASE_URL", opts.BaseURL)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var hc *http.Client
	switch {
	case opts.Token != "":
		hc = (&gojira.PATAuthTransport{Token: opts.Token, Transport: opts.Transport}).Client()
	default:
		hc = (&gojira.BasicAuthTransport{Username: opts.Username, Password: opts.Password, Transport: opts.Transport}).Client()
	}
	hc.Timeout = opts.Timeout
	jc, err := gojira.NewClient(hc, opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("jira client: %w", err)
	}
	return &Client{jc: jc, opts: opts}, nil
}

// BaseURL is the site's base URL as configured.
func (c *Client) BaseURL() string { return strings.TrimSuffix(c.opts.BaseURL, "/") }

// Username is the user the client acts as (empty with a token).
func (c *Client) Username() string { return c.opts.Username }

// do performs one call: body is JSON-encoded when non-nil; out is decoded
// from a 2xx answer when non-nil. Errors are classified.
func (c *Client) do(ctx context.Context, method, endpoint, path string, body, out any) error {
	req, err := c.jc.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return errclass.New(errclass.Permanent, "jira_request", fmt.Errorf("build jira request %s %s: %w", method, path, err))
	}
	return c.send(ctx, req, endpoint, out, nil)
}

// send runs req and decodes the answer; raw, when non-nil, receives the
// body bytes of a 2xx answer instead of JSON decoding.
func (c *Client) send(ctx context.Context, req *http.Request, endpoint string, out any, raw *[]byte) error {
	if err := c.authRefused(); err != nil {
		return err
	}
	if !c.verified.Load() {
		c.authMu.Lock()
		defer c.authMu.Unlock()
		if err := c.authRefused(); err != nil {
			return err
		}
	}
	err := c.roundTrip(ctx, req, endpoint, out, raw)
	switch {
	case errclass.Of(err) == errclass.Pause:
		c.refused.Store(refusal{err})
	case StatusOf(err) != 0 || err == nil:
		c.verified.Store(true)
	}
	return err
}

type refusal struct{ err error }

// authRefused returns the error Jira gave when it refused the credentials,
// while the latch is set.
func (c *Client) authRefused() error {
	if r, ok := c.refused.Load().(refusal); ok && r.err != nil {
		return r.err
	}
	return nil
}

// AuthRefused reports whether Jira refused this client's credentials; no
// call is made until ResetAuth.
func (c *Client) AuthRefused() bool { return c.authRefused() != nil }

// ResetAuth lifts the authentication latch, after an operator changed the
// credentials or resumed the sync. The next call goes alone again.
func (c *Client) ResetAuth() {
	c.refused.Store(refusal{})
	c.verified.Store(false)
}

func (c *Client) roundTrip(ctx context.Context, req *http.Request, endpoint string, out any, raw *[]byte) error {
	start := c.opts.Now()
	resp, err := c.jc.Do(req, nil)
	call := Call{Method: req.Method, Endpoint: endpoint, Duration: c.opts.Now().Sub(start)}
	var httpResp *http.Response
	if resp != nil {
		httpResp = resp.Response
	}
	if httpResp == nil {
		if c.opts.OnCall != nil {
			c.opts.OnCall(call)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return Classify(req.Method, req.URL.Path, 0, nil, nil, err)
	}
	defer httpResp.Body.Close()
	call.Status = httpResp.StatusCode
	if c.opts.OnCall != nil {
		c.opts.OnCall(call)
	}
	b, rerr := io.ReadAll(io.LimitReader(httpResp.Body, 1<<30))
	if cerr := Classify(req.Method, req.URL.Path, httpResp.StatusCode, httpResp.Header, b, nil); cerr != nil {
		return cerr
	}
	if rerr != nil {
		return Classify(req.Method, req.URL.Path, 0, nil, nil, fmt.Errorf("read answer: %w", rerr))
	}
	if raw != nil {
		*raw = b
		return nil
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return errclass.New(errclass.Permanent, "jira_bad_answer",
				fmt.Errorf("jira %s %s: answer is not the JSON Jira sends: %w", req.Method, req.URL.Path, err))
		}
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// Myself returns the user the credentials belong to: one call, which makes
// it the credentials check.
func (c *Client) Myself(ctx context.Context) (User, error) {
	var u User
	err := c.do(ctx, http.MethodGet, "myself", "rest/api/2/myself", nil, &u)
	return u, err
}

// ServerInfo returns the site's version and deployment type.
func (c *Client) ServerInfo(ctx context.Context) (ServerInfo, error) {
	var s ServerInfo
	err := c.do(ctx, http.MethodGet, "serverInfo", "rest/api/2/serverInfo", nil, &s)
	return s, err
}

// MyPermissions answers which of perms the caller has in project.
func (c *Client) MyPermissions(ctx context.Context, projectKey string, perms []string) (map[string]bool, error) {
	q := url.Values{}
	q.Set("projectKey", projectKey)
	q.Set("permissions", strings.Join(perms, ","))
	var ans struct {
		Permissions map[string]struct {
			HavePermission bool `json:"havePermission"`
		} `json:"permissions"`
	}
	if err := c.do(ctx, http.MethodGet, "mypermissions", "rest/api/2/mypermissions?"+q.Encode(), nil, &ans); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(perms))
	for _, p := range perms {
		out[p] = ans.Permissions[p].HavePermission
	}
	return out, nil
}

// Fields lists every field of the site.
func (c *Client) Fields(ctx context.Context) ([]FieldInfo, error) {
	var fs []FieldInfo
	err := c.do(ctx, http.MethodGet, "field", "rest/api/2/field", nil, &fs)
	return fs, err
}

// SearchPage is one page of search results.
type SearchPage struct {
	StartAt    int     `json:"startAt"`
	MaxResults int     `json:"maxResults"`
	Total      int     `json:"total"`
	Issues     []Issue `json:"issues"`
}

// Search runs one page of a JQL search.
func (c *Client) Search(ctx context.Context, jql string, startAt, maxResults int, fields, expand []string) (SearchPage, error) {
	body := map[string]any{"jql": jql, "startAt": startAt, "maxResults": maxResults}
	if len(fields) > 0 {
		body["fields"] = fields
	}
	if len(expand) > 0 {
		body["expand"] = expand
	}
	var p SearchPage
	err := c.do(ctx, http.MethodPost, "search", "rest/api/2/search", body, &p)
	return p, err
}

// SearchAll runs a JQL search through every page. It pages on the
// maxResults Jira returns, which may be lower than asked for.
func (c *Client) SearchAll(ctx context.Context, jql string, fields, expand []string, fn func(Issue) error) error {
	start := 0
	for {
		p, err := c.Search(ctx, jql, start, 100, fields, expand)
		if err != nil {
			return err
		}
		for _, is := range p.Issues {
			if err := fn(is); err != nil {
				return err
			}
		}
		start += len(p.Issues)
		if len(p.Issues) == 0 || start >= p.Total {
			return nil
		}
	}
}

// GetIssue fetches one issue; fields and expand as in Jira (nil: all fields).
func (c *Client) GetIssue(ctx context.Context, idOrKey string, fields, expand []string) (Issue, error) {
	q := url.Values{}
	if len(fields) > 0 {
		q.Set("fields", strings.Join(fields, ","))
	}
	if len(expand) > 0 {
		q.Set("expand", strings.Join(expand, ","))
	}
	path := "rest/api/2/issue/" + esc(idOrKey)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var is Issue
	err := c.do(ctx, http.MethodGet, "issue/{id}", path, nil, &is)
	return is, err
}

// CreateIssue creates an issue; properties are set in the same call, so a
// marker can never be missing from an issue the bridge created.
func (c *Client) CreateIssue(ctx context.Context, fields map[string]any, properties []Property) (Ref, error) {
	body := map[string]any{"fields": fields}
	if len(properties) > 0 {
		body["properties"] = properties
	}
	var r Ref
	err := c.do(ctx, http.MethodPost, "issue", "rest/api/2/issue", body, &r)
	return r, err
}

// EditIssue changes fields (set) and applies update operations; meta tags
// the history entry.
func (c *Client) EditIssue(ctx context.Context, idOrKey string, fields, update map[string]any, meta *HistoryMetadata) error {
	body := map[string]any{}
	if len(fields) > 0 {
		body["fields"] = fields
	}
	if len(update) > 0 {
		body["update"] = update
	}
	if meta != nil {
		body["historyMetadata"] = meta
	}
	return c.do(ctx, http.MethodPut, "issue/{id}", "rest/api/2/issue/"+esc(idOrKey), body, nil)
}

// DeleteIssue deletes an issue (and its sub-tasks).
func (c *Client) DeleteIssue(ctx context.Context, idOrKey string) error {
	return c.do(ctx, http.MethodDelete, "issue/{id}", "rest/api/2/issue/"+esc(idOrKey)+"?deleteSubtasks=true", nil, nil)
}

// Transitions lists the transitions valid from the issue's current status.
func (c *Client) Transitions(ctx context.Context, idOrKey string) ([]Transition, error) {
	var ans struct {
		Transitions []Transition `json:"transitions"`
	}
	err := c.do(ctx, http.MethodGet, "issue/{id}/transitions", "rest/api/2/issue/"+esc(idOrKey)+"/transitions", nil, &ans)
	return ans.Transitions, err
}

// DoTransition moves the issue along one transition.
func (c *Client) DoTransition(ctx context.Context, idOrKey, transitionID string, fields map[string]any, meta *HistoryMetadata) error {
	body := map[string]any{"transition": map[string]string{"id": transitionID}}
	if len(fields) > 0 {
		body["fields"] = fields
	}
	if meta != nil {
		body["historyMetadata"] = meta
	}
	return c.do(ctx, http.MethodPost, "issue/{id}/transitions", "rest/api/2/issue/"+esc(idOrKey)+"/transitions", body, nil)
}

// SetIssueProperty creates or replaces an issue property.
func (c *Client) SetIssueProperty(ctx context.Context, idOrKey, key string, value any) error {
	return c.do(ctx, http.MethodPut, "issue/{id}/properties/{key}", "rest/api/2/issue/"+esc(idOrKey)+"/properties/"+esc(key), value, nil)
}

// IssueProperty reads an issue property into v; found is false on 404.
func (c *Client) IssueProperty(ctx context.Context, idOrKey, key string, v any) (found bool, err error) {
	return c.property(ctx, "issue/{id}/properties/{key}", "rest/api/2/issue/"+esc(idOrKey)+"/properties/"+esc(key),
		"issue "+idOrKey+" property "+key, v)
}

// property reads the entity property at path into v; found is false on
// 404 (an entity without the property, which callers expect to meet).
func (c *Client) property(ctx context.Context, route, path, what string, v any) (found bool, err error) {
	var ans struct {
		Value json.RawMessage `json:"value"`
	}
	err = c.do(ctx, http.MethodGet, route, path, nil, &ans)
	if StatusOf(err) == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if v != nil {
		if err := json.Unmarshal(ans.Value, v); err != nil {
			return true, fmt.Errorf("%s: %w", what, err)
		}
	}
	return true, nil
}

// Comments lists every comment of an issue, paging through them.
func (c *Client) Comments(ctx context.Context, idOrKey string) ([]Comment, error) {
	return allComments[Comment](ctx, c, idOrKey, "")
}

// allComments pages through an issue's comments, 100 a call; query is
// added to each call's query string (e.g. "expand=properties&").
func allComments[T any](ctx context.Context, c *Client, idOrKey, query string) ([]T, error) {
	var all []T
	start := 0
	for {
		var p struct {
			Total    int `json:"total"`
			Comments []T `json:"comments"`
		}
		path := "rest/api/2/issue/" + esc(idOrKey) + "/comment?" + query + "startAt=" + strconv.Itoa(start) + "&maxResults=100"
		if err := c.do(ctx, http.MethodGet, "issue/{id}/comment", path, nil, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Comments...)
		start += len(p.Comments)
		if len(p.Comments) == 0 || start >= p.Total {
			return all, nil
		}
	}
}

// AddComment adds a comment; properties are written in the same call.
func (c *Client) AddComment(ctx context.Context, idOrKey, body string, vis *Visibility, properties []Property) (Comment, error) {
	req := map[string]any{"body": body}
	if vis != nil {
		req["visibility"] = vis
	}
	if len(properties) > 0 {
		req["properties"] = properties
	}
	var cm Comment
	err := c.do(ctx, http.MethodPost, "issue/{id}/comment", "rest/api/2/issue/"+esc(idOrKey)+"/comment", req, &cm)
	return cm, err
}

// EditComment replaces a comment's body (and visibility when non-nil).
func (c *Client) EditComment(ctx context.Context, idOrKey, commentID, body string, vis *Visibility) (Comment, error) {
	req := map[string]any{"body": body}
	if vis != nil {
		req["visibility"] = vis
	}
	var cm Comment
	err := c.do(ctx, http.MethodPut, "issue/{id}/comment/{cid}", "rest/api/2/issue/"+esc(idOrKey)+"/comment/"+esc(commentID), req, &cm)
	return cm, err
}

// DeleteComment deletes a comment.
func (c *Client) DeleteComment(ctx context.Context, idOrKey, commentID string) error {
	return c.do(ctx, http.MethodDelete, "issue/{id}/comment/{cid}", "rest/api/2/issue/"+esc(idOrKey)+"/comment/"+esc(commentID), nil, nil)
}

// CommentProperty reads a comment property into v; found is false on 404.
func (c *Client) CommentProperty(ctx context.Context, commentID, key string, v any) (bool, error) {
	return c.property(ctx, "comment/{cid}/properties/{key}", "rest/api/2/comment/"+esc(commentID)+"/properties/"+esc(key),
		"comment "+commentID+" property "+key, v)
}

// AddAttachment uploads one file. Jira answers with an array.
func (c *Client) AddAttachment(ctx context.Context, idOrKey, filename string, data []byte) (Attachment, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, err := w.CreateFormFile("file", filename)
	if err == nil {
		_, err = fw.Write(data)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return Attachment{}, errclass.New(errclass.Permanent, "jira_request", fmt.Errorf("build attachment upload: %w", err))
	}
	req, err := c.jc.NewMultiPartRequestWithContext(ctx, http.MethodPost, "rest/api/2/issue/"+esc(idOrKey)+"/attachments", &buf)
	if err != nil {
		return Attachment{}, errclass.New(errclass.Permanent, "jira_request", fmt.Errorf("build attachment upload: %w", err))
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	var out []Attachment
	if err := c.send(ctx, req, "issue/{id}/attachments", &out, nil); err != nil {
		return Attachment{}, err
	}
	if len(out) != 1 {
		return Attachment{}, errclass.New(errclass.Permanent, "jira_bad_answer", fmt.Errorf("attachment upload to %s: Jira answered with %d attachments, want 1", idOrKey, len(out)))
	}
	return out[0], nil
}

// Attachment reads attachment metadata.
func (c *Client) Attachment(ctx context.Context, id string) (Attachment, error) {
	var a Attachment
	err := c.do(ctx, http.MethodGet, "attachment/{id}", "rest/api/2/attachment/"+esc(id), nil, &a)
	return a, err
}

// DownloadAttachment returns the content of an attachment.
func (c *Client) DownloadAttachment(ctx context.Context, a Attachment) ([]byte, error) {
	target := a.Content
	if target == "" {
		target = "secure/attachment/" + esc(a.ID) + "/" + esc(a.Filename)
	} else if u, err := url.Parse(target); err == nil && u.IsAbs() {
		// Content URLs are absolute; keep only the path below the base so
		// the request goes through the configured base URL and auth.
		base, _ := url.Parse(c.opts.BaseURL)
		target = strings.TrimPrefix(u.Path, strings.TrimSuffix(base.Path, "/"))
		if u.RawQuery != "" {
			target += "?" + u.RawQuery
		}
	}
	req, err := c.jc.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, errclass.New(errclass.Permanent, "jira_request", fmt.Errorf("build attachment download: %w", err))
	}
	var b []byte
	err = c.send(ctx, req, "attachment/content", nil, &b)
	return b, err
}

// DeleteAttachment deletes an attachment.
func (c *Client) DeleteAttachment(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "attachment/{id}", "rest/api/2/attachment/"+esc(id), nil, nil)
}

// Watchers lists the watchers of an issue.
func (c *Client) Watchers(ctx context.Context, idOrKey string) ([]User, error) {
	var ans struct {
		Watchers []User `json:"watchers"`
	}
	err := c.do(ctx, http.MethodGet, "issue/{id}/watchers", "rest/api/2/issue/"+esc(idOrKey)+"/watchers", nil, &ans)
	return ans.Watchers, err
}

// AddWatcher adds a watcher (Jira wants a bare JSON string body).
func (c *Client) AddWatcher(ctx context.Context, idOrKey, username string) error {
	return c.do(ctx, http.MethodPost, "issue/{id}/watchers", "rest/api/2/issue/"+esc(idOrKey)+"/watchers", username, nil)
}

// RemoveWatcher removes a watcher.
func (c *Client) RemoveWatcher(ctx context.Context, idOrKey, username string) error {
	return c.do(ctx, http.MethodDelete, "issue/{id}/watchers", "rest/api/2/issue/"+esc(idOrKey)+"/watchers?username="+url.QueryEscape(username), nil, nil)
}

// CreateLink links two issues with a link type name.
func (c *Client) CreateLink(ctx context.Context, typeName, inwardKey, outwardKey string) error {
	body := map[string]any{
		"type":         map[string]string{"name": typeName},
		"inwardIssue":  map[string]string{"key": inwardKey},
		"outwardIssue": map[string]string{"key": outwardKey},
	}
	return c.do(ctx, http.MethodPost, "issueLink", "rest/api/2/issueLink", body, nil)
}

// DeleteLink removes an issue link.
func (c *Client) DeleteLink(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "issueLink/{id}", "rest/api/2/issueLink/"+esc(id), nil, nil)
}

// LinkTypes lists the site's issue link types.
func (c *Client) LinkTypes(ctx context.Context) ([]LinkType, error) {
	var ans struct {
		IssueLinkTypes []LinkType `json:"issueLinkTypes"`
	}
	err := c.do(ctx, http.MethodGet, "issueLinkType", "rest/api/2/issueLinkType", nil, &ans)
	return ans.IssueLinkTypes, err
}

// UpsertRemoteLink creates or updates (by GlobalID) a remote link.
func (c *Client) UpsertRemoteLink(ctx context.Context, idOrKey string, l RemoteLink) error {
	return c.do(ctx, http.MethodPost, "issue/{id}/remotelink", "rest/api/2/issue/"+esc(idOrKey)+"/remotelink", l, nil)
}

// RemoteLinks lists an issue's remote links.
func (c *Client) RemoteLinks(ctx context.Context, idOrKey string) ([]RemoteLink, error) {
	var ls []RemoteLink
	err := c.do(ctx, http.MethodGet, "issue/{id}/remotelink", "rest/api/2/issue/"+esc(idOrKey)+"/remotelink", nil, &ls)
	return ls, err
}
