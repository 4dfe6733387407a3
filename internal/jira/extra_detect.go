package jira

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// User lookups for the mapping's user policy; *Client implements
// mapping.UserDirectory with them. found is false on 404 or no match.

// UserByName fetches a user by username.
func (c *Client) UserByName(ctx context.Context, name string) (User, bool, error) {
	return c.getUser(ctx, "username", name)
}

// UserByKey fetches a user by user key (changelog items name users by key).
func (c *Client) UserByKey(ctx context.Context, key string) (User, bool, error) {
	return c.getUser(ctx, "key", key)
}

func (c *Client) getUser(ctx context.Context, param, v string) (User, bool, error) {
	var u User
	err := c.do(ctx, http.MethodGet, "user", "rest/api/2/user?"+param+"="+url.QueryEscape(v), nil, &u)
	if StatusOf(err) == http.StatusNotFound {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, err
	}
	return u, true, nil
}

// UserByEmail finds the one active user whose e-mail address is email
// (case-insensitive). Jira's user search matches prefixes of names and
// addresses, so the answer is filtered for an exact address.
func (c *Client) UserByEmail(ctx context.Context, email string) (User, bool, error) {
	var us []User
	q := "rest/api/2/user/search?username=" + url.QueryEscape(email) + "&maxResults=50"
	if err := c.do(ctx, http.MethodGet, "user/search", q, nil, &us); err != nil {
		return User{}, false, err
	}
	var found []User
	for _, u := range us {
		if strings.EqualFold(u.EmailAddress, email) {
			found = append(found, u)
		}
	}
	if len(found) == 1 {
		return found[0], true, nil
	}
	// Several people sharing an address cannot be told apart: no match,
	// so the policy's fallback decides.
	return User{}, false, nil
}

// Changelog fetches one page of an issue's changelog (GET
// issue/{id}/changelog), for issues whose history is longer than what
// expand=changelog returns.
func (c *Client) Changelog(ctx context.Context, idOrKey string, startAt, maxResults int) (Changelog, error) {
	var ans struct {
		StartAt    int       `json:"startAt"`
		MaxResults int       `json:"maxResults"`
		Total      int       `json:"total"`
		Values     []History `json:"values"`
		Histories  []History `json:"histories"`
	}
	path := "rest/api/2/issue/" + esc(idOrKey) + "/changelog?startAt=" + strconv.Itoa(startAt) + "&maxResults=" + strconv.Itoa(maxResults)
	if err := c.do(ctx, http.MethodGet, "issue/{id}/changelog", path, nil, &ans); err != nil {
		return Changelog{}, err
	}
	hs := ans.Values
	if hs == nil {
		hs = ans.Histories
	}
	return Changelog{StartAt: ans.StartAt, MaxResults: ans.MaxResults, Total: ans.Total, Histories: hs}, nil
}

// TimeZone returns the time zone Jira uses for the credentials' user
// (GET myself, timeZone): JQL date literals are read in it. An unknown or
// missing zone is UTC.
func (c *Client) TimeZone(ctx context.Context) (*time.Location, error) {
	var me struct {
		TimeZone string `json:"timeZone"`
	}
	if err := c.do(ctx, http.MethodGet, "myself", "rest/api/2/myself", nil, &me); err != nil {
		return nil, err
	}
	if me.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(me.TimeZone)
	if err != nil {
		return time.UTC, nil
	}
	return loc, nil
}
