package smtpsend

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"syscall"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/jirabridge/jirabridge/internal/errclass"
	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/mailtest"
)

func envelope(seq uint64, size int) transport.Outgoing {
	return transport.Outgoing{
		Meta:   transport.Meta{Sync: "s1", SyncName: "Test sync", Sender: "node-a", Seq: seq, Kind: transport.KindChanges},
		Sealed: []byte(strings.Repeat(fmt.Sprintf("sealed-%d|", seq), size/8+1))[:size],
	}
}

func startServer(t *testing.T) *mailtest.Server {
	t.Helper()
	s, err := mailtest.Start(mailtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, u := range []string{"bridge-a", "bridge-b"} {
		if err := s.AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func newSender(t *testing.T, s *mailtest.Server, mod func(*Options)) *Sender {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.SMTPAddr())
	var p int
	fmt.Sscan(port, &p)
	opts := Options{
		Host: host, Port: p, TLSMode: TLSPlain,
		From: "Bridge A <bridge-a@jirabridge.test>", To: []string{s.Address("bridge-b", "")},
		HELO: "localhost", Timeout: 5 * time.Second,
	}
	if mod != nil {
		mod(&opts)
	}
	snd, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snd.Close() })
	return snd
}

func TestSendDeliversDecodableMail(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	snd := newSender(t, s, func(o *Options) { o.Username, o.Password, o.AuthMechanism = "bridge-a", "bridge-a-pw", AuthPlain })
	ctx := context.Background()
	var batch []transport.Outgoing
	for i := uint64(1); i <= 5; i++ {
		batch = append(batch, envelope(i, 1000))
	}
	n, err := snd.SendBatch(ctx, batch)
	if err != nil || n != 5 {
		t.Fatalf("SendBatch = %d, %v; want 5, nil", n, err)
	}
	mails := s.Mails("bridge-b", "")
	if len(mails) != 5 {
		t.Fatalf("delivered %d mails, want 5", len(mails))
	}
	for i, raw := range mails {
		meta, sealed, err := transport.DecodeMail(raw)
		if err != nil {
			t.Fatalf("mail %d does not decode: %v", i, err)
		}
		if want := envelope(uint64(i+1), 1000); meta.Seq != want.Seq || string(sealed) != string(want.Sealed) {
			t.Errorf("mail %d: seq %d, want %d (sealed equal: %v)", i, meta.Seq, want.Seq, string(sealed) == string(want.Sealed))
		}
	}
}

func TestSendFaults(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	snd := newSender(t, s, nil)
	ctx := context.Background()
	s.FailNth(1, 451, "greylisted")
	s.FailNth(2, 552, "too big for me")
	s.DropNth(3)
	tests := []struct {
		name   string
		class  errclass.Class
		reason string
	}{
		{"451 backs off", errclass.BackOff, Reason4xx},
		{"552 is permanent", errclass.Permanent, Reason5xx},
		{"dropped connection is temporary", errclass.Temporary, ReasonDial},
		{"next send redials and succeeds", 0, ""},
	}
	for i, tt := range tests {
		err := snd.Send(ctx, envelope(uint64(i+1), 100))
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s: err = %v", tt.name, err)
			}
			continue
		}
		if errclass.Of(err) != tt.class || errclass.ReasonOf(err) != tt.reason {
			t.Errorf("%s: err = %v (%v, %s), want %v %s", tt.name, err, errclass.Of(err), errclass.ReasonOf(err), tt.class, tt.reason)
		}
	}
	if got := len(s.Mails("bridge-b", "")); got != 1 {
		t.Errorf("delivered %d, want 1", got)
	}
}

func TestSendChecks(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()

	small := newSender(t, s, func(o *Options) { o.MaxMessageSize = 2000 })
	err := small.Send(ctx, envelope(1, 5000))
	if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != transport.ReasonTooLarge {
		t.Errorf("oversized send: err = %v, want permanent %s", err, transport.ReasonTooLarge)
	}

	badAuth := newSender(t, s, func(o *Options) { o.Username, o.Password, o.AuthMechanism = "bridge-a", "wrong", AuthPlain })
	err = badAuth.Send(ctx, envelope(1, 100))
	if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != ReasonAuth {
		t.Errorf("wrong password: err = %v, want permanent %s", err, ReasonAuth)
	}

	// STARTTLS required against a server without it.
	noTLS := newSender(t, s, func(o *Options) { o.TLSMode = TLSStartTLS })
	err = noTLS.Send(ctx, envelope(1, 100))
	if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != ReasonTLS {
		t.Errorf("starttls to a plain server: err = %v, want permanent %s", err, ReasonTLS)
	}

	// Implicit TLS against a plain server: a TLS failure, not a retry loop.
	implicit := newSender(t, s, func(o *Options) { o.TLSMode = TLSImplicit })
	err = implicit.Send(ctx, envelope(1, 100))
	if errclass.Of(err) != errclass.Permanent || errclass.ReasonOf(err) != ReasonTLS {
		t.Errorf("tls to a plain server: err = %v, want permanent %s", err, ReasonTLS)
	}

	if got := len(s.Mails("bridge-b", "")); got != 0 {
		t.Errorf("delivered %d, want 0", got)
	}
}

func TestCancelInterruptsSlowServer(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	s.SetDelay(func(int) { entered <- struct{}{}; <-release })
	defer close(release)
	snd := newSender(t, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Send(ctx, envelope(1, 100)) }()
	<-entered
	cancel()
	select {
	case err := <-done:
		if !errclass.IsRetryable(err) || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled send: err = %v, want retryable wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Send did not return after cancel")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	base := Options{Host: "127.0.0.1", From: "a@x.test", To: []string{"b@x.test"}}
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"plain to a remote host", func(o *Options) { o.Host, o.TLSMode = "mail.example.com", TLSPlain }, "only allowed to a loopback"},
		{"unknown tls mode", func(o *Options) { o.TLSMode = "ssl" }, "unknown"},
		{"unknown auth", func(o *Options) { o.AuthMechanism = "ntlm" }, "auth mechanism"},
		{"missing CA file", func(o *Options) { o.CAFile = "/nonexistent/ca.pem" }, CAFileVar},
		{"no recipient", func(o *Options) { o.To = nil }, "to address"},
		{"no host", func(o *Options) { o.Host = "" }, "host is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		o := base
		o.Host, o.TLSMode = host, TLSPlain
		if _, err := New(o); err != nil {
			t.Errorf("plain to %s: %v", host, err)
		}
	}
}

// sendErrors produces real go-mail SendErrors from the in-process server.
func sendErrors(t *testing.T) (temp, perm error) {
	t.Helper()
	s := startServer(t)
	host, port, _ := net.SplitHostPort(s.SMTPAddr())
	var p int
	fmt.Sscan(port, &p)
	c, err := gomail.NewClient(host, gomail.WithPort(p), gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithHELO("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	msg := func() *gomail.Msg {
		m := gomail.NewMsg()
		_ = m.From("a@jirabridge.test")
		_ = m.To(s.Address("bridge-b", ""))
		m.SetBodyString(gomail.TypeTextPlain, "x")
		return m
	}
	s.FailNth(1, 421, "busy")
	temp = c.DialAndSend(msg())
	s.FailNth(1, 550, "rejected")
	perm = c.DialAndSend(msg())
	var se *gomail.SendError
	if !errors.As(temp, &se) || !errors.As(perm, &se) {
		t.Fatalf("go-mail errors are not SendErrors: %v / %v", temp, perm)
	}
	return temp, perm
}

func TestClassify(t *testing.T) {
	t.Parallel()
	temp, perm := sendErrors(t)
	tests := []struct {
		name   string
		err    error
		class  errclass.Class
		reason string
	}{
		{"go-mail SendError 4xx", temp, errclass.BackOff, Reason4xx},
		{"go-mail SendError 5xx", perm, errclass.Permanent, Reason5xx},
		{"reply 451", &textproto.Error{Code: 451, Msg: "4.7.1 try later"}, errclass.BackOff, Reason4xx},
		{"reply 421 wrapped", fmt.Errorf("MAIL FROM: %w", &textproto.Error{Code: 421, Msg: "closing"}), errclass.BackOff, Reason4xx},
		{"reply 550", &textproto.Error{Code: 550, Msg: "no such user"}, errclass.Permanent, Reason5xx},
		{"reply 552", &textproto.Error{Code: 552, Msg: "too big"}, errclass.Permanent, Reason5xx},
		{"reply 535", fmt.Errorf("SMTP AUTH failed: %w", &textproto.Error{Code: 535, Msg: "5.7.8 bad credentials"}), errclass.Permanent, ReasonAuth},
		{"reply 530", &textproto.Error{Code: 530, Msg: "auth required"}, errclass.Permanent, ReasonAuth},
		{"no auth mechanism", gomail.ErrPlainAuthNotSupported, errclass.Permanent, ReasonAuth},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, errclass.Temporary, ReasonDial},
		{"connection reset", fmt.Errorf("write: %w", syscall.ECONNRESET), errclass.Temporary, ReasonDial},
		{"eof", fmt.Errorf("read reply: %w", io.EOF), errclass.Temporary, ReasonDial},
		{"timeout", context.DeadlineExceeded, errclass.Temporary, ReasonDial},
		{"dns", &net.DNSError{Err: "no such host", Name: "mail.invalid", IsTemporary: true}, errclass.Temporary, ReasonDial},
		{"no connection", gomail.ErrNoActiveConnection, errclass.Temporary, ReasonDial},
		{"cancelled", context.Canceled, errclass.Temporary, ReasonCanceled},
		{"unknown CA", fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), errclass.Permanent, ReasonTLS},
		{"wrong host name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mail.example.com"}, errclass.Permanent, ReasonTLS},
		{"starttls missing", errors.New(`STARTTLS mode set to: "TLSMandatory", but target host does not support STARTTLS`), errclass.Permanent, ReasonTLS},
		{"already classified", errclass.New(errclass.Permanent, "too_large", errors.New("big")), errclass.Permanent, "too_large"},
		{"unknown", errors.New("something odd"), errclass.Permanent, ReasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if errclass.Of(got) != tt.class || errclass.ReasonOf(got) != tt.reason {
				t.Errorf("Classify(%v) = %v %s, want %v %s", tt.err, errclass.Of(got), errclass.ReasonOf(got), tt.class, tt.reason)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("Classify(%v) lost the cause", tt.err)
			}
		})
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	if msg := Classify(x509.UnknownAuthorityError{}).Error(); !strings.Contains(msg, CAFileVar) {
		t.Errorf("TLS error %q does not name %s", msg, CAFileVar)
	}
}
