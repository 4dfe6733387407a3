package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/engine"
	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/link"
	"github.com/jirabridge/jirabridge/internal/mapping"
	"github.com/jirabridge/jirabridge/internal/metrics"
	"github.com/jirabridge/jirabridge/internal/ops"
	"github.com/jirabridge/jirabridge/internal/replay"
	"github.com/jirabridge/jirabridge/internal/store"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/filedrop"
	"github.com/jirabridge/jirabridge/transport/imappoll"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
)

// daemonOptions tunes the daemon beyond the process settings.
type daemonOptions struct {
	// Once makes the daemon send what is queued, read what has arrived
	// until the transport is idle for Idle, and return (run --once: a cron
	// job beside a file drop, and deterministic tests).
	Once bool
	Idle time.Duration
	// Tick is how often the outbox and the sync state are looked at when
	// nothing wakes the loop; default 1s.
	Tick time.Duration
	// Listen overrides JIRABRIDGE_HTTP_LISTEN ("" keeps it; "-" serves no
	// HTTP).
	Listen string
	// OnListen is told the HTTP address once it listens (tests, demo).
	OnListen func(addr string)
	// onStatusWait is called when a GET /status starts to wait for a
	// change (tests).
	onStatusWait func()
}

// daemon is one running bridge: every part built from the configuration in
// one place (newDaemon), explicitly.
type daemon struct {
	cfg  *config.Config
	st   *store.Store
	log  *slog.Logger
	reg  *prometheus.Registry
	m    *metrics.Metrics
	opts daemonOptions

	sender   transport.Sender
	receiver transport.Receiver

	syncID string

	defMu   sync.Mutex
	def     *config.SyncDef
	local   *handshake.Config // AliasesOf(def)
	defTime time.Time         // modification time of the sync file read

	eval      *ops.Evaluator
	evalClose func() error
	now       func() time.Time

	mu    sync.Mutex
	ready error // why /readyz fails; nil when ready
	link  *link.Link
	node  *engine.Node

	// engineLoop's own: whether the last round found the sync paused,
	// the sync row and the skip count it saw last (to tell changes).
	wasPaused bool
	lastSync  store.Sync
	lastLink  string // the link's figures in the store, printed
	skips     float64

	// changes is bumped after everything /status can show changes, so
	// that GET /status?after=G&wait=D answers at once when it does;
	// waiters bounds the requests waiting so; stopping ends their waits
	// at SIGTERM.
	changes  *ops.Changes
	waiters  chan struct{}
	stopping <-chan struct{}
}

// maxStatusWaiters bounds the /status requests that wait for a change at
// the same time; more are answered 429 with Retry-After.
const maxStatusWaiters = 64

func newDaemon(ctx context.Context, s *setup, o daemonOptions) (*daemon, error) {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 2 * time.Second
	}
	sy, err := s.thisSync(ctx)
	if err != nil {
		return nil, err
	}
	if err := handshake.CheckFixed(sy, s.fixed()); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d := &daemon{
		cfg: s.cfg, def: s.def, st: s.st, log: s.log.With("component", "daemon", "sync", sy.Name),
		reg: reg, m: metrics.New(reg), opts: o, now: time.Now, syncID: sy.ID, local: handshake.AliasesOf(s.def),
		changes: ops.NewChanges(), waiters: make(chan struct{}, maxStatusWaiters),
	}
	if fi, err := os.Stat(s.cfg.SyncFile); err == nil {
		d.defTime = fi.ModTime()
	}
	if err := d.buildTransports(sy); err != nil {
		return nil, err
	}
	statusURL := "http://" + s.cfg.HTTPListen + "/"
	if d.eval, d.evalClose, err = ops.FromConfig(s.cfg, s.st, d.m, d.log, statusURL); err != nil {
		d.Close()
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return d, nil
}

func (d *daemon) syncDef() *config.SyncDef {
	d.defMu.Lock()
	defer d.defMu.Unlock()
	return d.def
}

func (d *daemon) aliases() *handshake.Config {
	d.defMu.Lock()
	defer d.defMu.Unlock()
	return d.local
}

// reloadDef reads the sync definition again when its file changed: a slave
// that mapped the aliases the master published adopts them without a
// restart, and the engine's mapping is rebuilt. A definition with problems
// is logged and the old one kept.
func (d *daemon) reloadDef(ctx context.Context) {
	fi, err := os.Stat(d.cfg.SyncFile)
	if err != nil || fi.ModTime().Equal(d.defTime) {
		return
	}
	d.defTime = fi.ModTime()
	def, err := config.LoadSyncFile(d.cfg.SyncFile)
	if err != nil {
		d.log.Error("the changed sync definition has problems; still using the previous one", "error", err)
		return
	}
	if def.Project != d.syncDef().Project {
		d.log.Error("the changed sync definition names another project; still using the previous one", "project", def.Project)
		return
	}
	d.defMu.Lock()
	d.def, d.local = def, handshake.AliasesOf(def)
	d.defMu.Unlock()
	d.mu.Lock()
	d.node = nil // rebuilt with the new mapping at the next round
	d.mu.Unlock()
	d.log.Info("sync definition reloaded")
	if err := d.reconcile(ctx); err != nil {
		d.log.Warn("reconcile after reload", "error", err)
	}
	d.changes.Bump()
}

// buildTransports builds the Sender and Receiver JIRABRIDGE_TRANSPORT names.
func (d *daemon) buildTransports(sy store.Sync) error {
	c := d.cfg
	switch c.Transport {
	case config.TransportFile:
		snd, err := filedrop.NewSender(c.FileDrop.OutgoingDir, filedrop.SenderOptions{
			From:   "jirabridge-" + sy.SelfNode + "@" + transport.MessageIDDomain,
			To:     []string{"jirabridge-peer@" + transport.MessageIDDomain},
			Logger: d.log,
		})
		if err != nil {
			return fmt.Errorf("file drop sender: %w", err)
		}
		poll := c.PollInterval
		if d.opts.Once {
			poll = -1
		}
		rcv, err := filedrop.NewReceiver(c.FileDrop.IncomingDir, filedrop.ReceiverOptions{
			PollInterval: poll, Logger: d.log, OnQuarantine: d.onQuarantine,
		})
		if err != nil {
			snd.Close()
			return fmt.Errorf("file drop receiver: %w", err)
		}
		d.sender, d.receiver = snd, rcv
	case config.TransportMail:
		snd, err := smtpsend.New(smtpsend.Options{
			Host: c.SMTP.Host, Port: c.SMTP.Port, TLSMode: string(c.SMTP.TLSMode),
			Username: c.SMTP.User, Password: c.SMTP.Password.Reveal(), CAFile: c.SMTP.CAFile,
			From: c.SMTP.From, To: []string{c.SMTP.PeerAddress}, MaxMessageSize: int64(c.SMTP.MaxMessageSize),
			Logger: d.log,
		})
		if err != nil {
			return fmt.Errorf("smtp sender: %w", err)
		}
		rcv, err := imappoll.New(imappoll.Options{
			Host: c.IMAP.Host, Port: c.IMAP.Port, TLSMode: string(c.IMAP.TLSMode), CAFile: c.IMAP.CAFile,
			Username: c.IMAP.User, Password: c.IMAP.Password.Reveal(), Mailbox: c.IMAP.Mailbox,
			ProcessedFolder: c.IMAP.ProcessedFolder, QuarantineFolder: c.IMAP.QuarantineFolder,
			AfterStore: string(c.IMAP.AfterStore), PollInterval: c.PollInterval,
			OnQuarantine: d.onQuarantine, State: storeIMAPState{st: d.st}, Logger: d.log,
		})
		if err != nil {
			snd.Close()
			return fmt.Errorf("imap receiver: %w", err)
		}
		d.sender, d.receiver = snd, rcv
	default:
		return fmt.Errorf("JIRABRIDGE_TRANSPORT %q is not one this build runs (smtp+imap or file)", c.Transport)
	}
	return nil
}

func (d *daemon) onQuarantine(ref, reason string) {
	d.m.Inc(metrics.Quarantined, reason)
	d.log.Warn("message quarantined by the transport", "ref", ref, "reason", reason)
	d.changes.Bump()
}

func (d *daemon) Close() {
	if d.evalClose != nil {
		d.evalClose()
	}
	if d.sender != nil {
		d.sender.Close()
	}
	if d.receiver != nil {
		d.receiver.Close()
	}
}

// run runs the bridge until ctx ends (SIGTERM), then lets the current
// Jira round finish (up to stopGrace) and returns nil.
func (d *daemon) run(ctx context.Context) error {
	if err := d.reconcile(ctx); err != nil {
		return err
	}
	if d.opts.Once {
		return d.runOnce(ctx)
	}
	var srv *http.Server
	d.stopping = ctx.Done()
	if d.opts.Listen != "-" {
		var err error
		if srv, err = d.serveHTTP(); err != nil {
			return err
		}
	}
	// The link's context ends at SIGTERM (the mail being sent finishes,
	// see gracefulSender; an IMAP read in progress is abandoned and the mail
	// read again at the next start); the engine's ends stopGrace later so
	// the current Jira write completes.
	linkCtx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); d.linkPhase(linkCtx) }()
	go func() { defer wg.Done(); _ = d.eval.Run(linkCtx, alertInterval) }()
	go func() { defer wg.Done(); d.engineLoop(ctx, engineCtx) }()
	d.log.Info("bridge running", "transport", d.cfg.Transport)
	<-ctx.Done()
	d.log.Info("stopping: finishing the current Jira write and mail")
	stopLink()
	grace := time.AfterFunc(stopGrace, stopEngine)
	wg.Wait()
	grace.Stop()
	stopEngine()
	if srv != nil {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}
	return nil
}

// alertInterval is how often the alert conditions are evaluated.
const alertInterval = 15 * time.Second

// stopGrace bounds how long SIGTERM waits for the current engine round.
const stopGrace = 30 * time.Second

// syncNow reads the sync row.
func (d *daemon) syncNow(ctx context.Context) (store.Sync, error) {
	var sy store.Sync
	err := d.st.View(ctx, func(tx *store.Tx) error {
		var err error
		sy, err = tx.SyncGet(d.syncID)
		return err
	})
	return sy, err
}

// newLink builds the link of the sync (it needs the peer: after the
// handshake). Lifecycle messages reach Receive before the link sees them.
func (d *daemon) newLink(ctx context.Context, once bool) (*link.Link, error) {
	c := d.cfg
	o := link.Options{
		Store: d.st, SyncID: d.syncID, Sender: ops.WatchSender(gracefulSender{Sender: d.sender, sent: d.changes.Bump}, d.eval, d.syncID), Receiver: lifecycleReceiver{d: d},
		Logger: d.log, Metrics: d.m,
		MaxBatchChanges: c.BatchMaxChanges, MaxBatchBytes: int(c.BatchMaxBytes), Linger: c.BatchLinger,
		AckDelay: c.AckDelay, GapTimeout: c.GapResendTimeout, HeartbeatInterval: c.HeartbeatInterval,
		SilenceThreshold: c.PeerSilenceThreshold, Retention: c.Retention, MaxMailSize: int64(c.SMTP.MaxMessageSize),
	}
	if once {
		// Nothing waits for more changes or for an ack to ride along:
		// the process ends in a moment.
		o.Linger, o.AckDelay = time.Nanosecond, time.Nanosecond
	}
	l, err := link.New(ctx, o)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.link = l
	d.mu.Unlock()
	d.eval.SetLink(d.syncID, l)
	return l, nil
}

// linkPhase waits for the handshake (a master before its slave joined
// receives only lifecycle messages), then runs the link until ctx ends.
func (d *daemon) linkPhase(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		sy, err := d.syncNow(ctx)
		if err != nil {
			d.log.Warn("read sync", "error", err)
		} else if sy.PeerNode != "" {
			break
		} else if err := d.receiveOne(ctx, 0); err != nil && ctx.Err() == nil {
			d.setReady(fmt.Errorf("mail path: %w", err))
			d.log.Warn("receive failed", "error", err)
		} else {
			wait = time.Second
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
	if ctx.Err() != nil {
		return
	}
	// receiveOne may have built it already for an envelope that followed
	// the accepted join; one node runs one link per sync.
	d.mu.Lock()
	l := d.link
	d.mu.Unlock()
	var err error
	if l == nil {
		l, err = d.newLink(ctx, false)
	}
	if err != nil {
		d.setReady(err)
		d.log.Error("cannot build the link", "error", err)
		return
	}
	d.setReady(nil)
	if err := l.Run(ctx); err != nil && ctx.Err() == nil {
		d.log.Error("link stopped", "error", err)
	}
}

// receiveOne reads one envelope (waiting at most idle when idle > 0) and
// handles it: lifecycle messages here, the rest by the link, or, before
// the handshake, into quarantine. It returns context.DeadlineExceeded when
// nothing came within idle.
func (d *daemon) receiveOne(ctx context.Context, idle time.Duration) error {
	rctx := ctx
	if idle > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, idle)
		defer cancel()
	}
	in, ack, err := d.receiver.Receive(rctx)
	if err != nil {
		return err
	}
	if handshake.IsLifecycle(in.Sealed) {
		return d.handleLifecycle(ctx, in, ack)
	}
	d.mu.Lock()
	l := d.link
	d.mu.Unlock()
	if l == nil {
		// The handshake may have finished with the message just read
		// (run --once reads on after accepting a join).
		if sy, err := d.syncNow(ctx); err == nil && sy.PeerNode != "" {
			if l, err = d.newLink(ctx, d.opts.Once); err != nil {
				return err
			}
		}
	}
	if l != nil {
		return l.HandleIncoming(ctx, in, d.bumpAfter(ack))
	}
	d.log.Warn("envelope before the handshake finished: quarantined", "id", in.ID, "kind", in.Meta.Kind)
	if err := d.st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.QuarantineAdd(store.Quarantined{SyncID: in.Meta.Sync, TransportRef: in.ID,
			Reason: reasonBeforeHandshake, Raw: in.Sealed})
		return err
	}); err != nil {
		return err
	}
	d.m.Inc(metrics.Quarantined, reasonBeforeHandshake)
	return d.bumpAfter(ack)(ctx, transport.Quarantined(reasonBeforeHandshake))
}

// bumpAfter wraps an AckFunc so that the status generation moves once the
// envelope is stored (or quarantined) and the mail acknowledged.
func (d *daemon) bumpAfter(ack transport.AckFunc) transport.AckFunc {
	return func(ctx context.Context, disp transport.Disposition) error {
		err := ack(ctx, disp)
		d.changes.Bump()
		return err
	}
}

const reasonBeforeHandshake = "before_handshake"

// gracefulSender lets a mail in progress finish when the daemon stops: the
// send runs under a context that SIGTERM does not cancel (bounded by
// sendGrace), so the link returns after the current mail, not in its
// middle. sent, when set, is called after each mail the transport took.
type gracefulSender struct {
	transport.Sender
	sent func()
}

const sendGrace = 2 * time.Minute

func (g gracefulSender) Send(ctx context.Context, m transport.Outgoing) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendGrace)
	defer cancel()
	err := g.Sender.Send(ctx, m)
	if err == nil && g.sent != nil {
		g.sent()
	}
	return err
}

// Close does nothing: the daemon closes the transports.
func (gracefulSender) Close() error { return nil }

// lifecycleReceiver is the Receiver the link reads from: it handles the
// handshake and config messages itself (they are not the link's) and
// passes everything else on.
type lifecycleReceiver struct{ d *daemon }

func (r lifecycleReceiver) Receive(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	for {
		in, ack, err := r.d.receiver.Receive(ctx)
		if err != nil {
			return nil, nil, err
		}
		if !handshake.IsLifecycle(in.Sealed) {
			return in, r.d.bumpAfter(ack), nil
		}
		if err := r.d.handleLifecycle(ctx, in, ack); err != nil {
			r.d.log.Warn("lifecycle message not handled; it stays for the next try", "id", in.ID, "error", err)
		}
	}
}

// Close does nothing: the daemon closes the transports.
func (lifecycleReceiver) Close() error { return nil }

// runOnce does one round of everything and returns: engine step (when
// RUNNING), link step (seal and send), read until the transport is idle,
// then three engine and link steps (release to replay, apply, detect the
// echoes, send acks and answers).
func (d *daemon) runOnce(ctx context.Context) error {
	var l *link.Link
	step := func() error {
		sy, err := d.syncNow(ctx)
		if err != nil {
			return err
		}
		if err := d.resendJoin(ctx, sy); err != nil {
			d.log.Warn("resend the handshake", "error", err)
		}
		if l == nil {
			d.mu.Lock()
			l = d.link
			d.mu.Unlock()
		}
		if l == nil && sy.PeerNode != "" {
			if l, err = d.newLink(ctx, true); err != nil {
				return err
			}
		}
		if sy.State == store.StateRunning {
			if err := d.engineStep(ctx, sy); err != nil {
				d.log.Warn("engine step", "error", err)
			}
		}
		if l != nil {
			return l.Step(ctx)
		}
		return nil
	}
	if err := step(); err != nil {
		return err
	}
	for {
		err := d.receiveOne(ctx, d.opts.Idle)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				break
			}
			return fmt.Errorf("receive: %w", err)
		}
	}
	// Three rounds: release what arrived, apply it, and let detection see
	// the applied writes (as echoes) before the process ends.
	for range 3 {
		if err := step(); err != nil {
			return err
		}
	}
	if l != nil {
		d.eval.SetLink(d.syncID, l)
	}
	if _, err := d.eval.Evaluate(ctx); err != nil {
		d.log.Warn("alert evaluation", "error", err)
	}
	return nil
}

// reconcile lets a slave adopt a configuration its (possibly edited) sync
// definition now maps completely.
func (d *daemon) reconcile(ctx context.Context) error {
	return d.st.Update(ctx, func(tx *store.Tx) error {
		_, err := handshake.Reconcile(tx, d.syncID, d.aliases())
		return err
	})
}

// engineLoop steps the engine every poll interval while the sync is
// RUNNING. stop ends the loop between rounds; ctx (which ends later) is
// what the round runs under, so a Jira write in flight completes.
func (d *daemon) engineLoop(stop, ctx context.Context) {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-t.C:
		}
		d.reloadDef(ctx)
		sy, err := d.syncNow(ctx)
		if err != nil {
			d.log.Warn("read sync", "error", err)
			continue
		}
		d.m.SetSyncState(string(sy.State), allStates)
		if sy != d.lastSync {
			// The state, its reason, the peer: changed by a command
			// (start, stop, publish) or by this process.
			d.lastSync = sy
			d.changes.Bump()
		}
		// The link records a send just after the transport took the
		// mail (the bump at Send comes a moment early) and prunes,
		// acks and repairs on its own: its figures, once a round, catch
		// what no event reported.
		if lf, err := d.linkFigures(ctx); err == nil && lf != d.lastLink {
			d.lastLink = lf
			d.changes.Bump()
		}
		if err := d.resendJoin(ctx, sy); err != nil && ctx.Err() == nil {
			d.log.Warn("resend the handshake", "error", err)
		}
		if sy.State != store.StateRunning {
			continue
		}
		if err := d.engineStep(ctx, sy); err != nil && ctx.Err() == nil {
			d.log.Warn("engine step", "error", err)
		}
	}
}

// resendJoin sends the slave's Handshake message again when the master has
// not answered within JIRABRIDGE_GAP_RESEND_TIMEOUT. Later envelopes are
// repaired by the link (the master's link asks for what it misses), but
// before it has accepted the join the master has no link and cannot know
// that a mail was lost. The same sealed bytes go out; a master that has
// them already drops the copy as a duplicate.
func (d *daemon) resendJoin(ctx context.Context, sy store.Sync) error {
	if sy.Role != store.RoleSlave || sy.State != store.StateHandshake {
		return nil
	}
	var e store.OutboxEntry
	err := d.st.View(ctx, func(tx *store.Tx) error {
		var err error
		e, err = tx.OutboxGet(d.syncID, 1)
		return err
	})
	if err != nil {
		return err
	}
	if e.SentAt.IsZero() || !e.AckedAt.IsZero() || d.now().Sub(e.SentAt) < d.cfg.GapResendTimeout {
		return nil
	}
	d.log.Info("no answer to the handshake yet: sending it again", "sent_at", e.SentAt)
	if err := d.sender.Send(ctx, transport.Outgoing{
		Meta:   transport.Meta{Sync: sy.ID, SyncName: sy.Name, Sender: sy.SelfNode, Seq: e.Seq, Kind: e.Kind},
		Sealed: e.Sealed,
	}); err != nil {
		return err
	}
	err = d.st.Update(ctx, func(tx *store.Tx) error { return tx.OutboxMarkSent(d.syncID, e.Seq) })
	d.changes.Bump()
	return err
}

// engineStep builds the engine on first use (the mapping needs Jira's field
// list) and runs one detection and replay round.
func (d *daemon) engineStep(ctx context.Context, sy store.Sync) error {
	d.mu.Lock()
	n := d.node
	d.mu.Unlock()
	if n == nil {
		var err error
		if n, err = d.newNode(ctx, sy); err != nil {
			if errclass.Of(err) == errclass.Pause {
				// Jira refused the credentials while the mapping read its
				// fields: pause at once, as the engine does, so that no
				// further call adds to Jira's failed-login count.
				if perr := d.st.Update(ctx, func(tx *store.Tx) error {
					return tx.SyncSetState(d.syncID, store.StatePaused, replay.PauseReason)
				}); perr != nil {
					return errors.Join(err, perr)
				}
				d.log.Error("Jira refused the credentials: sync paused; fix them, run jirabridge check, then jirabridge start", "error", err)
			}
			return err
		}
	}
	if d.wasPaused {
		// The store says RUNNING again: the operator ran `jirabridge
		// start` after fixing the cause, so the replayer forgets its pause.
		if err := n.Resume(ctx); err != nil {
			return err
		}
		d.wasPaused = false
	}
	res, err := n.Step(ctx)
	// What the round did shows in /status (pairs, pending, parked,
	// conflicts, skipped items): tell the clients that wait for it.
	// Items a filter left out change no count but the skip metric.
	skips := counterTotal(d.m.ChangesSkipped)
	if res.Moved() || res.Paused != d.wasPaused || skips != d.skips {
		d.changes.Bump()
	}
	d.skips = skips
	d.wasPaused = res.Paused
	if res.Detected > 0 {
		d.mu.Lock()
		l := d.link
		d.mu.Unlock()
		if l != nil {
			l.Wake()
		}
	}
	return err
}

func (d *daemon) newNode(ctx context.Context, sy store.Sync) (*engine.Node, error) {
	jc, err := newJiraClient(d.cfg, d.m)
	if err != nil {
		return nil, err
	}
	fields, err := jc.Fields(ctx)
	if err != nil {
		return nil, fmt.Errorf("read Jira's fields for the mapping: %w", err)
	}
	mp, err := mapping.New(d.syncDef(), fields, mapping.Options{Users: jc})
	if err != nil {
		return nil, fmt.Errorf("build the mapping: %w", err)
	}
	n, err := engine.NewNode(engine.Config{
		Store: d.st, Jira: jc, Mapping: mp, SyncID: d.syncID, Node: sy.SelfNode, Role: sy.Role,
		SyncUser: sy.SyncUser, ProjectKey: sy.ProjectKey, PollInterval: d.cfg.PollInterval,
		Workers: d.cfg.ReplayWorkers, Logger: d.log,
		// The first round asks Jira whether the sync user has what the
		// enabled features need (the same table jirabridge check prints).
		CheckPermissions: true,
		// Applied, parked and retried changes are counted by kind and reason.
		WrapApplier: func(a replay.Applier) replay.Applier { return ops.MeterApplier(a, d.m) },
		// Conflicts and changes a filter left out are counted by the engine.
		Metrics: d.m,
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.node = n
	d.mu.Unlock()
	return n, nil
}

// handleLifecycle processes one handshake or config envelope.
func (d *daemon) handleLifecycle(ctx context.Context, in *transport.Incoming, ack transport.AckFunc) error {
	var r handshake.Result
	err := d.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		r, err = handshake.Receive(tx, in.Sealed, handshake.ReceiveOptions{Ref: in.ID, Local: d.aliases()})
		return err
	})
	if err != nil {
		return fmt.Errorf("handle %s message %s: %w", in.Meta.Kind, in.ID, err)
	}
	disp := transport.Stored
	if r.Event == handshake.EventRefused {
		disp = transport.Quarantined(r.Reason)
		d.m.Inc(metrics.Quarantined, r.Reason)
		d.log.Warn("lifecycle message refused and quarantined", "id", in.ID, "reason", r.Reason, "detail", r.Detail)
	} else {
		d.m.Inc(metrics.EnvelopesReceived, in.Meta.Kind)
		d.log.Info("lifecycle message", "event", r.Event, "state", r.State, "missing", len(r.Missing))
	}
	if err := ack(ctx, disp); err != nil {
		d.log.Warn("ack of a stored envelope failed; a re-delivery is dropped as a duplicate", "id", in.ID, "error", err)
	}
	if r.State != "" {
		d.m.SetSyncState(string(r.State), allStates)
	}
	d.changes.Bump()
	return nil
}

// linkFigures prints the link's state in the store, to tell a change.
func (d *daemon) linkFigures(ctx context.Context) (string, error) {
	var out string
	err := d.st.View(ctx, func(tx *store.Tx) error {
		ls, err := tx.LinkStatus(d.syncID)
		out = fmt.Sprintf("%v", ls)
		return err
	})
	return out, err
}

// counterTotal adds up every series of a counter (vector).
func counterTotal(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) == nil {
			sum += pb.GetCounter().GetValue()
		}
	}
	return sum
}

var allStates = []string{
	string(store.StateCreated), string(store.StateHandshake), string(store.StateStopped), string(store.StateRunning),
	string(store.StateWaitingForSlave), string(store.StateUpdateRequired), string(store.StatePaused),
}

func (d *daemon) setReady(err error) {
	d.mu.Lock()
	d.ready = err
	d.mu.Unlock()
}

// serveHTTP serves /healthz, /readyz, /metrics and /status (which can
// wait for the next change: ?after=&wait=) on JIRABRIDGE_HTTP_LISTEN.
func (d *daemon) serveHTTP() (*http.Server, error) {
	addr := d.cfg.HTTPListen
	if d.opts.Listen != "" {
		addr = d.opts.Listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on JIRABRIDGE_HTTP_LISTEN=%s: %w", addr, err)
	}
	jc, err := newJiraClient(d.cfg, d.m)
	if err != nil {
		ln.Close()
		return nil, err
	}
	// The ops handler serves /healthz, /readyz, /metrics, the status page
	// at / and its Retry/Skip actions; /status adds the set-up view as JSON.
	opsHandler, err := ops.NewHandler(ops.HandlerOptions{
		Store: d.st, Gatherer: d.reg, Evaluator: d.eval, Metrics: d.m, Logger: d.log,
		Token: d.cfg.StatusActionToken.Reveal(),
		Checks: []ops.Check{
			{Name: "jira", Checker: ops.JiraChecker(jc, 30*time.Second)},
			{Name: "mail", Checker: checkFunc(d.readiness)},
		},
		JiraURLs: func(string) (string, string) { return d.cfg.Jira.BaseURL, "" },
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", opsHandler)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		// ?after=G&wait=D: answer when the generation is no longer G (at
		// once if it is not), or after D with the status as it is.
		after, wait, err := ops.ParseLongPoll(r.URL.Query())
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusBadRequest)
			return
		}
		if after != "" {
			select {
			case d.waiters <- struct{}{}:
				defer func() { <-d.waiters }()
			default:
				w.Header().Set("Retry-After", "1")
				http.Error(w, fmt.Sprintf("status: %d clients wait for a change already; try again", maxStatusWaiters), http.StatusTooManyRequests)
				return
			}
			if d.opts.onStatusWait != nil {
				d.opts.onStatusWait()
			}
			wctx, cancel := context.WithTimeout(r.Context(), wait)
			d.changes.Wait(wctx, d.stopping, after)
			cancel()
			if r.Context().Err() != nil {
				return // the client went away while it waited
			}
		}
		// Read before the status: a change while it is gathered makes
		// the client's next wait return at once, never miss it.
		gen := d.changes.Generation()
		rep, err := gatherStatus(r.Context(), d.st, d.syncID, d.aliases())
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// The running link adds what only it knows: its counts since the
		// start, the peer's announced highest number, silence.
		out := struct {
			statusReport
			LinkDetail *link.Status    `json:"link_detail,omitempty"`
			Content    *contentSkipped `json:"content_skipped,omitempty"`
			Generation string          `json:"generation"`
		}{statusReport: rep, Generation: gen}
		d.mu.Lock()
		l := d.link
		d.mu.Unlock()
		if l != nil {
			if ls, err := l.Status(r.Context()); err == nil {
				out.LinkDetail = &ls
			}
		}
		// What the bridge leaves out on purpose (links to issues that are
		// not synced, watchers the user policy cannot map, filtered
		// attachments, restricted comments), from the store: the items
		// themselves are in "skipped".
		out.Content = contentSkippedOf(rep.Skipped)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Jirabridge-Generation", gen)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	if d.opts.OnListen != nil {
		d.opts.OnListen(ln.Addr().String())
	}
	d.log.Info("http listening", "addr", ln.Addr().String())
	return srv, nil
}

// contentSkipped counts, per kind, what the bridge leaves out on purpose
// (both directions: not sent, or not applied here), shown by the daemon's
// /status. The field names predate the store's list and stay for the
// dashboards that read them: links_to_unsynced_issues counts every
// skipped link (other end not synced or not arrived, type not mapped).
type contentSkipped struct {
	SkippedLinks        int64 `json:"links_to_unsynced_issues"`
	UnmappableWatchers  int64 `json:"unmappable_watchers"`
	FilteredAttachments int64 `json:"filtered_attachments"`
	RestrictedComments  int64 `json:"restricted_comments"`
	Total               int64 `json:"total"`
}

// checkFunc adapts a function to ops.Checker.
type checkFunc func(ctx context.Context) error

func (f checkFunc) Check(ctx context.Context) error { return f(ctx) }

// readiness says why the bridge is not ready beyond what the ops handler
// checks itself: the mail path failed, or the sync is paused.
func (d *daemon) readiness(ctx context.Context) error {
	var sy store.Sync
	if err := d.st.View(ctx, func(tx *store.Tx) error {
		var err error
		sy, err = tx.SyncGet(d.syncID)
		return err
	}); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if sy.State == store.StatePaused {
		return fmt.Errorf("sync paused: %s", sy.StateReason)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready
}

// storeIMAPState keeps the IMAP receiver's UID tracking in the store, so
// that a mail acked just before a crash is moved, not returned again.
type storeIMAPState struct{ st *store.Store }

func (s storeIMAPState) Load(ctx context.Context, key string) (imappoll.Cursor, error) {
	var c imappoll.Cursor
	err := s.st.View(ctx, func(tx *store.Tx) error {
		v, ok, err := tx.CursorGet("imap/" + key)
		if err != nil || !ok {
			return err
		}
		return json.Unmarshal([]byte(v), &c)
	})
	return c, err
}

func (s storeIMAPState) Save(ctx context.Context, key string, c imappoll.Cursor) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx *store.Tx) error { return tx.CursorSet("imap/"+key, string(b)) })
}
