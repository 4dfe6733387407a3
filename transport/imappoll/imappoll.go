// Package imappoll receives sealed envelopes from an IMAP mailbox with
// emersion/go-imap v2's imapclient: IDLE when the server has it (re-issued
// well before RFC 2177's 29 minutes), polling when it does not.
//
// A mail stays in the mailbox until the caller acks it: Stored moves it to
// the processed folder (or deletes it, by option), Quarantine moves it to the
// quarantine folder. Moves are batched per fetched batch and done at the
// latest before the receiver waits for new mail, and in Close; until then
// the decision is kept in the State. Mail that transport.DecodeMail rejects is quarantined
// here and reported through Options.OnQuarantine, never returned. UIDVALIDITY
// and the UIDs handed out and acked are tracked, so a reconnect (a server
// restart) neither returns a mail twice nor skips one.
package imappoll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
)

// TLS modes.
const (
	TLSImplicit = transport.TLSImplicit // TLS from the first byte (port 993 style)
	TLSStartTLS = transport.TLSStartTLS // plain connect, STARTTLS required
	TLSPlain    = transport.TLSPlain    // no TLS; only to a loopback address
)

// What happens to a stored mail.
const (
	AfterStoreMove   = "move"   // move to ProcessedFolder (default)
	AfterStoreDelete = "delete" // delete and expunge
)

// CAFileVar names the setting an operator changes when the server's
// certificate is not trusted; it appears in TLS errors.
const CAFileVar = "JIRABRIDGE_IMAP_CA_FILE"

// DefaultIdleRestart is how long one IDLE lasts before it is re-issued:
// well under the 29 minutes after which RFC 2177 lets a server drop it.
const DefaultIdleRestart = 25 * time.Minute

// Options configures a Receiver.
type Options struct {
	Host    string
	Port    int    // default 993 for tls, 143 otherwise
	TLSMode string // TLSImplicit (default), TLSStartTLS or TLSPlain (loopback only)
	// CAFile is a PEM file of the roots that sign the server's certificate,
	// used instead of the system roots. Verification is never skipped.
	CAFile   string
	Username string
	Password string

	Mailbox          string // default "INBOX"
	ProcessedFolder  string // default "jirabridge-processed"
	QuarantineFolder string // default "jirabridge-quarantine"
	AfterStore       string // AfterStoreMove (default) or AfterStoreDelete

	// PollInterval is how often the mailbox is searched when the server has
	// no IDLE; default 1 minute. With IDLE it is a safety net: each IDLE
	// also ends after PollInterval, so a notification the server failed to
	// send (seen with Dovecot right after a restart) delays mail by at most
	// this long.
	PollInterval time.Duration
	// IdleRestart is how long one IDLE lasts; default DefaultIdleRestart,
	// and it must stay under 29 minutes.
	IdleRestart time.Duration
	// DisableIdle makes the receiver poll even when the server has IDLE.
	DisableIdle bool
	// Timeout bounds the dial and the TLS handshake; default 30 s.
	Timeout time.Duration
	// FetchBatch is how many mails one FETCH reads; default 32.
	FetchBatch int

	// OnQuarantine is told about every mail the receiver quarantines by
	// itself (ref is "uid:<UIDVALIDITY>:<UID>", reason a snake_case label).
	OnQuarantine func(ref, reason string)
	// State keeps the UID tracking; default in memory. The app backs it with
	// the store so that acked mails whose move did not happen before a crash
	// are moved, not returned again.
	State State
	// BackOff returns the wait before reconnect attempt n (1, 2, ...);
	// default 1 s doubling up to 1 min. Tests return 0.
	BackOff func(attempt int) time.Duration
	// After returns a channel that fires after d; default time.After. Tests
	// inject a fake clock for the poll and IDLE timers.
	After func(d time.Duration) <-chan time.Time

	Logger *slog.Logger
	// Debug, when set, receives the raw IMAP dialogue, passwords included:
	// for debugging only.
	Debug io.Writer
}

// Cursor is the tracking state of one mailbox.
type Cursor struct {
	UIDValidity uint32
	// Done holds the mails whose disposition the caller decided but which
	// may still be in the mailbox, by UID, with the folder they go to (""
	// means delete). They are finished, never returned again.
	Done map[uint32]string
}

// State persists Cursors by key (user@host:port/mailbox).
type State interface {
	Load(ctx context.Context, key string) (Cursor, error)
	Save(ctx context.Context, key string, c Cursor) error
}

// MemoryState is a State in memory, the default.
type MemoryState struct {
	mu sync.Mutex
	m  map[string]Cursor
}

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState { return &MemoryState{m: map[string]Cursor{}} }

// Load returns the cursor saved under key, or a zero Cursor.
func (s *MemoryState) Load(_ context.Context, key string) (Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[key]
	c.Done = maps.Clone(c.Done)
	return c, nil
}

// Save stores a copy of c under key.
func (s *MemoryState) Save(_ context.Context, key string, c Cursor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Done = maps.Clone(c.Done)
	s.m[key] = c
	return nil
}

// Receiver reads envelopes from one mailbox. Receive must not be called
// concurrently with itself; AckFuncs may be called from any goroutine.
type Receiver struct {
	opts    Options
	tlsConf *tls.Config
	key     string
	log     *slog.Logger

	mu       sync.Mutex // guards everything below and the use of client
	client   *imapclient.Client
	conn     net.Conn
	idling   bool
	cursor   Cursor
	loaded   bool
	pending  map[uint32]bool // handed out, not yet acked (this process)
	queue    []uint32        // in the mailbox, not yet handed out
	fetched  []fetchedMail
	attempts int // consecutive failed connects
	closed   bool

	notify chan struct{} // new mail or an ack to apply
}

type fetchedMail struct {
	uid uint32
	raw []byte
}

var _ transport.Receiver = (*Receiver)(nil)

// New checks opts and returns a Receiver. It does not connect: the first
// Receive does.
func New(opts Options) (*Receiver, error) {
	var errs []error
	if opts.Host == "" {
		errs = append(errs, errors.New("imap host is empty"))
	}
	if opts.Username == "" {
		errs = append(errs, errors.New("imap user name is empty"))
	}
	var err error
	if opts.TLSMode, err = transport.CheckTLSMode("imap", opts.TLSMode, opts.Host, TLSImplicit); err != nil {
		errs = append(errs, err)
	}
	if opts.Port == 0 {
		opts.Port = 143
		if opts.TLSMode == TLSImplicit {
			opts.Port = 993
		}
	}
	if opts.Mailbox == "" {
		opts.Mailbox = "INBOX"
	}
	if opts.ProcessedFolder == "" {
		opts.ProcessedFolder = "jirabridge-processed"
	}
	if opts.QuarantineFolder == "" {
		opts.QuarantineFolder = "jirabridge-quarantine"
	}
	if opts.QuarantineFolder == opts.Mailbox || opts.ProcessedFolder == opts.Mailbox {
		errs = append(errs, fmt.Errorf("imap processed and quarantine folders must differ from the mailbox %q", opts.Mailbox))
	}
	switch opts.AfterStore {
	case "":
		opts.AfterStore = AfterStoreMove
	case AfterStoreMove, AfterStoreDelete:
	default:
		errs = append(errs, fmt.Errorf("imap after-store action %q is unknown: use %q or %q", opts.AfterStore, AfterStoreMove, AfterStoreDelete))
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Minute
	}
	if opts.IdleRestart <= 0 {
		opts.IdleRestart = DefaultIdleRestart
	}
	if opts.IdleRestart >= 29*time.Minute {
		errs = append(errs, fmt.Errorf("imap idle restart %v must be under 29 minutes (RFC 2177)", opts.IdleRestart))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.FetchBatch <= 0 {
		opts.FetchBatch = 32
	}
	if opts.State == nil {
		opts.State = NewMemoryState()
	}
	if opts.BackOff == nil {
		opts.BackOff = func(n int) time.Duration {
			d := time.Second << min(n-1, 6)
			return min(d, time.Minute)
		}
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tlsConf, err := transport.ClientTLS("imap", opts.Host, opts.CAFile, CAFileVar)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Receiver{
		opts:    opts,
		tlsConf: tlsConf,
		key:     opts.Username + "@" + net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)) + "/" + opts.Mailbox,
		log:     opts.Logger.With("component", "imappoll", "mailbox", opts.Mailbox),
		pending: map[uint32]bool{},
		notify:  make(chan struct{}, 1),
	}, nil
}

func (r *Receiver) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Receive returns the next envelope. See transport.Receiver.
func (r *Receiver) Receive(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	for {
		if err := ctx.Err(); err != nil {
			r.mu.Lock()
			r.logout()
			r.mu.Unlock()
			return nil, nil, err
		}
		in, ack, err := r.step(ctx)
		if in != nil || err != nil {
			return in, ack, err
		}
	}
}

// step does one round: connect, finish acked mails, hand out one mail or
// wait for news. It returns (nil, nil, nil) to go round again.
func (r *Receiver) step(ctx context.Context) (*transport.Incoming, transport.AckFunc, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil, errclass.New(errclass.Permanent, "imap_closed", errors.New("imap receiver is closed"))
	}
	if r.client == nil {
		if r.attempts > 0 {
			d := r.opts.BackOff(r.attempts)
			r.mu.Unlock()
			if d > 0 {
				select {
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				case <-r.opts.After(d):
				}
			}
			r.mu.Lock()
		}
		if err := r.connect(ctx); err != nil {
			r.attempts++
			r.mu.Unlock()
			return nil, nil, err
		}
		r.attempts = 0
	}
	// The session is up. Anything that fails from here drops it; the next
	// step reconnects. A hung server or the end of ctx interrupts the
	// commands through the connection's deadline.
	conn := r.conn
	_ = conn.SetDeadline(time.Now().Add(r.opts.Timeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	in, ack, wait, err := r.next(ctx)
	interrupted := !stop()
	if err != nil {
		r.dropLocked()
		r.attempts = 1
		r.mu.Unlock()
		if interrupted && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, classify(fmt.Errorf("read mailbox %s: %w", r.opts.Mailbox, err))
	}
	if interrupted {
		// ctx ended just after the commands: the deadline may be set.
		_ = conn.SetDeadline(time.Now().Add(r.opts.Timeout))
	}
	if in != nil || !wait {
		r.mu.Unlock()
		return in, ack, nil
	}
	err = r.wait(ctx) // unlocks and relocks around the wait
	if err != nil && ctx.Err() == nil {
		r.dropLocked()
		r.attempts = 1
		r.mu.Unlock()
		return nil, nil, classify(fmt.Errorf("wait for mail in %s: %w", r.opts.Mailbox, err))
	}
	r.mu.Unlock()
	return nil, nil, nil
}

func (r *Receiver) connect(ctx context.Context) error {
	if !r.loaded {
		c, err := r.opts.State.Load(ctx, r.key)
		if err != nil {
			return errclass.New(errclass.Temporary, "imap_state", fmt.Errorf("load imap tracking state: %w", err))
		}
		r.cursor, r.loaded = c, true
	}
	addr := net.JoinHostPort(r.opts.Host, strconv.Itoa(r.opts.Port))
	dctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return classify(fmt.Errorf("connect to imap server %s: %w", addr, err))
	}
	// Interrupt the greeting, STARTTLS and LOGIN when ctx ends or they hang.
	_ = conn.SetDeadline(time.Now().Add(r.opts.Timeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	copts := &imapclient.Options{
		TLSConfig: r.tlsConf,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					r.wake()
				}
			},
		},
	}
	copts.DebugWriter = r.opts.Debug
	var c *imapclient.Client
	switch r.opts.TLSMode {
	case TLSImplicit:
		tc := tls.Client(conn, r.tlsConf)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return classify(fmt.Errorf("tls handshake with imap server %s: %w", addr, err))
		}
		conn = tc
		c = imapclient.New(conn, copts)
	case TLSStartTLS:
		c, err = imapclient.NewStartTLS(conn, copts)
		if err != nil {
			conn.Close()
			return classify(fmt.Errorf("starttls with imap server %s: %w", addr, err))
		}
	default:
		c = imapclient.New(conn, copts)
	}
	fail := func(what string, err error) error {
		c.Close()
		return classify(fmt.Errorf("%s on imap server %s: %w", what, addr, err))
	}
	if err := c.WaitGreeting(); err != nil {
		return fail("read greeting", err)
	}
	if err := c.Login(r.opts.Username, r.opts.Password).Wait(); err != nil {
		return fail("log in as "+r.opts.Username, err)
	}
	for _, f := range []string{r.opts.ProcessedFolder, r.opts.QuarantineFolder} {
		if f == r.opts.ProcessedFolder && r.opts.AfterStore == AfterStoreDelete {
			continue
		}
		if err := ensureFolder(c, f); err != nil {
			return fail("create folder "+f, err)
		}
	}
	sel, err := c.Select(r.opts.Mailbox, nil).Wait()
	if err != nil {
		return fail("select "+r.opts.Mailbox, err)
	}
	_ = conn.SetDeadline(time.Time{})
	if r.cursor.UIDValidity != sel.UIDValidity {
		if r.cursor.UIDValidity != 0 {
			r.log.Warn("imap uidvalidity changed: tracked uids are void, mails still in the mailbox are read again",
				"old_uidvalidity", r.cursor.UIDValidity, "new_uidvalidity", sel.UIDValidity)
		}
		r.cursor = Cursor{UIDValidity: sel.UIDValidity}
		clear(r.pending)
		if err := r.opts.State.Save(ctx, r.key, r.cursor); err != nil {
			c.Close()
			return errclass.New(errclass.Temporary, "imap_state", fmt.Errorf("save imap tracking state: %w", err))
		}
	}
	r.client, r.conn = c, conn
	r.queue, r.fetched = nil, nil
	r.log.Debug("imap connected", "host", r.opts.Host, "port", r.opts.Port, "tls_mode", r.opts.TLSMode,
		"uidvalidity", sel.UIDValidity, "messages", sel.NumMessages, "idle", r.canIdle())
	return nil
}

func ensureFolder(c *imapclient.Client, name string) error {
	if _, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait(); err == nil {
		return nil
	}
	err := c.Create(name, nil).Wait()
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		return nil
	}
	return err
}

func (r *Receiver) canIdle() bool {
	if r.opts.DisableIdle || r.client == nil {
		return false
	}
	caps := r.client.Caps()
	return caps.Has(imap.CapIdle) || caps.Has(imap.CapIMAP4rev2)
}

// next finishes acked mails, then returns the next decodable mail, or
// wait=true when the mailbox holds nothing new.
func (r *Receiver) next(ctx context.Context) (in *transport.Incoming, ack transport.AckFunc, wait bool, err error) {
	// Moves are batched: decided mails are moved once the fetched batch is
	// used up (before the next search or fetch, and so before any wait).
	if len(r.fetched) == 0 || len(r.cursor.Done) >= r.opts.FetchBatch {
		if err := r.finishDone(ctx); err != nil {
			return nil, nil, false, err
		}
	}
	if len(r.fetched) == 0 && len(r.queue) == 0 {
		data, err := r.client.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			return nil, nil, false, fmt.Errorf("search: %w", err)
		}
		for _, uid := range data.AllUIDs() {
			u := uint32(uid)
			if _, done := r.cursor.Done[u]; done || r.pending[u] {
				continue
			}
			r.queue = append(r.queue, u)
		}
		slices.Sort(r.queue)
		if len(r.queue) == 0 {
			return nil, nil, true, nil
		}
	}
	if len(r.fetched) == 0 {
		n := min(len(r.queue), r.opts.FetchBatch)
		batch := r.queue[:n]
		r.queue = r.queue[n:]
		if err := r.fetch(batch); err != nil {
			return nil, nil, false, err
		}
		if len(r.fetched) == 0 {
			return nil, nil, false, nil // all gone meanwhile
		}
	}
	m := r.fetched[0]
	r.fetched = r.fetched[1:]
	ref := fmt.Sprintf("uid:%d:%d", r.cursor.UIDValidity, m.uid)
	meta, sealed, derr := transport.DecodeMail(m.raw)
	if derr != nil {
		reason := transport.DecodeReason(derr)
		r.log.Warn("imap mail is not a jirabridge envelope: quarantined", "ref", ref, "reason", reason, "err", derr)
		if err := r.decide(ctx, m.uid, r.opts.QuarantineFolder); err != nil {
			return nil, nil, false, err
		}
		if r.opts.OnQuarantine != nil {
			r.opts.OnQuarantine(ref, reason)
		}
		return nil, nil, false, nil
	}
	r.pending[m.uid] = true
	uidValidity := r.cursor.UIDValidity
	var once sync.Once
	ack = func(ctx context.Context, d transport.Disposition) error {
		err := errors.New("imap ack called twice")
		once.Do(func() { err = r.ack(ctx, uidValidity, m.uid, d) })
		return err
	}
	return &transport.Incoming{ID: ref, Meta: meta, Sealed: sealed, Raw: m.raw}, ack, false, nil
}

func (r *Receiver) fetch(uids []uint32) error {
	set := imap.UIDSet{}
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := r.client.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	slices.SortFunc(msgs, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.UID) - int(b.UID) })
	for _, msg := range msgs {
		raw := msg.FindBodySection(section)
		if raw == nil {
			continue
		}
		r.fetched = append(r.fetched, fetchedMail{uid: uint32(msg.UID), raw: raw})
	}
	return nil
}

// ack records the caller's decision; see decide.
func (r *Receiver) ack(ctx context.Context, uidValidity, uid uint32, d transport.Disposition) error {
	dest := r.opts.ProcessedFolder
	if d.Quarantine {
		dest = r.opts.QuarantineFolder
	} else if r.opts.AfterStore == AfterStoreDelete {
		dest = ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, uid)
	if uidValidity != r.cursor.UIDValidity {
		return errclass.New(errclass.Temporary, "imap_uidvalidity", fmt.Errorf("ack uid %d: the mailbox's uidvalidity changed; the mail is read again", uid))
	}
	if d.Quarantine {
		r.log.Info("imap mail quarantined by the caller", "uid", uid, "reason", d.Reason)
	}
	return r.decide(ctx, uid, dest)
}

// decide saves the disposition of uid. The move or delete happens in the
// receiving goroutine's next round (batched) or in Close; an idle session is
// woken for it.
func (r *Receiver) decide(ctx context.Context, uid uint32, dest string) error {
	if r.cursor.Done == nil {
		r.cursor.Done = map[uint32]string{}
	}
	r.cursor.Done[uid] = dest
	if err := r.opts.State.Save(ctx, r.key, r.cursor); err != nil {
		return errclass.New(errclass.Temporary, "imap_state", fmt.Errorf("save imap tracking state: %w", err))
	}
	if r.idling {
		r.wake()
	}
	return nil
}

// finishDone moves or deletes every mail in cursor.Done.
func (r *Receiver) finishDone(ctx context.Context) error {
	if len(r.cursor.Done) == 0 {
		return nil
	}
	byDest := map[string]imap.UIDSet{}
	for uid, dest := range r.cursor.Done {
		s := byDest[dest]
		s.AddNum(imap.UID(uid))
		byDest[dest] = s
	}
	for dest, set := range byDest {
		if dest == "" {
			if err := r.client.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return fmt.Errorf("flag processed mail deleted: %w", err)
			}
			var err error
			if r.client.Caps().Has(imap.CapUIDPlus) || r.client.Caps().Has(imap.CapIMAP4rev2) {
				err = r.client.UIDExpunge(set).Close()
			} else {
				err = r.client.Expunge().Close()
			}
			if err != nil {
				return fmt.Errorf("expunge processed mail: %w", err)
			}
		} else if _, err := r.client.Move(set, dest).Wait(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeTryCreate {
				return fmt.Errorf("move mail to %s: %w", dest, err)
			}
			if err := ensureFolder(r.client, dest); err != nil {
				return fmt.Errorf("create folder %s: %w", dest, err)
			}
			if _, err := r.client.Move(set, dest).Wait(); err != nil {
				return fmt.Errorf("move mail to %s: %w", dest, err)
			}
		}
		for _, rng := range set {
			for u := rng.Start; u <= rng.Stop; u++ {
				delete(r.cursor.Done, uint32(u))
			}
		}
	}
	if err := r.opts.State.Save(ctx, r.key, r.cursor); err != nil {
		return errclass.New(errclass.Temporary, "imap_state", fmt.Errorf("save imap tracking state: %w", err))
	}
	return nil
}

// wait blocks until new mail may be there: IDLE when the server has it,
// else the poll interval. It is called with r.mu held and returns with it
// held; acks that arrive meanwhile wake it.
func (r *Receiver) wait(ctx context.Context) error {
	c := r.client
	if !r.canIdle() {
		r.mu.Unlock()
		defer r.mu.Lock()
		select {
		case <-ctx.Done():
		case <-r.notify:
		case <-c.Closed():
			return errors.New("connection closed")
		case <-r.opts.After(r.opts.PollInterval):
		}
		return nil
	}
	// A wake-up that came in since the search (an EXISTS sent with the
	// SEARCH or FETCH response) is kept: it ends this IDLE at once.
	// IDLE lasts up to IdleRestart; the server's keep-alives and DONE need
	// no read deadline.
	_ = r.conn.SetDeadline(time.Time{})
	idle, err := c.Idle()
	if err != nil {
		return fmt.Errorf("start idle: %w", err)
	}
	r.idling = true
	r.mu.Unlock()
	var closed bool
	select {
	case <-ctx.Done():
	case <-r.notify:
	case <-c.Closed():
		closed = true
	case <-r.opts.After(min(r.opts.IdleRestart, r.opts.PollInterval)):
	}
	r.mu.Lock()
	r.idling = false
	if closed {
		return errors.New("connection closed during idle")
	}
	_ = r.conn.SetDeadline(time.Now().Add(r.opts.Timeout))
	if err := idle.Close(); err != nil {
		return fmt.Errorf("end idle: %w", err)
	}
	if err := idle.Wait(); err != nil {
		return fmt.Errorf("end idle: %w", err)
	}
	return nil
}

// logout ends the session politely. Called with r.mu held.
func (r *Receiver) logout() {
	if r.client == nil {
		return
	}
	c := r.client
	_ = r.conn.SetDeadline(time.Now().Add(5 * time.Second))
	_ = c.Logout().Wait()
	r.dropLocked()
}

func (r *Receiver) dropLocked() {
	if r.client != nil {
		r.client.Close()
	}
	r.client, r.conn = nil, nil
	r.queue, r.fetched = nil, nil
}

// Close moves the acked mails not yet moved and logs out. What it cannot
// move stays in the State and is moved by the next Receiver with the same
// State.
func (r *Receiver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var err error
	if r.client != nil && !r.idling && len(r.cursor.Done) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
		defer cancel()
		stop := context.AfterFunc(ctx, func() { _ = r.conn.SetDeadline(time.Now()) })
		defer stop()
		if err = r.finishDone(ctx); err != nil {
			err = fmt.Errorf("move acked mails before closing (they are moved by the next receiver with the same state): %w", err)
		}
	}
	r.logout()
	return err
}

// classify turns an IMAP error into the errclass vocabulary.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *errclass.Error
	if errors.As(err, &ce) {
		return err
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		switch {
		case ie.Code == imap.ResponseCodeAuthenticationFailed || ie.Code == imap.ResponseCodeAuthorizationFailed:
			return errclass.New(errclass.Permanent, "imap_auth", fmt.Errorf("%w; check the imap user name and password", err))
		case ie.Code == imap.ResponseCodeNonExistent:
			return errclass.New(errclass.Permanent, "imap_mailbox", fmt.Errorf("%w; check the mailbox name", err))
		case ie.Code == imap.ResponseCodeUnavailable || ie.Code == imap.ResponseCodeServerBug || ie.Type == imap.StatusResponseTypeBye:
			return errclass.New(errclass.Temporary, "imap_unavailable", err)
		default:
			return errclass.New(errclass.Temporary, "imap_refused", err)
		}
	}
	if transport.IsTLSError(err) {
		return errclass.New(errclass.Permanent, "imap_tls", fmt.Errorf("%w; the imap server's certificate is not trusted or TLS failed: set %s to the PEM file of the CA that signed it, and check the TLS mode matches the port", err, CAFileVar))
	}
	if transport.IsConnectionLost(err) {
		return errclass.New(errclass.Temporary, "imap_dial", err)
	}
	// A dropped session shows up as many different errors from imapclient;
	// reconnecting is the right answer to all of them.
	return errclass.New(errclass.Temporary, "imap_session", err)
}
