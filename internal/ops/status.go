package ops

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"net/http"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/store"
)

// StatusPage is what the status page shows; the template sees it as is.
type StatusPage struct {
	Now         time.Time
	Syncs       []SyncStatus
	Alerts      []ActiveAlert
	Quarantined []store.Quarantined
	NotReady    []string
	// CanAct: a token is configured; SignedIn: this browser has a session.
	CanAct, SignedIn bool
	CSRF             string
	Flash, Error     string
}

// SyncStatus is one sync on the status page.
type SyncStatus struct {
	store.Sync
	Link          store.LinkStatus
	OldestUnacked time.Duration
	Pairs         []PairLinks
	PairsMore     bool
	Failures      []store.Failure
	Conflicts     []store.Conflict
}

// PairLinks is an issue pair with the URLs of both issues.
type PairLinks struct {
	store.IssuePair
	LocalURL, PeerURL string
}

var pageFuncs = htmltemplate.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"dur": func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return d.Round(time.Second).String()
	},
	"title": Title,
	"join":  strings.Join,
	"state": func(s store.FailureState) string { return string(s) },
}

// Page gathers the status page's data (exported for tests and `status`).
func (h *handler) Page(r *http.Request) (StatusPage, error) {
	now := h.o.Now()
	p := StatusPage{Now: now, CanAct: h.o.Token != "", Flash: r.URL.Query().Get("flash"), Error: r.URL.Query().Get("error")}
	if p.CanAct {
		if c, err := r.Cookie(SessionCookie); err == nil && equal(c.Value, h.mac("session")) {
			p.SignedIn = true
			p.CSRF = h.mac("csrf")
		}
	}
	if h.o.Evaluator != nil {
		p.Alerts = h.o.Evaluator.Active()
	}
	err := h.o.Store.View(r.Context(), func(tx *store.Tx) error {
		syncs, err := tx.SyncList()
		if err != nil {
			return fmt.Errorf("list syncs: %w", err)
		}
		for _, s := range syncs {
			ss := SyncStatus{Sync: s}
			if ss.Link, err = tx.LinkStatus(s.ID); err != nil {
				return fmt.Errorf("link status of %s: %w", s.ID, err)
			}
			ss.OldestUnacked = ss.Link.Outbox.OldestUnackedAge(now)
			pairs, err := tx.PairList(s.ID, "", h.o.MaxRows+1)
			if err != nil {
				return fmt.Errorf("pairs of %s: %w", s.ID, err)
			}
			if len(pairs) > h.o.MaxRows {
				pairs, ss.PairsMore = pairs[:h.o.MaxRows], true
			}
			var local, peer string
			if h.o.JiraURLs != nil {
				local, peer = h.o.JiraURLs(s.ID)
			}
			for _, pr := range pairs {
				ss.Pairs = append(ss.Pairs, PairLinks{IssuePair: pr, LocalURL: browse(local, pr.LocalKey), PeerURL: browse(peer, pr.PeerKey)})
			}
			if ss.Failures, err = tx.FailureList(s.ID, h.o.MaxRows, store.FailureOpen, store.FailureRetrying); err != nil {
				return fmt.Errorf("failures of %s: %w", s.ID, err)
			}
			if ss.Conflicts, err = tx.ConflictList(s.ID, h.o.MaxRows); err != nil {
				return fmt.Errorf("conflicts of %s: %w", s.ID, err)
			}
			p.Syncs = append(p.Syncs, ss)
		}
		p.Quarantined, err = tx.QuarantineList(h.o.MaxRows)
		return err
	})
	return p, err
}

func browse(base, key string) string {
	if base == "" || key == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/browse/" + key
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	p, err := h.Page(r)
	if err != nil {
		h.log.Warn("status page", "error", err)
		http.Error(w, "read the store: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := h.page.ExecuteTemplate(&b, "status.html.tmpl", p); err != nil {
		h.log.Warn("render status page", "error", err)
		http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	_, _ = w.Write(b.Bytes())
}
