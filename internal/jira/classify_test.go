package jira

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
)

func TestClassify(t *testing.T) {
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			hd.Set(kv[i], kv[i+1])
		}
		return hd
	}
	jiraBody := []byte(`{"errorMessages":["Issue Does Not Exist"],"errors":{}}`)
	fieldBody := []byte(`{"errorMessages":[],"errors":{"customfield_10010":"Field 'customfield_10010' cannot be set. It is not on the appropriate screen, or unknown."}}`)
	tests := []struct {
		name   string
		status int
		header http.Header
		body   []byte
		terr   error
		class  errclass.Class
		reason string
		after  time.Duration
		msg    string
	}{
		{"ok", 200, nil, nil, nil, -1, "", 0, ""},
		{"no content", 204, nil, nil, nil, -1, "", 0, ""},
		{"wrong password", 401, h("X-Seraph-LoginReason", "AUTHENTICATED_FAILED"), nil, nil, errclass.Pause, "jira_auth", 0, "AUTHENTICATED_FAILED"},
		{"captcha", 403, h("X-Seraph-LoginReason", "AUTHENTICATION_DENIED"), nil, nil, errclass.Pause, "jira_auth", 0, "AUTHENTICATION_DENIED"},
		{"missing permission", 403, nil, []byte(`{"errorMessages":["You do not have permission to edit issues in this project."],"errors":{}}`), nil, errclass.Permanent, "jira_permission", 0, "permission to edit"},
		{"rate limited", 429, h("Retry-After", "7"), nil, nil, errclass.BackOff, "jira_429", 7 * time.Second, "429"},
		{"rate limited without header", 429, nil, nil, nil, errclass.BackOff, "jira_429", 10 * time.Second, "429"},
		{"unavailable with retry-after", 503, h("Retry-After", "2"), nil, nil, errclass.BackOff, "jira_503", 2 * time.Second, "503"},
		{"server error", 500, nil, []byte("<html>oops</html>"), nil, errclass.Temporary, "jira_5xx", 0, "oops"},
		{"bad gateway", 502, nil, nil, nil, errclass.Temporary, "jira_5xx", 0, "502"},
		{"not found", 404, nil, jiraBody, nil, errclass.Permanent, "jira_not_found", 0, "Issue Does Not Exist"},
		{"field not on screen", 400, nil, fieldBody, nil, errclass.Permanent, "jira_rejected", 0, "not on the appropriate screen"},
		{"too large", 413, nil, nil, nil, errclass.Permanent, "jira_too_large", 0, "413"},
		{"refused", 0, nil, nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), errclass.Temporary, "jira_unreachable", 0, "refused"},
		{"timeout", 0, nil, nil, &net.DNSError{IsTimeout: true, Err: "i/o timeout"}, errclass.Temporary, "jira_timeout", 0, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Classify("GET", "/rest/api/2/issue/X-1", tt.status, tt.header, tt.body, tt.terr)
			if tt.class == -1 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got nil error")
			}
			if got := errclass.Of(err); got != tt.class {
				t.Errorf("class = %v, want %v", got, tt.class)
			}
			if got := errclass.ReasonOf(err); got != tt.reason {
				t.Errorf("reason = %q, want %q", got, tt.reason)
			}
			if got := errclass.RetryAfter(err); got != tt.after {
				t.Errorf("retry after = %v, want %v", got, tt.after)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not contain %q", err.Error(), tt.msg)
			}
		})
	}
}
