package wire

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The set kinds a resync sends (watcher.set, link.set) travel with two
// optional fields; changes written before them decode as they did, and
// an empty set is simply absent.
func TestSetChangesRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	for _, tc := range []struct {
		name string
		c    Change
		json string // a fragment the encoding must contain
	}{
		{"watchers", Change{ID: "s/a/w1/r5", IssueID: "10001", Kind: WatcherSet, At: at,
			Watchers: []User{{Name: "alice", Display: "Alice"}, {Email: "bob@corp.example"}}},
			`"watchers":[{"name":"alice","display":"Alice"},{"email":"bob@corp.example"}]`},
		{"no watchers", Change{ID: "s/a/w1/r6", IssueID: "10001", Kind: WatcherSet, At: at}, `"kind":"watcher.set","at"`},
		{"links", Change{ID: "s/a/l1/r5", IssueID: "10001", Kind: LinkSet, At: at,
			Links: []Link{{ID: "7", Type: "blocks", OtherIssueID: "10002", Direction: "outward"}}},
			`"links":[{"id":"7","type":"blocks","other_issue_id":"10002","direction":"outward"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeChanges([]Change{tc.c})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.json) {
				t.Errorf("encoding %s does not contain %s", b, tc.json)
			}
			got, err := DecodeChanges(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.c
			want.Version = ChangeVersion
			if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
		})
	}
}

func TestChangesWithoutSetFieldsStillDecode(t *testing.T) {
	t.Parallel()
	old := `[{"v":1,"id":"s/a/w1/1/+alice","issue_id":"10001","kind":"watcher.add","at":"2026-05-06T07:08:09.123Z","watcher":{"name":"alice"}}]`
	got, err := DecodeChanges([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Watchers != nil || got[0].Links != nil || got[0].Watcher == nil || got[0].Watcher.Name != "alice" {
		t.Errorf("decoded %+v", got)
	}
}
