// Package jirasim is an in-process emulator of the Jira Data Center 9 REST
// API (v2), faithful enough in paths, status codes, JSON shapes and quirks
// that a client which works against it works against a real Jira. Tests wrap
// the Server in httptest; cmd/jirasim serves it for trying a configuration.
// docs/jirasim.md shows a first session with curl.
//
// Knowingly not emulated:
//   - Screens, field configurations and permission schemes are per project
//     and set through the Go API or /_jirasim/, not Jira's admin REST
//     resources (/screens, /permissionscheme, /workflow); one create/edit
//     screen per project; no required custom fields, no default values,
//     no field contexts per issue type.
//   - Statuses, issue types, priorities and resolutions are Jira's fixed
//     catalogue (no creating new ones); workflows have no conditions,
//     validators or transition screens beyond the resolution on "done"
//     statuses; no workflow schemes per issue type.
//   - No versions, components, worklogs, votes, sprints, boards, filters,
//     groups API, issue security levels, issue move/clone, bulk create,
//     archiving, user (de)activation or deletion over REST.
//   - Wiki markup is not rendered: renderedFields only escapes HTML and
//     wraps paragraphs.
//   - Search: JQL as far as internal/jirasim/jql goes (no history operators
//     WAS/CHANGED, no functions beyond currentUser, now, startOfDay, endOfDay);
//     no validateQuery=warn semantics; results are computed by a scan.
//   - Webhooks: issue and comment events only; delivery is one attempt
//     without retries; no signature headers.
//   - Authentication: no sessions or cookies (/rest/auth/1/session), no
//     OAuth; the CAPTCHA is never solvable by the client, only resettable.
//   - The changelog of a custom datetime or date field carries the stored
//     value in fromString/toString rather than Jira's locale format.
//   - No email notifications; notifyUsers is accepted and ignored.
//   - Rate limiting is per user only, without Data Center's allowlists or
//     per-endpoint settings.
package jirasim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Now is the clock for created/updated/history times and relative JQL
	// dates; default time.Now. Tests inject a fixed or stepping clock.
	Now func() time.Time
	// Location is the server (and every user's) time zone; default UTC.
	Location *time.Location
	// MaxResults caps maxResults in search (Jira's
	// jira.search.views.default.max); default 1000. A search without
	// maxResults gets 50.
	MaxResults int
	// MaxAttachmentSize in bytes; default 10 MiB. Larger uploads get 413.
	MaxAttachmentSize int64
	// MaxLoginFailures is how many consecutive wrong passwords a user may
	// send before a CAPTCHA is required; default 3, negative disables.
	MaxLoginFailures int
	// StatePath, when set, is loaded at New (if it exists) and rewritten
	// after every successful change.
	StatePath string
	// WebhookClient posts webhook payloads; default a client with a 10 s timeout.
	WebhookClient *http.Client
	// DeliverWebhook, when set, replaces the HTTP POST of a webhook payload
	// (url is the registered URL with its variables filled in), so tests
	// can receive events in-process.
	DeliverWebhook func(ctx context.Context, url string, body []byte) error
	// SyncWebhooks delivers webhooks before the triggering request returns,
	// so tests can assert on them without waiting.
	SyncWebhooks bool
	// Logger; default discards.
	Logger *slog.Logger
	// LegacyCreateMeta serves GET /rest/api/2/issue/createmeta, which Jira
	// 9.0 removed in favour of /issue/createmeta/{project}/issuetypes[/{id}];
	// off by default so clients do not come to depend on it.
	LegacyCreateMeta bool
	// Version is reported by serverInfo; default "9.12.2".
	Version string
}

// Server is the emulator. It is an http.Handler and offers a Go API for
// tests to set up users, projects and fields, inject faults and read counters.
type Server struct {
	opts Options
	mux  *http.ServeMux
	log  *slog.Logger

	mu sync.Mutex
	st *state

	faultMu  sync.Mutex
	faults   []*faultRule
	bucket   *tokenBucket
	counters map[string]int
	routes   map[string]int

	hooks sync.WaitGroup
	// persistMu orders state file writes so an older snapshot never
	// replaces a newer one.
	persistMu sync.Mutex
}

// New builds a Server with one administrator, admin/admin, or with the state
// stored at opts.StatePath.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.MaxResults <= 0 {
		opts.MaxResults = 1000
	}
	if opts.MaxAttachmentSize <= 0 {
		opts.MaxAttachmentSize = 10 << 20
	}
	if opts.MaxLoginFailures == 0 {
		opts.MaxLoginFailures = 3
	}
	if opts.WebhookClient == nil {
		opts.WebhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "9.12.2"
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger.With("component", "jirasim"),
		st:       bareState(),
		counters: map[string]int{},
		routes:   map[string]int{},
	}
	if opts.StatePath != "" {
		if b, err := os.ReadFile(opts.StatePath); err == nil {
			if err := s.Restore(b); err != nil {
				// Keep the unreadable file for a human instead of overwriting it.
				bad := opts.StatePath + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
				rerr := os.Rename(opts.StatePath, bad)
				s.log.Error("load state, starting bare", "path", opts.StatePath, "moved_to", bad, "err", err, "rename_err", rerr)
			}
		}
	}
	s.routesInit()
	return s
}

func bareState() *state {
	st := newState()
	st.Users["admin"] = &user{Name: "admin", Key: "admin", DisplayName: "Administrator", Email: "admin@example.com",
		Password: "admin", Active: true, Groups: []string{"jira-administrators", "jira-software-users"}}
	for _, lt := range defaultLinkTypes {
		st.LinkTypes[lt.ID] = &lt
	}
	st.Workflows["jirasim default workflow"] = defaultWorkflow()
	st.NextID["linktype"] = 10004
	return st
}

func (s *Server) now() time.Time {
	return s.opts.Now().In(s.opts.Location).Truncate(time.Millisecond)
}

// ServeHTTP applies faults and rate limits, counts the request, and routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Go's mux cannot hold both /issue/{key}/properties/{prop} and
	// /issue/createmeta/{project}/issuetypes, so createmeta gets an
	// internal prefix; counters still see the original path.
	if rest, ok := strings.CutPrefix(r.URL.Path, "/rest/api/2/issue/createmeta/"); ok {
		r = r.WithContext(context.WithValue(r.Context(), origPathKey{}, r.URL.Path))
		u := *r.URL
		u.Path = "/rest/api/2/_createmeta/" + rest
		u.RawPath = ""
		r.URL = &u
	}
	if !strings.HasPrefix(r.URL.Path, "/_jirasim/") {
		if s.applyFaults(w, r) {
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

type origPathKey struct{}

func origPath(r *http.Request) string {
	if p, ok := r.Context().Value(origPathKey{}).(string); ok {
		return p
	}
	return r.URL.Path
}

// reqCtx is one authenticated request.
type reqCtx struct {
	w    http.ResponseWriter
	r    *http.Request
	user *user
	base string
	// events are webhook events to fire after the state lock is released.
	events []hookEvent
	dirty  bool
	// props are the entity property keys to include in issues
	// (?properties=), nil for none.
	props []string
}

type handler func(c *reqCtx) error

// apiError is returned by handlers and written as a Jira error body.
type apiError struct {
	status   int
	messages []string
	fields   map[string]string
	plain    string // non-empty: written as is instead of JSON
	html     bool   // plain is an HTML page (Seraph's login failures)
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %v %v", e.status, e.messages, e.fields)
}

func errMsg(status int, msg ...string) *apiError {
	return &apiError{status: status, messages: msg}
}

func errField(status int, field, msg string) *apiError {
	return &apiError{status: status, fields: map[string]string{field: msg}}
}

func errNoIssue() *apiError {
	return errMsg(http.StatusNotFound, "Issue Does Not Exist")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	if v == nil {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.plain != "" {
		ct := "text/plain;charset=UTF-8"
		if e.html {
			ct = "text/html;charset=UTF-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(e.status)
		_, _ = w.Write([]byte(e.plain))
		return
	}
	msgs := e.messages
	if msgs == nil {
		msgs = []string{}
	}
	fields := e.fields
	if fields == nil {
		fields = map[string]string{}
	}
	writeJSON(w, e.status, map[string]any{"errorMessages": msgs, "errors": fields})
}

// handle wraps an API handler: authentication, the state lock, error
// writing, persistence and webhook dispatch after unlocking.
func (s *Server) handle(anonymous bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		c := &reqCtx{w: w, r: r, base: baseURL(r)}
		if q := r.URL.Query(); q.Has("properties") {
			c.props = append([]string{}, splitList(q.Get("properties"))...)
		}
		s.mu.Lock()
		u, aerr := s.authenticate(w, r)
		if aerr != nil {
			s.mu.Unlock()
			s.persist()
			writeError(w, aerr)
			return
		}
		if u == nil && !anonymous {
			s.mu.Unlock()
			writeError(w, errMsg(http.StatusUnauthorized, "You are not authenticated. Authentication required to perform this operation."))
			return
		}
		c.user = u
		err := s.runLocked(c, h)
		events := c.events
		dirty := c.dirty
		s.mu.Unlock()
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = errMsg(http.StatusInternalServerError, err.Error())
			}
			writeError(w, ae)
		}
		if dirty {
			s.persist()
		}
		s.dispatch(events)
	}
}

// runLocked runs a handler with s.mu held, turning a panic (a jirasim bug)
// into a 500 instead of a server that stays locked forever.
func (s *Server) runLocked(c *reqCtx, h handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "method", c.r.Method, "path", c.r.URL.Path, "panic", fmt.Sprint(p))
			err = errMsg(http.StatusInternalServerError, fmt.Sprintf("jirasim internal error: %v", p))
		}
	}()
	return h(c)
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

// lockForChange takes the state lock for a Go API change; the returned
// func unlocks and writes the state file, as a REST change does.
func (s *Server) lockForChange() func() {
	s.mu.Lock()
	return func() {
		s.mu.Unlock()
		s.persist()
	}
}

// persist writes the state file atomically (write, fsync, rename).
func (s *Server) persist() {
	if s.opts.StatePath == "" {
		return
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	b, err := s.Snapshot()
	if err != nil {
		s.log.Error("snapshot state", "err", err)
		return
	}
	dir := filepath.Dir(s.opts.StatePath)
	f, err := os.CreateTemp(dir, ".jirasim-state-*")
	if err != nil {
		s.log.Error("write state", "err", err)
		return
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(f.Name())
		s.log.Error("write state", "err", err)
		return
	}
	if err := os.Rename(f.Name(), s.opts.StatePath); err != nil {
		s.log.Error("rename state", "err", err)
	}
}

// Snapshot returns the whole state as JSON; Restore takes it back. Tests use
// the pair to rewind a Jira; cmd/jirasim uses it for -state.
func (s *Server) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(s.st)
	if err != nil {
		return nil, fmt.Errorf("encode jirasim state: %w", err)
	}
	return b, nil
}

// Restore replaces the state with one returned by Snapshot.
func (s *Server) Restore(b []byte) error {
	st := newState()
	if err := json.Unmarshal(b, st); err != nil {
		return fmt.Errorf("decode jirasim state: %w", err)
	}
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	if s.mux != nil { // not while New loads the state file
		s.persist()
	}
	return nil
}

// WaitWebhooks blocks until every webhook delivery started so far is done.
func (s *Server) WaitWebhooks(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.hooks.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
