// Package smtpsend sends sealed envelopes as mail over SMTP. The MIME is
// built by transport.EncodeMail; wneessen/go-mail dials, secures (implicit
// TLS or required STARTTLS; plain only to a loopback address) and
// authenticates the connection and carries the SMTP dialogue. Every error
// leaves through Classify, the one place that decides what the caller does
// next.
package smtpsend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
)

// TLS modes.
const (
	TLSImplicit = transport.TLSImplicit // TLS from the first byte (port 465 style)
	TLSStartTLS = transport.TLSStartTLS // plain connect, STARTTLS required (port 587 style)
	TLSPlain    = transport.TLSPlain    // no TLS; only to a loopback address
)

// Authentication mechanisms.
const (
	AuthAuto    = "auto" // the first of CRAM-MD5, PLAIN, LOGIN the server offers
	AuthPlain   = "plain"
	AuthLogin   = "login"
	AuthCRAMMD5 = "cram-md5"
	AuthXOAUTH2 = "xoauth2" // Password is the OAuth2 access token
)

// DefaultMaxMessageSize is the largest mail Send hands to the server unless
// Options.MaxMessageSize says otherwise.
const DefaultMaxMessageSize = 10 << 20

// CAFileVar names the setting an operator changes when the server's
// certificate is not trusted; it appears in Classify's TLS errors.
const CAFileVar = "JIRABRIDGE_SMTP_CA_FILE"

// Options configures a Sender.
type Options struct {
	Host    string // server name or address; also the name the certificate must carry
	Port    int    // default 465 for tls, 587 for starttls, 25 for plain
	TLSMode string // TLSImplicit, TLSStartTLS (default) or TLSPlain

	Username      string // empty: no SMTP AUTH
	Password      string
	AuthMechanism string // AuthAuto (default), AuthPlain, AuthLogin, AuthCRAMMD5, AuthXOAUTH2

	// CAFile is a PEM file of the roots that sign the server's certificate,
	// used instead of the system roots. Verification is never skipped.
	CAFile string

	From string   // the From address, e.g. "Bridge A <bridge-a@example.com>"
	To   []string // the peer's mailbox
	HELO string   // name sent in EHLO; default go-mail's (the host name)

	// MaxMessageSize is the largest mail sent, checked before the dialogue;
	// default DefaultMaxMessageSize.
	MaxMessageSize int64
	// Timeout bounds the dial and each SMTP command; default 30 s.
	Timeout time.Duration

	// Header, when set, returns the From, To and Date of the mail for an
	// envelope; default From and To above and the current time.
	Header func(transport.Meta) transport.MailHeader

	Logger *slog.Logger
}

// Sender sends envelopes over one SMTP connection that it keeps open between
// Sends (a batch costs one dial, one TLS handshake and one AUTH) and redials
// after an error. It is safe for concurrent use; sends are serialised.
type Sender struct {
	opts   Options
	gm     *gomail.Client
	log    *slog.Logger
	mu     sync.Mutex
	client *smtp.Client
	conn   net.Conn // the client's connection, to interrupt it on cancel
}

var _ transport.Sender = (*Sender)(nil)

// New checks opts and returns a Sender. It does not connect: the first Send
// does.
func New(opts Options) (*Sender, error) {
	var errs []error
	if opts.Host == "" {
		errs = append(errs, errors.New("smtp host is empty"))
	}
	var err error
	if opts.TLSMode, err = transport.CheckTLSMode("smtp", opts.TLSMode, opts.Host, TLSStartTLS); err != nil {
		errs = append(errs, err)
	}
	if opts.Port == 0 {
		opts.Port = map[string]int{TLSImplicit: 465, TLSStartTLS: 587, TLSPlain: 25}[opts.TLSMode]
	}
	if opts.Port < 0 || opts.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp port %d is out of range", opts.Port))
	}
	if opts.AuthMechanism == "" {
		opts.AuthMechanism = AuthAuto
	}
	authType, ok := map[string]gomail.SMTPAuthType{
		AuthPlain: gomail.SMTPAuthPlain, AuthLogin: gomail.SMTPAuthLogin,
		AuthCRAMMD5: gomail.SMTPAuthCramMD5, AuthXOAUTH2: gomail.SMTPAuthXOAUTH2,
		AuthAuto: gomail.SMTPAuthOpportunistic,
	}[strings.ToLower(opts.AuthMechanism)]
	if !ok {
		errs = append(errs, fmt.Errorf("smtp auth mechanism %q is unknown: use auto, plain, login, cram-md5 or xoauth2", opts.AuthMechanism))
	}
	if opts.Header == nil {
		if _, err := mail.ParseAddress(opts.From); err != nil {
			errs = append(errs, fmt.Errorf("smtp from address %q: %w", opts.From, err))
		}
		if len(opts.To) == 0 {
			errs = append(errs, errors.New("smtp to address is empty"))
		}
		for _, to := range opts.To {
			if _, err := mail.ParseAddress(to); err != nil {
				errs = append(errs, fmt.Errorf("smtp to address %q: %w", to, err))
			}
		}
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tlsConf, err := transport.ClientTLS("smtp", opts.Host, opts.CAFile, CAFileVar)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	s := &Sender{opts: opts, log: opts.Logger.With("component", "smtpsend")}
	dialer := &net.Dialer{}
	gmOpts := []gomail.Option{
		gomail.WithPort(opts.Port),
		gomail.WithTimeout(opts.Timeout),
		gomail.WithTLSConfig(tlsConf),
		// The dial func records the connection so that a cancelled context
		// can interrupt a blocked command; it does implicit TLS itself, so
		// go-mail is told not to add STARTTLS on top.
		gomail.WithDialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if opts.TLSMode == TLSImplicit {
				tc := tls.Client(c, tlsConf)
				if err := tc.HandshakeContext(ctx); err != nil {
					c.Close()
					return nil, err
				}
				c = tc
			}
			s.conn = c
			return c, nil
		}),
	}
	switch opts.TLSMode {
	case TLSStartTLS:
		gmOpts = append(gmOpts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		gmOpts = append(gmOpts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if opts.HELO != "" {
		gmOpts = append(gmOpts, gomail.WithHELO(opts.HELO))
	}
	if opts.Username != "" {
		gmOpts = append(gmOpts, gomail.WithUsername(opts.Username), gomail.WithPassword(opts.Password))
		if authType == gomail.SMTPAuthOpportunistic {
			gmOpts = append(gmOpts, gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
		} else {
			gmOpts = append(gmOpts, gomail.WithSMTPAuth(authType))
		}
	}
	gm, err := gomail.NewClient(opts.Host, gmOpts...)
	if err != nil {
		return nil, fmt.Errorf("configure smtp client: %w", err)
	}
	s.gm = gm
	return s, nil
}

// Send encodes m as a mail and hands it to the server. It returns nil once
// the server accepted the mail; errors are classified (see Classify).
func (s *Sender) Send(ctx context.Context, m transport.Outgoing) error {
	h := transport.MailHeader{From: s.opts.From, To: s.opts.To}
	if s.opts.Header != nil {
		h = s.opts.Header(m.Meta)
	}
	raw, err := transport.EncodeMail(m, h)
	if err != nil {
		return errclass.New(errclass.Permanent, "smtp_encode", fmt.Errorf("encode envelope %s #%d as mail: %w", m.Sync, m.Seq, err))
	}
	return s.SendRaw(ctx, h, raw)
}

// SendBatch sends ms in order over the one connection and stops at the
// first error. It returns how many were accepted.
func (s *Sender) SendBatch(ctx context.Context, ms []transport.Outgoing) (int, error) {
	for i, m := range ms {
		if err := s.Send(ctx, m); err != nil {
			return i, err
		}
	}
	return len(ms), nil
}

// SendRaw sends an already encoded mail with the envelope addresses of h. It
// is Send without the codec, for tools and benchmarks.
func (s *Sender) SendRaw(ctx context.Context, h transport.MailHeader, raw []byte) error {
	if int64(len(raw)) > s.opts.MaxMessageSize {
		return errclass.New(errclass.Permanent, transport.ReasonTooLarge,
			fmt.Errorf("mail of %d bytes is above the smtp size limit of %d bytes", len(raw), s.opts.MaxMessageSize))
	}
	from, err := mail.ParseAddress(h.From)
	if err != nil {
		return errclass.New(errclass.Permanent, "smtp_address", fmt.Errorf("parse from address %q: %w", h.From, err))
	}
	rcpts := make([]string, 0, len(h.To))
	for _, to := range h.To {
		a, err := mail.ParseAddress(to)
		if err != nil {
			return errclass.New(errclass.Permanent, "smtp_address", fmt.Errorf("parse to address %q: %w", to, err))
		}
		rcpts = append(rcpts, a.Address)
	}
	if len(rcpts) == 0 {
		return errclass.New(errclass.Permanent, "smtp_address", errors.New("mail has no recipient"))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return errclass.New(errclass.Temporary, "smtp_canceled", err)
	}
	reused := s.client != nil
	if err := s.dial(ctx); err != nil {
		return Classify(fmt.Errorf("connect to smtp server %s:%d: %w", s.opts.Host, s.opts.Port, err))
	}
	dataSent, err := s.transaction(ctx, from.Address, rcpts, raw)
	if err != nil && reused && !dataSent && !isReply(err) && ctx.Err() == nil {
		// The server may have closed the idle connection before this mail
		// began; one fresh connection decides. After DATA a retry is the
		// caller's decision.
		s.drop()
		if err = s.dial(ctx); err != nil {
			return Classify(fmt.Errorf("reconnect to smtp server %s:%d: %w", s.opts.Host, s.opts.Port, err))
		}
		_, err = s.transaction(ctx, from.Address, rcpts, raw)
	}
	if err != nil {
		if !isReply(err) {
			s.drop()
		}
		return Classify(fmt.Errorf("send mail to %s via %s:%d: %w", strings.Join(rcpts, ","), s.opts.Host, s.opts.Port, err))
	}
	return nil
}

func (s *Sender) dial(ctx context.Context) error {
	if s.client != nil {
		return nil
	}
	c, err := s.gm.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if s.conn != nil {
			s.conn.Close()
			s.conn = nil
		}
		return err
	}
	s.client = c
	s.log.Debug("smtp connected", "host", s.opts.Host, "port", s.opts.Port, "tls_mode", s.opts.TLSMode)
	return nil
}

// drop forgets the connection without a QUIT: it is in an unknown state.
func (s *Sender) drop() {
	if s.conn != nil {
		s.conn.Close()
	}
	s.client, s.conn = nil, nil
}

// transaction runs MAIL, RCPT and DATA. A cancelled context interrupts a
// blocked command by expiring the connection's deadline.
func (s *Sender) transaction(ctx context.Context, from string, rcpts []string, raw []byte) (dataSent bool, err error) {
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer func() {
		if !stop() && err != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}()
	c := s.client
	if err := c.UpdateDeadline(s.opts.Timeout); err != nil {
		return false, err
	}
	if err := c.Mail(from); err != nil {
		s.reset(err)
		return false, fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			s.reset(err)
			return false, fmt.Errorf("RCPT TO %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		s.reset(err)
		return false, fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return true, fmt.Errorf("write mail: %w", err)
	}
	if err := w.Close(); err != nil {
		return true, fmt.Errorf("end of DATA: %w", err)
	}
	return true, nil
}

// reset returns the connection to a clean state after a refused command so
// it can carry the next mail.
func (s *Sender) reset(err error) {
	if isReply(err) && s.client.Reset() == nil {
		return
	}
	s.drop()
}

// isReply reports whether err is an SMTP reply from the server (the
// connection is still in step) rather than an I/O failure.
func isReply(err error) bool {
	_, ok := replyCode(err)
	return ok
}

// Close ends the SMTP session with QUIT.
func (s *Sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil
	}
	c := s.client
	_ = c.UpdateDeadline(5 * time.Second)
	err := c.Quit()
	s.drop()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("quit smtp session: %w", err)
	}
	return nil
}

// replyCode extracts the SMTP reply code from err.
func replyCode(err error) (int, bool) {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code, true
	}
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 200 {
		return se.ErrorCode(), true
	}
	return 0, false
}
