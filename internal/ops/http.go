package ops

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/templates"
)

// Checker is one readiness condition: nil when it holds, else an error
// saying what is wrong (shown in /readyz's body).
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Check runs f.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Check is a named readiness condition: "jira" (reachable with valid
// credentials), "mail" (the mail path connected), ... The store is always
// checked.
type Check struct {
	Name    string
	Checker Checker
}

// Actions are what the status page's buttons do; the same operations as
// `jirabridge messages retry|skip`.
type Actions interface {
	Retry(ctx context.Context, failureID int64) (store.Failure, error)
	Skip(ctx context.Context, failureID int64) (store.Failure, error)
}

// ReplayActions are the Actions of internal/replay on a store: the failure
// becomes retrying (or skipped) and its lane is unparked.
type ReplayActions struct{ Store *store.Store }

// Retry is replay.Retry.
func (a ReplayActions) Retry(ctx context.Context, id int64) (store.Failure, error) {
	return replay.Retry(ctx, a.Store, id)
}

// Skip is replay.Skip.
func (a ReplayActions) Skip(ctx context.Context, id int64) (store.Failure, error) {
	return replay.Skip(ctx, a.Store, id)
}

// HandlerOptions configure the HTTP handler. Store is required.
type HandlerOptions struct {
	Store *store.Store
	// Gatherer serves /metrics (the registry the metrics were built on);
	// nil: /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Checks are the readiness conditions beyond the store.
	Checks []Check
	// CheckTimeout bounds each readiness check; default 5s.
	CheckTimeout time.Duration
	// Evaluator shows the active alerts on the status page; optional.
	Evaluator *Evaluator
	// Actions do Retry and Skip; default MeteredActions over ReplayActions
	// on Store.
	Actions Actions
	// Metrics counts the operator's retries and skips (default Actions).
	Metrics *metrics.Metrics
	// Token (JIRABRIDGE_STATUS_ACTION_TOKEN) must accompany every action;
	// empty makes the page read-only.
	Token string
	// JiraURLs gives the base URLs of the local and the peer Jira of a sync,
	// for the links of issue pairs; optional.
	JiraURLs func(syncID string) (local, peer string)
	// MaxRows caps each table on the page; default 200.
	MaxRows int
	Now     func() time.Time
	Logger  *slog.Logger
}

// Cookie and form names of the status page's session.
const (
	SessionCookie = "jirabridge_session"
	CSRFField     = "csrf"
	TokenField    = "token"
	TokenHeader   = "X-Jirabridge-Token"
)

type handler struct {
	o    HandlerOptions
	log  *slog.Logger
	page *htmltemplate.Template
	mux  *http.ServeMux
}

// NewHandler builds the one http.Handler the daemon mounts on
// JIRABRIDGE_HTTP_LISTEN (127.0.0.1:8080 by default): /healthz, /readyz,
// /metrics, the status page at / and its actions (POST /login, /logout,
// /messages/{id}/retry, /messages/{id}/skip).
//
// Actions are protected against cross-site requests: POST only; the token
// in the X-Jirabridge-Token header (or Authorization: Bearer), or a session
// cookie (HttpOnly, SameSite=Strict) set by POST /login with the token plus
// a CSRF field derived from the token; and a request whose Origin (or
// Referer) names another site, or whose Sec-Fetch-Site is cross-site, is
// refused whatever it carries.
func NewHandler(o HandlerOptions) (http.Handler, error) {
	if o.Store == nil {
		return nil, errors.New("ops handler: Store is required")
	}
	if o.Actions == nil {
		o.Actions = MeteredActions{Actions: ReplayActions{Store: o.Store}, Metrics: o.Metrics}
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 5 * time.Second
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 200
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	page, err := htmltemplate.New("").Funcs(pageFuncs).Option("missingkey=error").ParseFS(templates.FS(), "status.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse status page template: %w", err)
	}
	h := &handler{o: o, log: o.Logger.With("component", "ops_http"), page: page, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	if o.Gatherer != nil {
		h.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelWarn)}))
	}
	h.mux.HandleFunc("GET /{$}", h.status)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("POST /logout", h.logout)
	h.mux.HandleFunc("POST /messages/{id}/{action}", h.action)
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// Ready runs the readiness checks and returns the failures, store first.
func (h *handler) ready(ctx context.Context) []string {
	var bad []string
	checks := append([]Check{{Name: "store", Checker: CheckFunc(func(ctx context.Context) error {
		return h.o.Store.View(ctx, func(tx *store.Tx) error {
			_, err := tx.SyncList()
			return err
		})
	})}}, h.o.Checks...)
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, h.o.CheckTimeout)
		err := c.Checker.Check(cctx)
		cancel()
		if err != nil {
			bad = append(bad, c.Name+": "+err.Error())
		}
	}
	return bad
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if bad := h.ready(r.Context()); len(bad) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready")
		for _, b := range bad {
			fmt.Fprintln(w, b)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}

func (h *handler) mac(purpose string) string {
	m := hmac.New(sha256.New, []byte(h.o.Token))
	m.Write([]byte("jirabridge status page " + purpose))
	return hex.EncodeToString(m.Sum(nil))
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sameOrigin refuses requests a browser marks as coming from another site.
func sameOrigin(r *http.Request) error {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return fmt.Errorf("cross-site request (Sec-Fetch-Site: %s)", s)
	}
	check := func(hdr, v string) error {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return fmt.Errorf("unreadable %s header", hdr)
		}
		if !strings.EqualFold(u.Host, r.Host) {
			return fmt.Errorf("request from another site (%s: %s)", hdr, u.Host)
		}
		return nil
	}
	if o := r.Header.Get("Origin"); o != "" {
		if o == "null" {
			return errors.New("request from an opaque origin")
		}
		return check("Origin", o)
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return check("Referer", ref)
	}
	return nil
}

// authorized says whether r may act, and why not.
func (h *handler) authorized(r *http.Request) error {
	if h.o.Token == "" {
		return errors.New("the status page is read-only: set JIRABRIDGE_STATUS_ACTION_TOKEN to allow actions")
	}
	if err := sameOrigin(r); err != nil {
		return err
	}
	if t := r.Header.Get(TokenHeader); t != "" {
		if equal(t, h.o.Token) {
			return nil
		}
		return errors.New("wrong token")
	}
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		if equal(strings.TrimPrefix(a, "Bearer "), h.o.Token) {
			return nil
		}
		return errors.New("wrong token")
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || !equal(c.Value, h.mac("session")) {
		return errors.New("not signed in: enter the action token first")
	}
	if !equal(r.PostFormValue(CSRFField), h.mac("csrf")) {
		return errors.New("missing or wrong CSRF field")
	}
	return nil
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if h.o.Token == "" {
		http.Error(w, "the status page is read-only: set JIRABRIDGE_STATUS_ACTION_TOKEN to allow actions", http.StatusForbidden)
		return
	}
	if err := sameOrigin(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if !equal(r.PostFormValue(TokenField), h.o.Token) {
		h.log.Warn("status page sign-in with a wrong token", "remote", r.RemoteAddr)
		redirect(w, r, "", "wrong token")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: h.mac("session"), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 12 * 3600,
	})
	redirect(w, r, "signed in", "")
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	redirect(w, r, "signed out", "")
}

func (h *handler) action(w http.ResponseWriter, r *http.Request) {
	if err := h.authorized(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "message id must be a positive number", http.StatusBadRequest)
		return
	}
	var f store.Failure
	switch r.PathValue("action") {
	case "retry":
		f, err = h.o.Actions.Retry(r.Context(), id)
	case "skip":
		f, err = h.o.Actions.Skip(r.Context(), id)
	default:
		http.Error(w, "unknown action: use retry or skip", http.StatusNotFound)
		return
	}
	api := r.Header.Get(TokenHeader) != "" || r.Header.Get("Authorization") != ""
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, store.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, store.ErrBadTransition):
			status = http.StatusConflict
		}
		msg := fmt.Sprintf("%s message %d: %v", r.PathValue("action"), id, err)
		if api {
			http.Error(w, msg, status)
			return
		}
		redirect(w, r, "", msg)
		return
	}
	h.log.Info("status page action", "action", r.PathValue("action"), "message_id", id, "issue", f.IssueKey)
	done := "retry asked; the change is applied at the next replay round"
	if r.PathValue("action") == "skip" {
		done = "skipped; later changes of the issue go on"
	}
	msg := fmt.Sprintf("message %d (%s %s): %s", id, f.IssueKey, f.Kind, done)
	if api {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, msg)
		return
	}
	redirect(w, r, msg, "")
}

func redirect(w http.ResponseWriter, r *http.Request, flash, errText string) {
	q := url.Values{}
	if flash != "" {
		q.Set("flash", flash)
	}
	if errText != "" {
		q.Set("error", errText)
	}
	target := "/"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
