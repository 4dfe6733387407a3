package jira

import (
	"context"
	"encoding/json"
	"net/http"
)

// Calls for syncing comments, attachments, watchers and links (issue 5).

// InternalCommentProperty is the comment property Jira Service Management
// uses to mark a comment internal (value {"internal": true}).
const InternalCommentProperty = "sd.public.comment"

// CommentWithProps is a comment with its entity properties (expand=properties).
type CommentWithProps struct {
	Comment
	Properties []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	} `json:"properties,omitempty"`
}

// Property decodes the property key into v; false when it is absent.
func (c *CommentWithProps) Property(key string, v any) bool {
	for _, p := range c.Properties {
		if p.Key == key {
			return v == nil || json.Unmarshal(p.Value, v) == nil
		}
	}
	return false
}

// Internal reports whether Jira Service Management marks the comment internal.
func (c *CommentWithProps) Internal() bool {
	var v struct {
		Internal bool `json:"internal"`
	}
	return c.Property(InternalCommentProperty, &v) && v.Internal
}

// CommentsWithProps lists every comment of an issue with its properties,
// paging through them: one call tells detection which comments are the
// bridge's copies and which are internal.
func (c *Client) CommentsWithProps(ctx context.Context, idOrKey string) ([]CommentWithProps, error) {
	return allComments[CommentWithProps](ctx, c, idOrKey, "expand=properties&")
}

// Attachments lists an issue's attachments (the attachment field).
func (c *Client) Attachments(ctx context.Context, idOrKey string) ([]Attachment, error) {
	is, err := c.GetIssue(ctx, idOrKey, []string{"attachment"}, nil)
	if err != nil {
		return nil, err
	}
	var as []Attachment
	_, err = is.Field("attachment", &as)
	return as, err
}

// IssueLinks lists an issue's links (the issuelinks field).
func (c *Client) IssueLinks(ctx context.Context, idOrKey string) ([]IssueLink, error) {
	is, err := c.GetIssue(ctx, idOrKey, []string{"issuelinks"}, nil)
	if err != nil {
		return nil, err
	}
	var ls []IssueLink
	_, err = is.Field("issuelinks", &ls)
	return ls, err
}

// Comment reads one comment of an issue.
func (c *Client) Comment(ctx context.Context, idOrKey, id string) (Comment, error) {
	var cm Comment
	err := c.do(ctx, http.MethodGet, "issue/{id}/comment/{cid}", "rest/api/2/issue/"+esc(idOrKey)+"/comment/"+esc(id), nil, &cm)
	return cm, err
}
