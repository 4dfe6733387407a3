package detect

import (
	"slices"
	"testing"
)

func TestStripAuthorLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, suffix, want string }{
		{"Alice Smith (Partner Jira):\nhello", "(Partner Jira)", "hello"},
		{"[~asmith]:\nhello\nworld", "(Partner Jira)", "hello\nworld"},
		{"no author line", "(Partner Jira)", "no author line"},
		{"Dear all:\nhello", "(Partner Jira)", "Dear all:\nhello"},
		{"Alice (Other):\nhello", "(Partner Jira)", "Alice (Other):\nhello"},
	}
	for _, tc := range tests {
		if got := StripAuthorLine(tc.body, tc.suffix); got != tc.want {
			t.Errorf("StripAuthorLine(%q) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestRecordVersionsRoundTrip(t *testing.T) {
	t.Parallel()
	st, alias, other := ParseLinkVersion(LinkVersion(LinkActive, "blocks", "10001"))
	if st != LinkActive || alias != "blocks" || other != "10001" {
		t.Errorf("link version: %q %q %q", st, alias, other)
	}
	if st, _, _ := ParseLinkVersion(""); st != "" {
		t.Errorf("empty link version state %q", st)
	}
	for _, tc := range []struct {
		seq   int
		names []string
	}{{0, nil}, {3, []string{"bob", "alice"}}} {
		seq, names := ParseWatcherRecord(WatcherRecord(tc.seq, tc.names))
		want := slices.Clone(tc.names)
		slices.Sort(want)
		if seq != tc.seq || !slices.Equal(names, want) {
			t.Errorf("watcher record %d %v: got %d %v", tc.seq, tc.names, seq, names)
		}
	}
	// A record without a sequence (older format) reads as sequence 0.
	if seq, names := ParseWatcherRecord("alice\nbob"); seq != 0 || !slices.Equal(names, []string{"alice", "bob"}) {
		t.Errorf("plain record: %d %v", seq, names)
	}
}
