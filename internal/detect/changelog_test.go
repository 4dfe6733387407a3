package detect

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/jirabridge/jirabridge/internal/jira"
)

// A changelog that the search returned only in part is completed through
// the changelog endpoint, page by page.
func TestCompleteChangelogPages(t *testing.T) {
	t.Parallel()
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/rest/api/2/issue/10/changelog" {
			http.NotFound(w, r)
			return
		}
		calls++
		start, _ := strconv.Atoi(r.URL.Query().Get("startAt"))
		var vals []map[string]any
		for i := start; i < start+2 && i < 5; i++ {
			vals = append(vals, map[string]any{"id": strconv.Itoa(100 + i), "created": "2026-03-05T10:00:00.000+0000", "items": []any{}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"startAt": start, "maxResults": 2, "total": 5, "values": vals})
	}))
	defer srv.Close()
	jc, err := jira.New(jira.Options{BaseURL: srv.URL, Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	d := &Detector{o: Options{Jira: jc}}
	is := &jira.Issue{ID: "10", Key: "SUP-1", Changelog: &jira.Changelog{StartAt: 0, MaxResults: 2, Total: 5,
		Histories: []jira.History{{ID: "100"}, {ID: "101"}}}}
	if err := d.completeChangelog(context.Background(), is); err != nil {
		t.Fatal(err)
	}
	if len(is.Changelog.Histories) != 5 || is.Changelog.Histories[4].ID != "104" || calls != 3 {
		t.Fatalf("got %d histories after %d calls", len(is.Changelog.Histories), calls)
	}
}
