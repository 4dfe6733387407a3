package jira

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
)

// APIError is a non-2xx answer from Jira, with Jira's error body decoded.
type APIError struct {
	Method      string
	Path        string
	Status      int
	Messages    []string          // errorMessages
	FieldErrors map[string]string // errors
	LoginReason string            // X-Seraph-LoginReason
	Body        string            // raw body when it was not Jira's JSON (truncated)
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "jira %s %s: %d", e.Method, e.Path, e.Status)
	if e.LoginReason != "" {
		fmt.Fprintf(&b, " (%s)", e.LoginReason)
	}
	parts := append([]string(nil), e.Messages...)
	for _, k := range sortedKeys(e.FieldErrors) {
		parts = append(parts, k+": "+e.FieldErrors[k])
	}
	if len(parts) == 0 && e.Body != "" {
		parts = append(parts, e.Body)
	}
	if len(parts) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(parts, "; "))
	}
	return b.String()
}

// StatusOf returns the HTTP status of a Jira error, or 0.
func StatusOf(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Classify turns one Jira answer (or transport failure) into an errclass
// error. It is the one place that decides what a Jira failure makes the
// bridge do:
//
//   - 401, and 403 with a login reason: pause the whole sync at once, since
//     every further call with the same credentials brings the sync user
//     closer to Jira's CAPTCHA lock;
//   - 429 and 503 with Retry-After: back off for as long as Jira asked;
//   - other 5xx, timeouts, refused connections: temporary;
//   - 403 without a login reason: the sync user lacks a permission, a
//     person must grant it: permanent for this change;
//   - other 4xx (400 field not on screen, 404 ...): permanent.
func Classify(method, path string, status int, header http.Header, body []byte, transportErr error) error {
	if transportErr != nil {
		reason := "jira_unreachable"
		var ne net.Error
		if errors.As(transportErr, &ne) && ne.Timeout() {
			reason = "jira_timeout"
		}
		return errclass.New(errclass.Temporary, reason, fmt.Errorf("jira %s %s: %w", method, path, transportErr))
	}
	if status >= 200 && status <= 299 {
		return nil
	}
	e := &APIError{Method: method, Path: path, Status: status}
	if header != nil {
		e.LoginReason = header.Get("X-Seraph-LoginReason")
	}
	var jb struct {
		ErrorMessages []string          `json:"errorMessages"`
		Errors        map[string]string `json:"errors"`
	}
	if len(body) > 0 && json.Unmarshal(body, &jb) == nil && (jb.ErrorMessages != nil || jb.Errors != nil) {
		e.Messages, e.FieldErrors = jb.ErrorMessages, jb.Errors
	} else if len(body) > 0 {
		s := strings.TrimSpace(string(body))
		if len(s) > 300 {
			s = s[:300] + "..."
		}
		e.Body = s
	}
	switch {
	case status == http.StatusUnauthorized:
		return errclass.New(errclass.Pause, "jira_auth", e)
	case status == http.StatusForbidden && e.LoginReason != "" && e.LoginReason != "OK":
		return errclass.New(errclass.Pause, "jira_auth", e)
	case status == http.StatusTooManyRequests:
		return errclass.WithBackOff("jira_429", retryAfter(header, 10*time.Second), e)
	case status == http.StatusServiceUnavailable && header != nil && header.Get("Retry-After") != "":
		return errclass.WithBackOff("jira_503", retryAfter(header, 10*time.Second), e)
	case status >= 500:
		return errclass.New(errclass.Temporary, "jira_5xx", e)
	case status == http.StatusForbidden:
		return errclass.New(errclass.Permanent, "jira_permission", e)
	case status == http.StatusNotFound:
		return errclass.New(errclass.Permanent, "jira_not_found", e)
	case status == http.StatusRequestEntityTooLarge:
		return errclass.New(errclass.Permanent, "jira_too_large", e)
	default:
		return errclass.New(errclass.Permanent, "jira_rejected", e)
	}
}

// retryAfter reads Retry-After as seconds or an HTTP date; def when absent.
func retryAfter(h http.Header, def time.Duration) time.Duration {
	if h == nil {
		return def
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
		return 0
	}
	return def
}
