package jirasim

import (
	"cmp"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TimeFormat is Jira's timestamp format: milliseconds always, offset without a colon.
const TimeFormat = "2006-01-02T15:04:05.000-0700"

func fmtTime(t time.Time) string { return t.Format(TimeFormat) }

func fmtTimeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return fmtTime(t)
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func ptr[T any](v T) *T { return &v }

// decode reads a JSON body into v, answering like Jira on bad JSON.
func decode(r *http.Request, v any) error {
	// Jira's REST layer (Jersey) refuses a JSON resource called with any
	// other media type.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" && !strings.HasPrefix(r.URL.Path, "/_jirasim/") {
		return errMsg(http.StatusUnsupportedMediaType, "Unsupported Media Type: send Content-Type: application/json")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		return errMsg(400, "Could not read request body: "+err.Error())
	}
	if len(b) == 0 {
		return errMsg(400, "No content to map to Object due to end of input")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errMsg(400, "Unexpected character in request body: "+err.Error())
	}
	return nil
}

// pageParams reads startAt and maxResults with Jira's defaults and cap.
func pageParams(r *http.Request, def, max int) (int, int) {
	q := r.URL.Query()
	start, _ := strconv.Atoi(q.Get("startAt"))
	if start < 0 {
		start = 0
	}
	n := def
	if v := q.Get("maxResults"); v != "" {
		if x, err := strconv.Atoi(v); err == nil && x >= 0 {
			n = x
		}
	}
	if n > max {
		n = max
	}
	return start, n
}

func page(items []any, start, max int) []any {
	if start >= len(items) {
		return []any{}
	}
	end := min(start+max, len(items))
	return items[start:end]
}

func idStr(id int64) string { return strconv.FormatInt(id, 10) }

// route registers an API handler; anonymous allows unauthenticated calls.
func (s *Server) route(pattern string, anonymous bool, h handler) {
	s.mux.HandleFunc(pattern, s.handle(anonymous, h))
}

// idsWhere returns the sorted ids of the entries that match; sorting only
// the matches keeps rendering one issue linear in the size of the site.
func idsWhere[V any](m map[int64]V, keep func(V) bool) []int64 {
	var ids []int64
	for id, v := range m {
		if keep(v) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
