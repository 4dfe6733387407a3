package ops

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestChangesWait(t *testing.T) {
	t.Parallel()
	c := NewChanges()
	g0 := c.Generation()
	if !strings.HasSuffix(g0, ".0") {
		t.Fatalf("first generation %q, want <process>.0", g0)
	}
	stop := make(chan struct{})
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	// Nothing changed since g0: the wait ends with the context.
	if c.Wait(expired, stop, g0) {
		t.Errorf("Wait(g0) with nothing new = true")
	}
	// Another process's generation, or an older one: at once.
	for _, after := range []string{"00000000.0", "x", ""} {
		if !c.Wait(expired, stop, after) {
			t.Errorf("Wait(%q) = false, want true at once", after)
		}
	}
	// "*" is the generation current at the call: it waits too.
	if c.Wait(expired, stop, "*") {
		t.Errorf(`Wait("*") with nothing new = true`)
	}
	// A Bump wakes a waiter on the current generation: whether the
	// waiter is blocked already or not, it sees this Bump (its
	// generation is older afterwards, or its channel is closed).
	woke := make(chan bool)
	go func() { woke <- c.Wait(context.Background(), stop, g0) }()
	c.Bump()
	select {
	case ok := <-woke:
		if !ok {
			t.Errorf("Wait(g0) after Bump = false")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Wait(g0) not woken by Bump")
	}
	c.Bump()
	if g := c.Generation(); g == g0 || !strings.HasSuffix(g, ".2") {
		t.Errorf("generation after two bumps %q (first %q)", g, g0)
	}
	// stop ends a wait.
	close(stop)
	if c.Wait(context.Background(), stop, c.Generation()) {
		t.Errorf("Wait after stop = true")
	}
	// A nil counter is inert.
	var nilc *Changes
	nilc.Bump()
	if nilc.Generation() != "" || nilc.Wait(context.Background(), stop, "") {
		t.Errorf("nil Changes not inert")
	}
	if other := NewChanges().Generation(); other == g0 {
		t.Errorf("a new process starts at the same generation %q", g0)
	}
}

func TestParseLongPoll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query     string
		wantAfter string
		wantWait  time.Duration
		wantErr   string
	}{
		{"", "", 0, ""},
		{"after=ab.3", "ab.3", DefaultLongPoll, ""},
		{"after=ab.3&wait=2s", "ab.3", 2 * time.Second, ""},
		{"after=ab.3&wait=45", "ab.3", 45 * time.Second, ""},
		{"wait=1m", "*", time.Minute, ""},
		{"after=ab.3&wait=1h", "ab.3", MaxLongPoll, ""},
		{"after=ab.3&wait=soon", "", 0, `wait="soon" is not a duration`},
		{"after=ab.3&wait=-1s", "", 0, "must be positive"},
		{"after=ab.3&wait=0", "", 0, "must be positive"},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		after, wait, err := ParseLongPoll(q)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.query, err, tt.wantErr)
			}
			continue
		}
		if err != nil || after != tt.wantAfter || wait != tt.wantWait {
			t.Errorf("%q: = %q, %v, %v; want %q, %v", tt.query, after, wait, err, tt.wantAfter, tt.wantWait)
		}
	}
}
