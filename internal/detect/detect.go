// Package detect finds what people changed in the local Jira and writes it,
// as wire.Changes in aliases, to the store's pending changes for the link
// to send.
//
// Polling is the source of truth: JQL "(<sync JQL>) AND updated >=
// <cursor minus overlap>" ordered by updated, then each issue's changelog
// (and, through Collectors, its comments, attachments, watchers and links).
// The cursor is Jira's own "updated" time of the newest issue seen, so the
// bridge's clock never enters the query and clock skew cannot lose a
// change; JQL's minute precision and late commits are covered by the
// overlap, and the per-issue record of sent items (store sent_items) makes
// the overlap harmless: nothing is sent twice. The changes of one issue,
// their sent records and, after all issues, the cursor are each written in
// one transaction, so a crash at any point re-polls and produces the same
// change ids, which the peer's ledger deduplicates.
//
// The overlap brings recent issues back on every poll; an issue whose
// updated time has not moved since it was examined in full (a KindPolled
// record, written with its changes) is left alone before any per-issue
// call. docs/engine-detect.md says when the record is written and why a
// change cannot hide behind it.
//
// Echo: history entries by the sync user or tagged with historyMetadata
// type "jirabridge", and issues created by the sync user or carrying the
// "jirabridge.origin" property, are never sent.
package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/jira"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/internal/wire"
)

// Sent item kinds detection records in the store.
const (
	// KindCreate: the issue was sent as IssueCreate (ItemID is the issue id).
	KindCreate = "create"
	// KindBaseline: every history entry with an id up to Version (decimal)
	// is covered by a create or resync snapshot and is never sent.
	KindBaseline = "baseline"
	// KindChangelog: one history entry was sent (ItemID is its id).
	KindChangelog = "changelog"
	// KindUnpaired: the issue's partner was deleted and the pair
	// dissolved (Version: the partner's id); nothing of it is sent again.
	KindUnpaired = "unpaired"
	// KindPolled: the issue was examined in full (every collector ran,
	// none deferred, nothing parked, the records committed) while it had
	// the updated time in Version ("<ms>|<scope>", see polledVersion).
	// Poll leaves such an issue alone while its updated time and the
	// scope stay the same. A version ending "|tentative" was read less
	// than Settle after that time: Poll looks once more when Jira's clock
	// is Settle past it, and leaves it alone until then.
	KindPolled = "polled"
)

// HistoryMetadataType tags the applier's own edits in Jira's history.
const HistoryMetadataType = "jirabridge"

// OriginProperty is the issue property the applier sets on issues it
// creates; such issues are never sent back as new.
const OriginProperty = "jirabridge.origin"

// FailureKindPrefix starts the Kind of failures detection records (an
// outgoing change that cannot be mapped). The rest is the change kind.
const FailureKindPrefix = "detect:"

// Options configure a Detector. Jira, Store, SyncID, Node, SyncUser and
// Mapping are required; the rest have defaults.
type Options struct {
	Jira     *jira.Client
	Store    *store.Store
	SyncID   string
	Node     string // this bridge's node id; part of every change id
	SyncUser string // username of the sync user: its changes are never sent
	Mapping  *mapping.Mapping
	// JQL selects the sync's issues; default Mapping.JQL().
	JQL string
	// Overlap is subtracted from the cursor in every query; default 2m.
	Overlap time.Duration
	// Settle is how far Jira's clock must be past an issue's updated time
	// when detection reads the issue before it trusts that nothing more
	// will land with that same updated time (two changes in the same
	// millisecond, the second committed after the read). An issue read
	// earlier is examined once more after that (see KindPolled). Default
	// 2s.
	Settle time.Duration
	// Location is the time zone JQL date literals are read in (the sync
	// user's zone in Jira); nil asks Jira once (GET myself).
	Location *time.Location
	// Now is the bridge's clock, used for resync ids and to carry Jira's
	// time forward between reads (Settle); default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// PageSize is the maxResults asked for; Jira may return fewer, and
	// paging follows what it returns. Default 100.
	PageSize int
	// WatcherSweepEvery: watching an issue does not change its updated
	// time, so the poll's query cannot find it; every this many polls the
	// watchers of every sync issue are read (one call per issue). Default
	// 12 (a minute at the default interval); tests use 1.
	WatcherSweepEvery int
	// Collectors add kinds of changes (comments, attachments, watchers,
	// links); the changelog collector always runs first. Nil means the
	// ones the sync definition switches on (ContentCollectors); an empty
	// non-nil list means none.
	Collectors []Collector

	// beforeCommit, when set (tests), runs inside each per-issue write
	// transaction and may fail it.
	beforeCommit func(issueID string) error
}

// Result tells what one Poll, PollIssue or Resync did.
type Result struct {
	Issues  int       // issues the queries returned
	Skipped int       // of those, left alone: unchanged since examined in full (KindPolled)
	Changes int       // changes written to pending
	Parked  int       // changes that could not be mapped (failure records)
	Cursor  time.Time // the cursor after the poll (zero for PollIssue and Resync)
	Initial bool      // the poll was the initial sync
}

// Detector polls one sync's local Jira. Its methods are safe for
// concurrent use; they run one at a time.
type Detector struct {
	o          Options
	log        *slog.Logger
	collectors []Collector
	stats      *ContentStats
	polls      int // polls since start, for the watcher sweep
	skipChecks int // polls since start, for recheckSkipped

	mu      sync.Mutex
	loc     *time.Location
	started bool   // parked issues are re-checked on the first poll
	defHash string // of the sync definition, part of a KindPolled record

	// What Jira's clock has certainly reached (Settle): the newest
	// updated time Jira has shown (jiraFloor), and, once a read has been
	// timed, how far Jira's clock was at least ahead of the bridge's
	// (jiraAhead; Jira time >= bridge time + jiraAhead from then on).
	jiraFloor time.Time
	jiraAhead time.Duration
	timed     bool
}

// New checks opts and builds a Detector; it makes no call.
func New(opts Options) (*Detector, error) {
	var missing []string
	if opts.Jira == nil {
		missing = append(missing, "Jira")
	}
	if opts.Store == nil {
		missing = append(missing, "Store")
	}
	if opts.Mapping == nil {
		missing = append(missing, "Mapping")
	}
	if opts.SyncID == "" {
		missing = append(missing, "SyncID")
	}
	if opts.Node == "" {
		missing = append(missing, "Node")
	}
	if opts.SyncUser == "" {
		missing = append(missing, "SyncUser")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("detect: options %s are required", strings.Join(missing, ", "))
	}
	if opts.JQL == "" {
		opts.JQL = opts.Mapping.JQL()
	}
	if opts.Overlap <= 0 {
		opts.Overlap = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	if opts.WatcherSweepEvery <= 0 {
		opts.WatcherSweepEvery = 12
	}
	if opts.Settle <= 0 {
		opts.Settle = 2 * time.Second
	}
	d := &Detector{o: opts, loc: opts.Location, log: opts.Logger.With("component", "detect", "sync", opts.SyncID)}
	d.stats = &ContentStats{}
	if opts.Collectors == nil {
		opts.Collectors = ContentCollectors(opts.Mapping.Def(), d.stats)
	}
	d.collectors = append([]Collector{changelogCollector{}}, opts.Collectors...)
	d.defHash = defHash(opts.Mapping.Def())
	return d, nil
}

// Stats counts what the content collectors left out (unmappable watchers,
// links to issues that are not synced, filtered attachments, restricted
// comments) since the detector was built, for status.
func (d *Detector) Stats() *ContentStats { return d.stats }

// CursorName is the store cursor holding the sync's detection cursor.
func CursorName(syncID string) string { return "detect/" + syncID + "/updated" }

// ChangeID builds a change id: "<sync>/<node>/<item>". Items are
// "h<history id>", "c<issue id>" (create), "r<issue id>/<ms>" (resync), and
// what collectors choose; the same item always gets the same id.
func (d *Detector) ChangeID(item string) string {
	return d.o.SyncID + "/" + d.o.Node + "/" + item
}

// Cursor returns the stored cursor; ok is false before the initial sync.
func (d *Detector) Cursor(ctx context.Context) (t time.Time, ok bool, err error) {
	err = d.o.Store.View(ctx, func(tx *store.Tx) error {
		v, found, err := tx.CursorGet(CursorName(d.o.SyncID))
		if err != nil || !found {
			return err
		}
		t, err = time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("detection cursor %q is not a time: %w", v, err)
		}
		ok = true
		return nil
	})
	return t, ok, err
}

// Poll runs one detection pass. Without a cursor it is the initial sync:
// every issue matching the JQL is sent as IssueCreate. The cursor moves
// forward only after every issue's changes are durable; an error leaves it
// where it was, and the next poll repeats the work without duplicates.
func (d *Detector) Poll(ctx context.Context) (Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cursor, hasCursor, err := d.Cursor(ctx)
	if err != nil {
		return Result{}, err
	}
	loc, err := d.location(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{Initial: !hasCursor, Cursor: cursor}
	jql := "(" + d.o.JQL + ")"
	if hasCursor {
		since := cursor.Add(-d.o.Overlap).In(loc)
		jql += fmt.Sprintf(` AND updated >= "%s"`, since.Format("2006/01/02 15:04"))
	}
	jql += " ORDER BY updated ASC"
	if cursor.After(d.jiraFloor) {
		d.jiraFloor = cursor // Jira showed it, so its clock is past it
	}
	reach, err := d.scan(ctx, jql, &res, mode{initial: !hasCursor, skipUnchanged: true})
	if err != nil {
		return res, err
	}
	if err := d.recheckParked(ctx, &res); err != nil {
		return res, err
	}
	if err := d.sweepWatchers(ctx, &res, hasCursor); err != nil {
		return res, err
	}
	if err := d.recheckSkipped(ctx, &res, hasCursor); err != nil {
		return res, err
	}
	next := cursor
	if reach.After(next) {
		next = reach
	}
	// Without any issue seen yet (an empty project, or an initial scan
	// that was disturbed) there is nothing to anchor the cursor to: the
	// next poll scans everything again, and sent records keep it quiet.
	if !next.IsZero() && (!hasCursor || !next.Equal(cursor)) {
		if err := d.o.Store.Update(ctx, func(tx *store.Tx) error {
			return tx.CursorSet(CursorName(d.o.SyncID), next.UTC().Format(time.RFC3339Nano))
		}); err != nil {
			return res, fmt.Errorf("advance detection cursor: %w", err)
		}
	}
	res.Cursor = next
	if res.Changes > 0 || res.Parked > 0 {
		d.log.Info("poll", "issues", res.Issues, "skipped", res.Skipped, "changes", res.Changes, "parked", res.Parked, "initial", res.Initial)
	}
	return res, nil
}

// PollIssue examines one issue now (a webhook's hint). It sends what
// Poll would send for it and leaves the cursor alone; the next Poll finds
// nothing more to send for it. An issue outside the sync's JQL is ignored.
// It always examines the issue in full, even when its updated time has
// not moved since the last look: a hint is worth the few calls.
func (d *Detector) PollIssue(ctx context.Context, idOrKey string) (Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var res Result
	jql := fmt.Sprintf("(%s) AND %s = %s", d.o.JQL, idField(idOrKey), quote(idOrKey))
	_, err := d.scan(ctx, jql, &res, mode{})
	return res, err
}

// Resync sends the current state of every sync issue matching jql (empty:
// all) again, as an IssueUpdate with all sent fields, the issue type and
// the status, followed by its content (comments and attachments: every
// item again, with fresh change ids, see resyncer; watchers and links:
// their whole sets, see sets.go); the peer applies only what differs.
// Issues never sent are sent as IssueCreate. History entries up to now
// are then covered and not sent again.
func (d *Detector) Resync(ctx context.Context, jql string) (Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var res Result
	q := "(" + d.o.JQL + ")"
	if strings.TrimSpace(jql) != "" {
		q += " AND (" + jql + ")"
	}
	q += " ORDER BY updated ASC"
	stamp := strconv.FormatInt(d.o.Now().UnixMilli(), 10)
	err := d.search(ctx, q, func(is *jira.Issue, _ time.Time) error {
		res.Issues++
		return d.processIssue(ctx, is, &res, mode{resync: stamp})
	})
	return res, err
}

// Handler returns an http.Handler for Jira webhooks: it reads the issue
// from the payload and polls it at once. It answers 204 when done, 400 for
// a payload without an issue, and 503 when the poll failed (Jira retries
// nothing, and polling will catch the change anyway).
func (d *Detector) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Issue *struct {
				ID  string `json:"id"`
				Key string `json:"key"`
			} `json:"issue"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&p); err != nil || p.Issue == nil || (p.Issue.ID == "" && p.Issue.Key == "") {
			http.Error(w, "webhook payload has no issue", http.StatusBadRequest)
			return
		}
		id := p.Issue.ID
		if id == "" {
			id = p.Issue.Key
		}
		if _, err := d.PollIssue(r.Context(), id); err != nil {
			d.log.Warn("webhook poll failed; the next poll catches up", "issue", id, "err", err)
			http.Error(w, "poll failed", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func idField(idOrKey string) string {
	if _, err := strconv.ParseInt(idOrKey, 10, 64); err == nil {
		return "id"
	}
	return "key"
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (d *Detector) location(ctx context.Context) (*time.Location, error) {
	if d.loc != nil {
		return d.loc, nil
	}
	loc, err := d.o.Jira.TimeZone(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the sync user's time zone: %w", err)
	}
	d.loc = loc
	return loc, nil
}

// fields and expand every issue fetch asks for.
func (d *Detector) needs() (fields, expand []string) {
	fields = d.o.Mapping.FieldIDs()
	expand = []string{"changelog"}
	for _, c := range d.collectors[1:] {
		f, e := c.Needs()
		fields = append(fields, f...)
		expand = append(expand, e...)
	}
	return dedupe(fields), dedupe(expand)
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// search pages through jql on the maxResults Jira returns and calls fn for
// every issue, with what Jira's clock had certainly reached when the
// issue's page was read (see jiraNotBefore).
func (d *Detector) search(ctx context.Context, jql string, fn func(is *jira.Issue, readAt time.Time) error) error {
	_, _, err := d.searchPages(ctx, jql, fn)
	return err
}

// searchPages is search that also reports whether the result set held
// still while it was paged: every issue seen once and as many as Jira's
// first total. An issue updated during paging moves to the end and may
// push another over a page boundary unseen; then the cursor must not pass
// it. firstMax is the newest updated time on the first page: whatever the
// scan missed was, when that page was read, behind it in the order, so
// the cursor may always go that far.
func (d *Detector) searchPages(ctx context.Context, jql string, fn func(is *jira.Issue, readAt time.Time) error) (clean bool, firstMax time.Time, err error) {
	fields, expand := d.needs()
	firstPage := true
	seen := map[string]bool{}
	clean = true
	firstTotal := -1
	start := 0
	for {
		readAt := d.jiraNotBefore(d.o.Now())
		p, err := d.o.Jira.Search(ctx, jql, start, d.o.PageSize, fields, expand)
		if err != nil {
			return false, firstMax, fmt.Errorf("search %q: %w", jql, err)
		}
		if firstTotal < 0 {
			firstTotal = p.Total
		}
		// Every updated time on the page was committed before the read.
		var pageMax time.Time
		for i := range p.Issues {
			if u := p.Issues[i].Updated(); u.After(pageMax) {
				pageMax = u
			}
		}
		d.observe(pageMax, d.o.Now())
		if pageMax.After(readAt) {
			readAt = pageMax
		}
		for i := range p.Issues {
			is := &p.Issues[i]
			if seen[is.ID] {
				clean = false
				continue
			}
			seen[is.ID] = true
			if u := is.Updated(); firstPage && u.After(firstMax) {
				firstMax = u
			}
			if err := fn(is, readAt); err != nil {
				return false, firstMax, err
			}
		}
		firstPage = false
		start += len(p.Issues)
		if len(p.Issues) == 0 || start >= p.Total {
			if len(seen) < firstTotal || p.Total != firstTotal {
				clean = false
			}
			return clean, firstMax, nil
		}
	}
}

// observe notes that Jira showed updated time u in an answer that had
// arrived by bridge time at: Jira's clock was then at least u, and keeps
// running at the bridge's pace.
func (d *Detector) observe(u, at time.Time) {
	if u.IsZero() {
		return
	}
	if u.After(d.jiraFloor) {
		d.jiraFloor = u
	}
	if ahead := u.Sub(at); !d.timed || ahead > d.jiraAhead {
		d.jiraAhead, d.timed = ahead, true
	}
}

// jiraNotBefore is a time Jira's clock has certainly reached by bridge
// time now: the newest updated time Jira has shown, carried forward by
// the bridge time since it was shown. It assumes Jira's clock does not
// step back (the cursor assumes as much) and runs at the bridge clock's
// pace; it never asks Jira.
func (d *Detector) jiraNotBefore(now time.Time) time.Time {
	t := d.jiraFloor
	if d.timed {
		if x := now.Add(d.jiraAhead); x.After(t) {
			t = x
		}
	}
	return t
}

// completeChangelog fetches the rest of a changelog that the search
// returned only in part.
func (d *Detector) completeChangelog(ctx context.Context, is *jira.Issue) error {
	cl := is.Changelog
	if cl == nil {
		return nil
	}
	if cl.Total <= len(cl.Histories) && cl.StartAt == 0 {
		return nil
	}
	var all []jira.History
	start := 0
	for {
		p, err := d.o.Jira.Changelog(ctx, is.ID, start, 100)
		if err != nil {
			return fmt.Errorf("read changelog of %s: %w", is.Key, err)
		}
		all = append(all, p.Histories...)
		start += len(p.Histories)
		if len(p.Histories) == 0 || start >= p.Total {
			break
		}
	}
	is.Changelog = &jira.Changelog{Total: len(all), MaxResults: len(all), Histories: all}
	return nil
}

// scan processes every issue jql returns and reports how far the cursor
// may go: the newest updated time seen when the scan was clean, else the
// newest of its first page.
func (d *Detector) scan(ctx context.Context, jql string, res *Result, m mode) (reach time.Time, err error) {
	var newest time.Time
	clean, firstMax, err := d.searchPages(ctx, jql, func(is *jira.Issue, readAt time.Time) error {
		res.Issues++
		im := m
		im.readAt = readAt
		if err := d.processIssue(ctx, is, res, im); err != nil {
			return err
		}
		if u := is.Updated(); u.After(newest) {
			newest = u
		}
		return nil
	})
	if !clean {
		return firstMax, err
	}
	return newest, err
}

// mode says why an issue is processed.
type mode struct {
	initial bool      // initial sync
	resync  string    // resync stamp, "" otherwise
	only    Collector // a sweep: run only this collector on issues already sent
	// skipUnchanged: leave the issue alone when a KindPolled record says
	// it was examined in full at its current updated time (Poll's scan;
	// never a resync, a webhook's hint or a re-check of a parked issue).
	skipUnchanged bool
	// readAt is what Jira's clock had certainly reached when the issue
	// was read (zero: unknown, and the issue is not recorded as examined).
	readAt time.Time
}

// recheckParked looks again at issues whose outgoing change was parked:
// on the first poll after a start (the mapping may have been fixed) and
// whenever the operator asked for a retry or skipped it.
func (d *Detector) recheckParked(ctx context.Context, res *Result) error {
	var fs []store.Failure
	err := d.o.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		fs, err = tx.FailureList(d.o.SyncID, 1000, store.FailureOpen, store.FailureRetrying)
		return err
	})
	if err != nil {
		return fmt.Errorf("list parked outgoing changes: %w", err)
	}
	first := !d.started
	d.started = true
	done := map[string]bool{}
	for _, f := range fs {
		if !strings.HasPrefix(f.Kind, FailureKindPrefix) || (f.State != store.FailureRetrying && !first) {
			continue
		}
		issue := issueOfChange(f.ChangeID)
		if issue == "" || done[issue] {
			continue
		}
		done[issue] = true
		jql := fmt.Sprintf("(%s) AND id = %s", d.o.JQL, issue)
		m := mode{}
		if isResyncKey(f.ChangeID, issue) {
			// A parked resync snapshot is retried as a resync of the issue.
			m.resync = strconv.FormatInt(d.o.Now().UnixMilli(), 10)
		}
		if _, err := d.scan(ctx, jql, res, m); err != nil {
			return err
		}
	}
	return nil
}

// isResyncKey reports whether a failure key of issueID is that of a
// resync snapshot ("<sync>/<node>/r<issue id>/<ms>@<issue id>").
func isResyncKey(key, issueID string) bool {
	return strings.Contains(key, "/r"+issueID+"/") && strings.HasSuffix(key, "@"+issueID)
}

// parkedIssue reports whether one of an issue's outgoing changes is parked
// (open or being retried).
func parkedIssue(failures map[string]store.Failure) bool {
	for _, f := range failures {
		if f.State == store.FailureOpen || f.State == store.FailureRetrying {
			return true
		}
	}
	return false
}

// issueOfChange reads the issue id detection put into the failure's
// change id: the change ids it parks are "<sync>/<node>/h<hid>@<issue id>"
// in the failure record only, so a re-check knows which issue to fetch.
func issueOfChange(id string) string {
	if i := strings.LastIndexByte(id, '@'); i >= 0 {
		return id[i+1:]
	}
	return ""
}

// processIssue collects an issue's changes and writes them, with their
// sent records, in one transaction.
//
// Poll's scan (m.skipUnchanged) leaves an issue alone, before any Jira
// call, when it was examined in full at its current updated time (a
// KindPolled record; a tentative one only until Settle has passed);
// every other way in examines it in full. After a full examination the
// record moves to the issue's updated time, in the same transaction as
// the issue's changes, when nothing was deferred or parked.
func (d *Detector) processIssue(ctx context.Context, is *jira.Issue, res *Result, m mode) error {
	var sent map[sentKey]string
	var failures map[string]store.Failure
	polled := d.polledVersion(is)
	skip, second := false, false
	if err := d.o.Store.View(ctx, func(tx *store.Tx) error {
		items, err := tx.SentList(d.o.SyncID, is.ID)
		if err != nil {
			return err
		}
		sent = map[sentKey]string{}
		for _, it := range items {
			sent[sentKey{it.ItemKind, it.ItemID}] = it.Version
		}
		if v, ok := sent[sentKey{KindPolled, ""}]; ok && m.skipUnchanged && !is.Updated().IsZero() {
			// Examined in full at this updated time: nothing to do, or,
			// when that read came too early to rule out a change in the
			// same millisecond committed after it (tentative), one more
			// look once Jira's clock is Settle past it.
			skip = v == polled || (v == polled+tentative && !d.settled(is, m.readAt))
			if skip {
				return nil
			}
			second = v == polled+tentative
		}
		fs, err := tx.FailureList(d.o.SyncID, 1000, store.FailureOpen, store.FailureRetrying, store.FailureSkipped)
		if err != nil {
			return err
		}
		failures = map[string]store.Failure{}
		for _, f := range fs {
			if strings.HasPrefix(f.Kind, FailureKindPrefix) && issueOfChange(f.ChangeID) == is.ID {
				failures[f.ChangeID] = f
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read sent items of %s: %w", is.Key, err)
	}
	if _, gone := sent[sentKey{KindUnpaired, ""}]; gone {
		return nil
	}
	if skip {
		res.Skipped++
		return nil
	}
	if err := d.completeChangelog(ctx, is); err != nil {
		return err
	}
	in := &Input{Issue: is, Mapping: d.o.Mapping, SyncUser: d.o.SyncUser, Jira: d.o.Jira, sent: sent, d: d}
	// examined is set where every collector has run on the issue.
	examined := false

	var found []Found
	var puts []store.SentItem
	_, created := sent[sentKey{KindCreate, is.ID}]
	eligible, err := d.eligibleForCreate(ctx, in, created)
	if err != nil {
		return err
	}
	switch {
	case m.only != nil:
		if eligible {
			return nil // not sent yet: the regular poll sends it
		}
		fs, err := m.only.Collect(ctx, in)
		if err != nil {
			return fmt.Errorf("collect %s changes of %s: %w", m.only.Name(), is.Key, err)
		}
		found = fs
	case eligible:
		f, ok, err := d.snapshot(ctx, in, wire.IssueCreate, d.ChangeID("c"+is.ID))
		if err != nil {
			return err
		}
		if !ok {
			return nil // issue type not synced
		}
		f.Sent = append(f.Sent, d.sentItem(is.ID, KindCreate, is.ID, ""), d.baseline(is))
		found = append(found, f)
		if f.Err == nil {
			// Comments, attachments, watchers and links the issue already
			// has follow its creation.
			for _, c := range d.collectors[1:] {
				fs, err := c.Collect(ctx, in)
				if err != nil {
					return fmt.Errorf("collect %s changes of %s: %w", c.Name(), is.Key, err)
				}
				for i := range fs {
					if fs[i].At.Before(f.At) {
						fs[i].At = f.At
					}
				}
				found = append(found, fs...)
			}
			examined = true
		}
	case m.resync != "":
		f, ok, err := d.snapshot(ctx, in, wire.IssueUpdate, d.ChangeID("r"+is.ID+"/"+m.resync))
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		f.Sent = append(f.Sent, d.baseline(is))
		found = append(found, f)
		if f.Err == nil {
			// The content the peer's copy must hold follows the snapshot
			// (see resyncer).
			fs, err := d.resyncContent(ctx, in, m.resync)
			if err != nil {
				return err
			}
			found = append(found, fs...)
		}
	case m.initial && !in.pairedHere(ctx):
		// The initial sync sends only issues people created; the others
		// came from the peer before this bridge kept records (a new
		// store): their history so far is covered. A copy this bridge
		// made itself is paired: its history is read like any other, so a
		// person's edit of the copy before the first poll is not lost.
		puts = append(puts, d.baseline(is))
	default:
		if !created && !in.createdBySyncUser() {
			// Not sent yet but not eligible either (type not synced or
			// the origin property is there): nothing to send.
			if _, ok := in.issueTypeAlias(); !ok {
				return nil
			}
		}
		var lists [][]Found
		for _, c := range d.collectors {
			if _, w := c.(*watcherCollector); w && second {
				// The second look at the same updated time is for a
				// change committed late in the same millisecond; watching
				// never moves updated, the first look read the watchers
				// and the sweep reads them again: no call here.
				continue
			}
			fs, err := c.Collect(ctx, in)
			if err != nil {
				return fmt.Errorf("collect %s changes of %s: %w", c.Name(), is.Key, err)
			}
			lists = append(lists, fs)
		}
		found = merge(lists)
		examined = true
	}
	var mark *store.SentItem
	if examined && !in.deferred && !m.readAt.IsZero() && !is.Updated().IsZero() {
		v := polled
		if !d.settled(is, m.readAt) {
			v += tentative
		}
		if sent[sentKey{KindPolled, ""}] != v {
			it := d.sentItem(is.ID, KindPolled, "", v)
			mark = &it
		}
	}
	return d.write(ctx, is, found, puts, mark, failures, res)
}

// tentative ends the version of a KindPolled record written by a read that
// came less than Settle after the issue's updated time.
const tentative = "|tentative"

// polledVersion is the version of the issue's KindPolled record: its
// updated time in ms and the scope of the examination (the collectors
// that ran and the sync definition), so that a collector switched on or
// off, or a new definition, has every issue examined again once.
func (d *Detector) polledVersion(is *jira.Issue) string {
	names := make([]string, len(d.collectors))
	for i, c := range d.collectors {
		names[i] = c.Name()
	}
	return strconv.FormatInt(is.Updated().UnixMilli(), 10) + "|" + strings.Join(names, ",") + "|" + d.defHash
}

// settled reports whether the issue was read when Jira's clock was already
// Settle past its updated time: a change committed after the read then
// carries a later updated time (it is stamped before it commits, and
// commits within Settle), so the record cannot hide it.
func (d *Detector) settled(is *jira.Issue, readAt time.Time) bool {
	u := is.Updated()
	return !u.IsZero() && !readAt.IsZero() && !u.Add(d.o.Settle).After(readAt)
}

// defHash fingerprints the sync definition for KindPolled records.
func defHash(def *config.SyncDef) string {
	b, err := json.Marshal(def)
	if err != nil {
		return "?"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// merge interleaves the collectors' lists by time while keeping each
// list's own order: a collector knows the true order of its items (the
// changelog's is its ids', even when Jira's clock stepped back), time only
// decides between collectors.
func merge(lists [][]Found) []Found {
	var out []Found
	for {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0].At.Before(lists[best][0].At)) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, lists[best][0])
		lists[best] = lists[best][1:]
	}
}

// write stores the found changes in order, stopping at the first one that
// cannot be mapped (it parks the issue's outgoing lane), in one
// transaction with their sent records.
//
// mark, when set, is the issue's KindPolled record: written only when
// nothing parks, so that a parked issue keeps being looked at.
func (d *Detector) write(ctx context.Context, is *jira.Issue, found []Found, puts []store.SentItem, mark *store.SentItem, failures map[string]store.Failure, res *Result) error {
	if len(found) == 0 && len(puts) == 0 && mark == nil {
		return nil
	}
	var changes, parked, recordOnly int
	var resolve []int64
	var record *store.Failure
	var skips []store.Skip
	var unskips []store.SkipKey
	for _, f := range found {
		key := f.Change.ID + "@" + is.ID
		prev, wasParked := failures[key]
		if f.Err != nil {
			if wasParked && prev.State == store.FailureSkipped {
				// The operator gave up on it: record it as handled.
				puts = append(puts, f.Sent...)
				continue
			}
			record = &store.Failure{
				SyncID: d.o.SyncID, ChangeID: key, IssueKey: is.Key,
				Kind: FailureKindPrefix + string(f.Change.Kind), ErrorClass: errclass.ReasonOf(f.Err), ErrorText: f.Err.Error(),
			}
			if record.ErrorClass == "" {
				record.ErrorClass = errclass.Of(f.Err).String()
			}
			if wasParked && prev.State == store.FailureOpen && prev.ErrorText == record.ErrorText {
				// Already parked for the same reason: the overlap brings
				// the issue back every poll, which is no new attempt.
				record = nil
			}
			if record != nil && isResyncKey(key, is.ID) && parkedIssue(failures) {
				// A resync of an issue already parked on its way out: the
				// issue is listed once; its park's retry repairs it.
				record = nil
			}
			parked++
			break
		}
		if wasParked {
			resolve = append(resolve, prev.ID)
		}
		if isResyncKey(key, is.ID) {
			// A resync snapshot that went out supersedes the parks of
			// earlier resyncs of the issue (their ids never come again).
			for k, f := range failures {
				if k != key && isResyncKey(k, is.ID) && f.State != store.FailureSkipped {
					resolve = append(resolve, f.ID)
				}
			}
		}
		puts = append(puts, f.Sent...)
		skips, unskips = append(skips, f.Skips...), append(unskips, f.Unskips...)
		changes++
		if f.Change.ID == "" {
			recordOnly++
		}
	}
	if mark != nil && parked == 0 {
		puts = append(puts, *mark)
	}
	err := d.o.Store.Update(ctx, func(tx *store.Tx) error {
		if d.o.beforeCommit != nil {
			if err := d.o.beforeCommit(is.ID); err != nil {
				return err
			}
		}
		n := 0
		for _, f := range found {
			if n == changes {
				break
			}
			if f.Err != nil {
				continue // skipped by the operator
			}
			if f.Change.ID == "" {
				n++
				continue // a record only: nothing to send
			}
			b, err := json.Marshal(f.Change)
			if err != nil {
				return fmt.Errorf("encode change %s: %w", f.Change.ID, err)
			}
			if _, err := tx.PendingAdd(d.o.SyncID, is.ID, b); err != nil {
				return err
			}
			n++
		}
		for _, p := range puts {
			put := tx.SentPut
			if IsClockKind(p.ItemKind) {
				put = func(s store.SentItem) error { return MergeClock(tx, s) }
			}
			if err := put(p); err != nil {
				return err
			}
		}
		if err := writeSkips(tx, skips, unskips); err != nil {
			return err
		}
		for _, id := range resolve {
			if err := tx.FailureResolve(id); err != nil && !errors.Is(err, store.ErrBadTransition) {
				return err
			}
		}
		if record != nil {
			if _, err := tx.FailureRecord(*record); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store changes of %s: %w", is.Key, err)
	}
	if record != nil {
		d.log.Warn("outgoing change parked", "issue", is.Key, "change_id", record.ChangeID, "err", record.ErrorText)
	}
	res.Changes += changes - recordOnly
	res.Parked += parked
	return nil
}

func (d *Detector) sentItem(issueID, kind, itemID, version string) store.SentItem {
	return store.SentItem{SyncID: d.o.SyncID, IssueID: issueID, ItemKind: kind, ItemID: itemID, Version: version}
}

// baseline records that every history entry so far is covered.
func (d *Detector) baseline(is *jira.Issue) store.SentItem {
	return d.sentItem(is.ID, KindBaseline, "", strconv.FormatInt(maxHistoryID(is), 10))
}

func maxHistoryID(is *jira.Issue) int64 {
	var max int64
	if is.Changelog == nil {
		return 0
	}
	for _, h := range is.Changelog.Histories {
		if n, err := strconv.ParseInt(h.ID, 10, 64); err == nil && n > max {
			max = n
		}
	}
	return max
}

// eligibleForCreate says whether the issue should be sent as new: not sent
// yet, created by a person, of a synced type, without the origin property.
func (d *Detector) eligibleForCreate(ctx context.Context, in *Input, created bool) (bool, error) {
	if created || in.createdBySyncUser() {
		return false, nil
	}
	if _, ok := in.issueTypeAlias(); !ok {
		return false, nil
	}
	found, err := d.o.Jira.IssueProperty(ctx, in.Issue.ID, OriginProperty, nil)
	if err != nil {
		return false, fmt.Errorf("read %s of %s: %w", OriginProperty, in.Issue.Key, err)
	}
	return !found, nil
}

// snapshot builds a change carrying the issue's whole current state.
func (d *Detector) snapshot(ctx context.Context, in *Input, kind wire.ChangeKind, id string) (Found, bool, error) {
	is := in.Issue
	st, ok, err := d.o.Mapping.IssueState(ctx, is)
	if err != nil && !mapping.IsMappingError(err) {
		return Found{}, false, err
	}
	at := is.Updated()
	f := Found{At: at, Err: err}
	f.Change = wire.Change{ID: id, IssueID: is.ID, IssueKey: is.Key, Kind: kind, At: at}
	if err != nil {
		return f, true, nil
	}
	if !ok {
		return Found{}, false, nil
	}
	f.Change.IssueType, f.Change.Status = st.IssueType, st.Status
	f.Change.Fields = map[string]wire.FieldChange{}
	for a, v := range st.Fields {
		f.Change.Fields[a] = wire.FieldChange{Before: wire.NullValue(), After: v}
	}
	var parent struct{ ID string }
	if ok, _ := is.Field("parent", &parent); ok {
		f.Change.ParentIssueID = parent.ID
	}
	var creator jira.User
	if kind == wire.IssueCreate {
		if ok, _ := is.Field("creator", &creator); ok {
			if u, send := d.o.Mapping.OutgoingUser(&creator); send {
				f.Change.Author = &u
			}
		}
	}
	return f, true, nil
}
