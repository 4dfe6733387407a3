package ops

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
)

// JiraChecker is the readiness check "Jira reachable with valid
// credentials": GET /rest/api/2/myself as the sync user, at most once per
// interval (default 1 minute; probes in between get the last answer). Once
// Jira has refused the credentials it makes no further call, because every
// failed login counts towards Jira's CAPTCHA lock of the sync user; it
// reports the refusal until the process starts again with new credentials.
func JiraChecker(c *jira.Client, interval time.Duration) Checker {
	if interval <= 0 {
		interval = time.Minute
	}
	return &jiraChecker{c: c, every: interval, now: time.Now}
}

type jiraChecker struct {
	c     *jira.Client
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	at      time.Time
	last    error
	refused bool
}

func (j *jiraChecker) Check(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.refused {
		return j.last
	}
	if !j.at.IsZero() && j.now().Sub(j.at) < j.every {
		return j.last
	}
	_, err := j.c.Myself(ctx)
	j.at = j.now()
	if err == nil {
		j.last = nil
		return nil
	}
	if errclass.Of(err) == errclass.Pause {
		j.refused = true
		j.last = fmt.Errorf("jira refused the sync user's credentials (no further check until restart, to avoid Jira's CAPTCHA lock): %w", err)
		return j.last
	}
	j.last = fmt.Errorf("jira at %s: %w", j.c.BaseURL(), err)
	return j.last
}
