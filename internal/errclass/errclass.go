// Package errclass is the one error vocabulary of the bridge: every error from
// Jira, SMTP, IMAP or the file system is classified once, where it is
// produced, as what the caller must do next. A permanent error is never
// retried, because a retry would block an ordered queue forever.
package errclass

import (
	"errors"
	"time"
)

// Class says what happens next after an error.
type Class int

const (
	// Permanent: park the work item and alert; retrying cannot help.
	Permanent Class = iota
	// Temporary: retry with back-off.
	Temporary
	// BackOff: the other side asked us to wait (Jira 429 Retry-After, SMTP 4xx).
	BackOff
	// Pause: stop everything that uses this dependency at once (Jira 401/403
	// on authentication) until an operator changes something.
	Pause
)

func (c Class) String() string {
	switch c {
	case Temporary:
		return "temporary"
	case BackOff:
		return "backoff"
	case Pause:
		return "pause"
	default:
		return "permanent"
	}
}

// Error carries a class, a short reason label for metrics and alerts, and,
// for BackOff, how long to wait.
type Error struct {
	Class  Class
	Reason string        // snake_case label, e.g. "smtp_4xx", "jira_auth"
	After  time.Duration // for BackOff: the wait the other side asked for
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Class.String() + ": " + e.Reason
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// New wraps err with a class and a reason. A nil err stays nil.
func New(c Class, reason string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Reason: reason, Err: err}
}

// WithBackOff wraps err as a BackOff that asks to wait d.
func WithBackOff(reason string, d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: BackOff, Reason: reason, After: d, Err: err}
}

// Of returns the class of err. Unclassified errors are Permanent: an
// error nobody classified must be looked at by a person, not retried blindly.
func Of(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Permanent
}

// ReasonOf returns the reason label of err, or "unclassified".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Reason != "" {
		return e.Reason
	}
	return "unclassified"
}

// RetryAfter returns the wait a BackOff error asked for, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.Class == BackOff {
		return e.After
	}
	return 0
}

// IsRetryable reports whether the same operation may be tried again later
// without a person: Temporary and BackOff.
func IsRetryable(err error) bool {
	c := Of(err)
	return c == Temporary || c == BackOff
}
