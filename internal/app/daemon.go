package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/metrics"
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
}

// daemon is one running bridge: every part built from the configuration in
// one place (newDaemon), explicitly.
type daemon struct {
	cfg  *config.Config
	def  *config.SyncDef
	st   *store.Store
	log  *slog.Logger
	reg  *prometheus.Registry
	m    *metrics.Metrics
	opts daemonOptions

	sender   transport.Sender
	receiver transport.Receiver

	syncID string
	local  *handshake.Config

	wake chan struct{}

	mu       sync.Mutex
	ready    error // why /readyz fails; nil when ready
	lastSend error
}

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
		reg: reg, m: metrics.New(reg), opts: o, syncID: sy.ID, local: handshake.AliasesOf(s.def),
		wake: make(chan struct{}, 1),
	}
	if err := d.buildTransports(sy); err != nil {
		return nil, err
	}
	return d, nil
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
}

func (d *daemon) Close() {
	if d.sender != nil {
		d.sender.Close()
	}
	if d.receiver != nil {
		d.receiver.Close()
	}
}

func (d *daemon) wakeUp() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run runs the bridge until ctx ends (SIGTERM), then lets the current mail
// and store transaction finish and returns nil.
func (d *daemon) run(ctx context.Context) error {
	if err := d.reconcile(ctx); err != nil {
		return err
	}
	if d.opts.Once {
		return d.runOnce(ctx)
	}
	var srv *http.Server
	if d.opts.Listen != "-" {
		var err error
		if srv, err = d.serveHTTP(); err != nil {
			return err
		}
	}
	// Parts run until stop; a part that ends early does not stop the
	// others (each logs its own trouble and retries).
	partCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.receiveLoop(partCtx) }()
	go func() { defer wg.Done(); d.sendLoop(partCtx) }()
	// TODO(link): once the link branch lands, build link.New here with
	// d.sender and lifecycleReceiver{d} as its Receiver and run it instead of
	// sendLoop; the link then also handles changes, acks and heartbeats.
	// TODO(engine): once the engine branch lands, build the Jira client,
	// mapping and engine.Node here and step it while the sync is RUNNING.
	d.log.Info("bridge running", "transport", d.cfg.Transport)
	<-ctx.Done()
	d.log.Info("stopping: finishing the current mail and store transaction")
	stop()
	wg.Wait()
	if srv != nil {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}
	return nil
}

// runOnce sends what is queued, reads until the transport is idle, sends
// the answers, and returns.
func (d *daemon) runOnce(ctx context.Context) error {
	if err := d.sendUnsent(ctx); err != nil {
		return err
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, d.opts.Idle)
		in, ack, err := d.receiver.Receive(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				break
			}
			return fmt.Errorf("receive: %w", err)
		}
		if err := d.handle(ctx, in, ack); err != nil {
			return err
		}
	}
	return d.sendUnsent(ctx)
}

// reconcile lets a slave adopt a configuration its (possibly edited) sync
// definition now maps completely.
func (d *daemon) reconcile(ctx context.Context) error {
	return d.st.Update(ctx, func(tx *store.Tx) error {
		_, err := handshake.Reconcile(tx, d.syncID, d.local)
		return err
	})
}

func (d *daemon) receiveLoop(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		in, ack, err := d.receiver.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.setReady(fmt.Errorf("mail path: %w", err))
			d.log.Warn("receive failed", "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Minute)
			continue
		}
		wait = time.Second
		d.setReady(nil)
		if err := d.handle(ctx, in, ack); err != nil {
			d.log.Warn("handling an incoming envelope failed", "id", in.ID, "error", err)
		}
		d.wakeUp()
	}
}

// handle processes one incoming envelope: lifecycle messages here, the rest
// by the link.
func (d *daemon) handle(ctx context.Context, in *transport.Incoming, ack transport.AckFunc) error {
	if !handshake.IsLifecycle(in.Sealed) {
		// TODO(link): hand the envelope to link.HandleIncoming. Until the
		// link is wired in, it stays where it is (not acked), so nothing is
		// lost: the link reads it once it runs.
		d.log.Info("envelope left for the link", "id", in.ID, "kind", in.Meta.Kind)
		return nil
	}
	var r handshake.Result
	err := d.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		r, err = handshake.Receive(tx, in.Sealed, handshake.ReceiveOptions{Ref: in.ID, Local: d.local})
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
	d.m.SetSyncState(string(r.State), allStates)
	return nil
}

var allStates = []string{
	string(store.StateCreated), string(store.StateHandshake), string(store.StateStopped), string(store.StateRunning),
	string(store.StateWaitingForSlave), string(store.StateUpdateRequired), string(store.StatePaused),
}

func (d *daemon) sendLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.Tick)
	defer t.Stop()
	for {
		if err := d.sendUnsent(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("send failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// sendUnsent sends the outbox envelopes never sent, in order. It stands in
// for the link's sender until the link is wired in (TODO(link)).
func (d *daemon) sendUnsent(ctx context.Context) error {
	var sy store.Sync
	var es []store.OutboxEntry
	err := d.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if sy, err = tx.SyncGet(d.syncID); err != nil {
			return err
		}
		es, err = tx.OutboxNextUnsent(d.syncID, 100)
		return err
	})
	if err != nil {
		return err
	}
	for _, e := range es {
		err := d.sender.Send(ctx, transport.Outgoing{
			Meta:   transport.Meta{Sync: sy.ID, SyncName: sy.Name, Sender: sy.SelfNode, Seq: e.Seq, Kind: e.Kind},
			Sealed: e.Sealed,
		})
		uerr := d.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			if err != nil {
				return tx.OutboxMarkSendFailed(d.syncID, e.Seq, err.Error())
			}
			return tx.OutboxMarkSent(d.syncID, e.Seq)
		})
		if err != nil {
			d.mu.Lock()
			d.lastSend = err
			d.mu.Unlock()
			return fmt.Errorf("send envelope %d: %w", e.Seq, err)
		}
		d.m.Inc(metrics.EnvelopesSent, e.Kind)
		if uerr != nil {
			return fmt.Errorf("record envelope %d sent: %w", e.Seq, uerr)
		}
	}
	d.mu.Lock()
	d.lastSend = nil
	d.mu.Unlock()
	return nil
}

func (d *daemon) setReady(err error) {
	d.mu.Lock()
	d.ready = err
	d.mu.Unlock()
}

// serveHTTP serves /healthz, /readyz, /metrics and /status on
// JIRABRIDGE_HTTP_LISTEN.
func (d *daemon) serveHTTP() (*http.Server, error) {
	addr := d.cfg.HTTPListen
	if d.opts.Listen != "" {
		addr = d.opts.Listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on JIRABRIDGE_HTTP_LISTEN=%s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.readiness(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		rep, err := gatherStatus(r.Context(), d.st, d.syncID, d.local)
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	if d.opts.OnListen != nil {
		d.opts.OnListen(ln.Addr().String())
	}
	d.log.Info("http listening", "addr", ln.Addr().String())
	return srv, nil
}

// readiness says why the bridge is not ready: the store does not answer,
// the mail path failed, or the sync is paused.
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
	if d.ready != nil {
		return d.ready
	}
	if d.lastSend != nil {
		return fmt.Errorf("mail path: %w", d.lastSend)
	}
	return nil
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
