// Package mailtest is an in-process mail server for the demo and fast tests:
// SMTP (emersion/go-smtp) delivering into IMAP mailboxes (go-imap v2's
// imapmemserver, IDLE included), both on loopback ports the OS chooses.
//
// It can script the failures real mail servers produce: a 4xx or 5xx reply
// to the Nth message, a dropped connection, a delay, and dropped IMAP
// sessions. It keeps everything in memory and is not a substitute for the
// real Postfix + Dovecot stack in the integration tests.
package mailtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configures a Server. The zero value is a working server.
type Options struct {
	// Domain is the mail domain: mail to user@Domain or user+folder@Domain
	// is delivered to user's INBOX or folder. Default "jirabridge.test".
	Domain string
	// NoIdle hides the IDLE capability, so clients must poll.
	NoIdle bool
	// NoMove hides the MOVE capability, so clients must COPY and EXPUNGE.
	NoMove bool
	// MaxMessageBytes is the SMTP size limit; default 30 MB.
	MaxMessageBytes int64
	// Logger receives the servers' error messages; default discards them.
	Logger *log.Logger
}

// Server is a running in-process SMTP + IMAP server.
type Server struct {
	domain string
	mem    *imapmemserver.Server
	imap   *imapserver.Server
	smtp   *smtp.Server
	imapLn net.Listener
	smtpLn net.Listener

	mu       sync.Mutex
	users    map[string]*imapmemserver.User
	seen     int                   // messages that reached DATA
	faults   map[int]fault         // by message number (1-based)
	imapConn map[net.Conn]struct{} // open IMAP connections
	idling   int                   // IMAP sessions in IDLE
	changed  chan struct{}         // closed (and replaced) when imapConn or idling change
	accepted map[string]int        // delivered messages by user
	mails    map[string][][]byte   // delivered raw mails by "user/folder"
	delay    func(n int)           // called before each DATA reply
	noIdle   bool
	wg       sync.WaitGroup
}

type faultKind int

const (
	faultReply faultKind = iota
	faultDrop
)

type fault struct {
	kind faultKind
	code int
	msg  string
}

// Start starts the SMTP and IMAP servers on 127.0.0.1 ports the OS chooses.
func Start(opts Options) (*Server, error) {
	if opts.Domain == "" {
		opts.Domain = "jirabridge.test"
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = 30 << 20
	}
	logger := opts.Logger
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	s := &Server{
		domain:   opts.Domain,
		mem:      imapmemserver.New(),
		users:    map[string]*imapmemserver.User{},
		faults:   map[int]fault{},
		imapConn: map[net.Conn]struct{}{},
		changed:  make(chan struct{}),
		accepted: map[string]int{},
		mails:    map[string][][]byte{},
	}
	s.noIdle = opts.NoIdle
	caps := imap.CapSet{
		imap.CapIMAP4rev1: {},
		imap.CapUIDPlus:   {},
		imap.CapNamespace: {},
	}
	if !opts.NoMove {
		caps[imap.CapMove] = struct{}{}
	}
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return idleSession{SessionIMAP4rev2: s.mem.NewSession().(imapserver.SessionIMAP4rev2), s: s}, nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       logger,
	})
	s.smtp = smtp.NewServer(&backend{s: s})
	s.smtp.Domain = "mailtest.localhost"
	s.smtp.AllowInsecureAuth = true
	s.smtp.MaxMessageBytes = opts.MaxMessageBytes
	s.smtp.MaxRecipients = 50
	s.smtp.ErrorLog = logger

	var err error
	if s.imapLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("listen for imap: %w", err)
	}
	if s.smtpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		s.imapLn.Close()
		return nil, fmt.Errorf("listen for smtp: %w", err)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.imap.Serve(&trackingListener{Listener: s.imapLn, s: s})
	}()
	go func() {
		defer s.wg.Done()
		_ = s.smtp.Serve(s.smtpLn)
	}()
	return s, nil
}

// SMTPAddr returns the SMTP server's host:port.
func (s *Server) SMTPAddr() string { return s.smtpLn.Addr().String() }

// IMAPAddr returns the IMAP server's host:port.
func (s *Server) IMAPAddr() string { return s.imapLn.Addr().String() }

// Domain returns the mail domain the server accepts.
func (s *Server) Domain() string { return s.domain }

// Address returns user@domain, or user+folder@domain, which the server
// delivers into the folder.
func (s *Server) Address(user, folder string) string {
	if folder == "" {
		return user + "@" + s.domain
	}
	return user + "+" + folder + "@" + s.domain
}

// AddUser creates a user with an INBOX. Adding an existing user changes
// nothing and is not an error.
func (s *Server) AddUser(name, pass string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; ok {
		return nil
	}
	u := imapmemserver.NewUser(name, pass)
	if err := u.Create("INBOX", nil); err != nil {
		return fmt.Errorf("create INBOX of %s: %w", name, err)
	}
	s.mem.AddUser(u)
	s.users[name] = u
	return nil
}

// Deliver appends raw as a new mail to user's INBOX, as if it had arrived
// by SMTP.
func (s *Server) Deliver(user string, raw []byte) error { return s.DeliverTo(user, "", raw) }

// DeliverTo appends raw as a new mail to user's folder ("" is INBOX),
// creating the folder when missing.
func (s *Server) DeliverTo(user, folder string, raw []byte) error {
	s.mu.Lock()
	u := s.users[user]
	s.mu.Unlock()
	if u == nil {
		return fmt.Errorf("deliver to unknown user %q", user)
	}
	if folder == "" {
		folder = "INBOX"
	}
	if _, err := u.Status(folder, &imap.StatusOptions{}); err != nil {
		if err := u.Create(folder, nil); err != nil && !strings.Contains(err.Error(), "exists") {
			return fmt.Errorf("create folder %s of %s: %w", folder, user, err)
		}
	}
	if _, err := u.Append(folder, literal{bytes.NewReader(raw)}, &imap.AppendOptions{Time: time.Now()}); err != nil {
		return fmt.Errorf("deliver to %s/%s: %w", user, folder, err)
	}
	s.mu.Lock()
	s.accepted[user]++
	s.mails[user+"/"+folder] = append(s.mails[user+"/"+folder], raw)
	s.mu.Unlock()
	return nil
}

// Delivered returns how many mails user has received (by SMTP or Deliver).
func (s *Server) Delivered(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted[user]
}

// FailNth makes the server reply code (4xx or 5xx) with msg to the DATA of
// the nth message from now (1 is the next message).
func (s *Server) FailNth(n, code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[s.seen+n] = fault{kind: faultReply, code: code, msg: msg}
}

// DropNth makes the server close the connection instead of replying to the
// DATA of the nth message from now; the message is not delivered.
func (s *Server) DropNth(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[s.seen+n] = fault{kind: faultDrop}
}

// SetDelay installs f, which the server calls with the message number
// (1-based, counted since Start) before it replies to each DATA. A test
// blocks in f (on a channel) to model a slow server without sleeping.
// A nil f removes the delay.
func (s *Server) SetDelay(f func(n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = f
}

// DropIMAPConnections closes every open IMAP connection, as a server restart
// would. Mailboxes keep their content and UIDVALIDITY.
func (s *Server) DropIMAPConnections() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.imapConn))
	for c := range s.imapConn {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// IMAPConnections returns the number of open IMAP connections.
func (s *Server) IMAPConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.imapConn)
}

// Sessions is what WaitSessions looks at: the open IMAP connections and
// how many of their sessions are in IDLE.
type Sessions struct {
	Connections int
	Idling      int
}

// WaitSessions blocks until cond holds for the server's IMAP sessions, or
// ctx ends (then it returns ctx's error). cond is called with the server's
// lock held each time the sessions change: it must not call the Server.
// Tests wait with it for "the receiver is idling" or "every session is
// closed" instead of polling IMAPConnections.
func (s *Server) WaitSessions(ctx context.Context, cond func(Sessions) bool) (Sessions, error) {
	for {
		s.mu.Lock()
		now := Sessions{Connections: len(s.imapConn), Idling: s.idling}
		ok, changed := cond(now), s.changed
		s.mu.Unlock()
		if ok {
			return now, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return now, ctx.Err()
		}
	}
}

// sessionsChanged wakes WaitSessions; s.mu must be held.
func (s *Server) sessionsChanged() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Close stops both servers and closes every connection.
func (s *Server) Close() error {
	err := errors.Join(s.smtp.Close(), s.imap.Close())
	// Serve may not have registered its listener yet when Close runs.
	s.smtpLn.Close()
	s.imapLn.Close()
	s.DropIMAPConnections()
	s.wg.Wait()
	return err
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.imapConn[tc] = struct{}{}
	l.s.sessionsChanged()
	l.s.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.imapConn, c)
		c.s.sessionsChanged()
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	rcpt []rcpt
}

type rcpt struct{ user, folder string }

func (se *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		se.s.mu.Lock()
		u := se.s.users[username]
		se.s.mu.Unlock()
		if u == nil || u.Login(username, password) != nil {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		return nil
	}), nil
}

func (se *session) Reset()        { se.rcpt = nil }
func (se *session) Logout() error { return nil }

func (se *session) Mail(string, *smtp.MailOptions) error { return nil }

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	local, domain, ok := strings.Cut(to, "@")
	if !ok || !strings.EqualFold(domain, se.s.domain) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relay access denied"}
	}
	user, folder, _ := strings.Cut(local, "+")
	se.s.mu.Lock()
	_, known := se.s.users[user]
	se.s.mu.Unlock()
	if !known {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	se.rcpt = append(se.rcpt, rcpt{user: user, folder: folder})
	return nil
}

func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := se.s
	s.mu.Lock()
	s.seen++
	n := s.seen
	f, hasFault := s.faults[n]
	delete(s.faults, n)
	delay := s.delay
	s.mu.Unlock()
	if delay != nil {
		delay(n)
	}
	if hasFault {
		switch f.kind {
		case faultDrop:
			se.conn.Conn().Close()
			return errors.New("connection dropped by script")
		default:
			return &smtp.SMTPError{Code: f.code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: f.msg}
		}
	}
	for _, rc := range se.rcpt {
		if err := s.DeliverTo(rc.user, rc.folder, raw); err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: err.Error()}
		}
	}
	return nil
}

// Mails returns the raw mails delivered to user's folder ("" is INBOX), in
// order of arrival, whether or not a client has moved them since.
func (s *Server) Mails(user, folder string) [][]byte {
	if folder == "" {
		folder = "INBOX"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails[user+"/"+folder])
}

// Write hides IDLE from CAPABILITY lines when Options.NoIdle is set:
// imapserver always offers IDLE with IMAP4rev1.
func (c *trackedConn) Write(p []byte) (int, error) {
	if !c.s.noIdle || !bytes.Contains(p, []byte("CAPABILITY")) {
		return c.Conn.Write(p)
	}
	q := bytes.ReplaceAll(p, []byte(" IDLE "), []byte(" "))
	q = bytes.ReplaceAll(q, []byte(" IDLE]"), []byte("]"))
	q = bytes.ReplaceAll(q, []byte(" IDLE\r\n"), []byte("\r\n"))
	if _, err := c.Conn.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// idleSession fixes a race in imapmemserver: an update queued between a
// command and IDLE is only sent at the next update. Flushing the queue when
// IDLE starts delivers it at once, as Dovecot does. It also counts the
// sessions in IDLE for WaitSessions: from the moment one counts, a mail
// delivered to its mailbox reaches the client (updates queue from SELECT
// on, and the flush below sends what came before IDLE).
type idleSession struct {
	imapserver.SessionIMAP4rev2
	s *Server
}

func (s idleSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.Poll(w, true); err != nil {
		return err
	}
	s.s.mu.Lock()
	s.s.idling++
	s.s.sessionsChanged()
	s.s.mu.Unlock()
	defer func() {
		s.s.mu.Lock()
		s.s.idling--
		s.s.sessionsChanged()
		s.s.mu.Unlock()
	}()
	return s.SessionIMAP4rev2.Idle(w, stop)
}
