package errclass

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestClassification(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name      string
		err       error
		class     Class
		reason    string
		retryable bool
		after     time.Duration
	}{
		{"unclassified is permanent", base, Permanent, "unclassified", false, 0},
		{"temporary", New(Temporary, "smtp_dial", base), Temporary, "smtp_dial", true, 0},
		{"wrapped temporary", fmt.Errorf("send: %w", New(Temporary, "x", base)), Temporary, "x", true, 0},
		{"backoff", WithBackOff("jira_429", 3*time.Second, base), BackOff, "jira_429", true, 3 * time.Second},
		{"pause", New(Pause, "jira_auth", base), Pause, "jira_auth", false, 0},
		{"permanent", New(Permanent, "smtp_5xx", base), Permanent, "smtp_5xx", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.class {
				t.Errorf("Of = %v, want %v", got, tt.class)
			}
			if got := ReasonOf(tt.err); got != tt.reason {
				t.Errorf("ReasonOf = %q, want %q", got, tt.reason)
			}
			if got := IsRetryable(tt.err); got != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v", got, tt.retryable)
			}
			if got := RetryAfter(tt.err); got != tt.after {
				t.Errorf("RetryAfter = %v, want %v", got, tt.after)
			}
			if !errors.Is(tt.err, base) {
				t.Errorf("errors.Is(base) = false; the cause must stay reachable")
			}
		})
	}
	if New(Temporary, "x", nil) != nil {
		t.Error("New with nil error must be nil")
	}
}
