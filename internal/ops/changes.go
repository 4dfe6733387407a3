package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Changes counts what a running bridge does that its status can show (an
// envelope sent or stored, changes detected, applied or parked, a
// lifecycle message handled, the sync's state changed), so that a client
// can wait for the next one instead of asking again and again: the
// daemon's GET /status?after=G&wait=30s answers when the generation is no
// longer G. A nil *Changes counts nothing and never wakes anyone.
type Changes struct {
	boot string // tells one process's generations from another's

	mu sync.Mutex
	n  uint64
	ch chan struct{} // closed and replaced at each Bump
}

// NewChanges returns a counter at generation 0 of a new process.
func NewChanges() *Changes {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return &Changes{boot: hex.EncodeToString(b[:]), ch: make(chan struct{})}
}

// Bump records that something changed. Call it after the change is
// visible (committed), so that a client reading the generation before the
// status never misses it.
func (c *Changes) Bump() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.n++
	close(c.ch)
	c.ch = make(chan struct{})
	c.mu.Unlock()
}

// Generation returns the current generation, an opaque token
// ("<process>.<count>") to pass back as after=.
func (c *Changes) Generation() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boot + "." + strconv.FormatUint(c.n, 10)
}

// Wait returns true as soon as the generation differs from after: at once
// when it does already (after is older, or from another process, say one
// that was restarted since), else when Bump is called. It returns false
// when ctx ends or stop is closed first. after "*" stands for the
// generation current now: Wait returns at the next Bump.
func (c *Changes) Wait(ctx context.Context, stop <-chan struct{}, after string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	same := after == "*" || after == c.boot+"."+strconv.FormatUint(c.n, 10)
	ch := c.ch
	c.mu.Unlock()
	if !same {
		return true
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// Long-poll bounds: a wait without wait= lasts DefaultLongPoll; a longer
// one is cut to MaxLongPoll (proxies and clients drop idle connections).
const (
	DefaultLongPoll = 30 * time.Second
	MaxLongPoll     = 5 * time.Minute
)

// ParseLongPoll reads after= and wait= of a long-poll request. after is
// "" when the client does not wait (answer at once); with wait= alone,
// after is "*", which means "the generation current when the request
// arrives": the client waits for the next change. wait is a Go duration
// ("30s", "2m") or a number of seconds; it is capped at MaxLongPoll.
func ParseLongPoll(q url.Values) (after string, wait time.Duration, err error) {
	after = strings.TrimSpace(q.Get("after"))
	w := strings.TrimSpace(q.Get("wait"))
	if w == "" {
		if after == "" {
			return "", 0, nil
		}
		return after, DefaultLongPoll, nil
	}
	if wait, err = time.ParseDuration(w); err != nil {
		secs, serr := strconv.ParseUint(w, 10, 32)
		if serr != nil {
			return "", 0, fmt.Errorf("wait=%q is not a duration (30s, 2m) or a number of seconds", w)
		}
		wait = time.Duration(secs) * time.Second
	}
	if wait <= 0 {
		return "", 0, fmt.Errorf("wait=%q must be positive", w)
	}
	if after == "" {
		after = "*"
	}
	return after, min(wait, MaxLongPoll), nil
}
