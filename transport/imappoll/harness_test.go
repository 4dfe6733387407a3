package imappoll_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/imappoll"
	"github.com/jirabridge/jirabridge/transport/mailstack"
	"github.com/jirabridge/jirabridge/transport/mailtest"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
	"github.com/jirabridge/jirabridge/transport/transporttest"
)

// harness connects an smtpsend.Sender and imappoll.Receivers through one
// mailbox; it implements transporttest.Harness.
type harness struct {
	sendOpts smtpsend.Options
	recvOpts imappoll.Options
	login    func(t testing.TB) *imapclient.Client // a separate session of the receiving user

	mu       sync.Mutex
	reported []string
}

var _ transporttest.Harness = (*harness)(nil)

func (h *harness) NewSender(t *testing.T) transport.Sender {
	t.Helper()
	s, err := smtpsend.New(h.sendOpts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) NewReceiver(t *testing.T) transport.Receiver {
	t.Helper()
	o := h.recvOpts
	o.OnQuarantine = func(_, reason string) {
		h.mu.Lock()
		h.reported = append(h.reported, reason)
		h.mu.Unlock()
	}
	r, err := imappoll.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (h *harness) InjectRaw(t *testing.T, raw []byte) {
	t.Helper()
	c := h.login(t)
	defer c.Logout()
	appendMail(t, c, h.recvOpts.Mailbox, raw)
}

func appendMail(t testing.TB, c *imapclient.Client, mailbox string, raw []byte) {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %s: %v", mailbox, err)
	}
}

func (h *harness) Quarantined(t *testing.T) [][]byte {
	t.Helper()
	c := h.login(t)
	defer c.Logout()
	return folderMails(t, c, h.recvOpts.QuarantineFolder)
}

// folderMails returns the raw mails in a folder (none when it is missing).
func folderMails(t testing.TB, c *imapclient.Client, folder string) [][]byte {
	t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sel.NumMessages == 0 {
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", folder, err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.FindBodySection(section))
	}
	return out
}

func (h *harness) Reported(t *testing.T) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reported...)
}

// mailtestHarness returns a harness on a fresh in-process server.
func mailtestHarness(t *testing.T) *harness {
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
	shost, sport := splitAddr(t, s.SMTPAddr())
	ihost, iport := splitAddr(t, s.IMAPAddr())
	return &harness{
		sendOpts: smtpsend.Options{
			Host: shost, Port: sport, TLSMode: smtpsend.TLSPlain, HELO: "localhost",
			Username: "bridge-a", Password: "bridge-a-pw", AuthMechanism: smtpsend.AuthPlain,
			From: "Bridge A <bridge-a@jirabridge.test>", To: []string{s.Address("bridge-b", "")},
		},
		recvOpts: imappoll.Options{
			Host: ihost, Port: iport, TLSMode: imappoll.TLSPlain, Username: "bridge-b", Password: "bridge-b-pw",
			Mailbox: "INBOX", ProcessedFolder: "processed", QuarantineFolder: "quarantine",
			State: imappoll.NewMemoryState(), BackOff: func(int) time.Duration { return 0 },
		},
		login: func(t testing.TB) *imapclient.Client {
			return dial(t, s.IMAPAddr(), "bridge-b", "bridge-b-pw", nil)
		},
	}
}

var folderSeq atomic.Int64

// uniqueFolder returns a folder name no other test (in this or another
// package, in this or an earlier run) uses.
func uniqueFolder(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, strconv.FormatInt(time.Now().UnixNano(), 36), folderSeq.Add(1))
}

// stackHarness returns a harness on the real Postfix + Dovecot stack, in
// folders of its own: mail to bridge-b+F lands in folder F.
func stackHarness(t testing.TB, st *mailstack.Stack, smtpMode, imapMode string) *harness {
	t.Helper()
	box := uniqueFolder("t")
	sport := map[string]int{smtpsend.TLSPlain: st.SMTPPort, smtpsend.TLSStartTLS: st.SubmissionPort, smtpsend.TLSImplicit: st.SMTPSPort}[smtpMode]
	iport := map[string]int{imappoll.TLSPlain: st.IMAPPort, imappoll.TLSStartTLS: st.IMAPPort, imappoll.TLSImplicit: st.IMAPSPort}[imapMode]
	host := st.Host
	if smtpMode != smtpsend.TLSPlain || imapMode != imappoll.TLSPlain {
		host = "localhost" // the name in the certificate; 127.0.0.1 is in it too
	}
	h := &harness{
		sendOpts: smtpsend.Options{
			Host: host, Port: sport, TLSMode: smtpMode, CAFile: st.CAFile, HELO: "localhost",
			Username: "bridge-a", Password: st.Password("bridge-a"),
			From: "Bridge A <" + st.Address("bridge-a", "") + ">", To: []string{st.Address("bridge-b", box)},
			Timeout: 20 * time.Second,
		},
		recvOpts: imappoll.Options{
			Host: host, Port: iport, TLSMode: imapMode, CAFile: st.CAFile,
			Username: "bridge-b", Password: st.Password("bridge-b"),
			Mailbox: box, ProcessedFolder: box + "-processed", QuarantineFolder: box + "-quarantine",
			State: imappoll.NewMemoryState(), BackOff: func(int) time.Duration { return 50 * time.Millisecond },
			// A connection accepted by a Dovecot that is shutting down gets
			// no greeting; give up on it quickly and reconnect.
			Timeout: 5 * time.Second,
		},
		login: func(t testing.TB) *imapclient.Client {
			return dial(t, net.JoinHostPort(st.Host, strconv.Itoa(st.IMAPPort)), "bridge-b", st.Password("bridge-b"), nil)
		},
	}
	c := h.login(t)
	defer c.Logout()
	if err := c.Create(box, nil).Wait(); err != nil {
		t.Fatalf("create folder %s: %v", box, err)
	}
	return h
}

func dial(t testing.TB, addr, user, pass string, o *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

func splitAddr(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

// receiveRetrying calls Receive until it returns an envelope, retrying
// retryable errors as the transport contract tells callers to.
func receiveRetrying(ctx context.Context, t testing.TB, r transport.Receiver) (*transport.Incoming, transport.AckFunc) {
	t.Helper()
	for {
		in, ack, err := r.Receive(ctx)
		if err == nil {
			return in, ack
		}
		if ctx.Err() != nil || !isRetryable(err) {
			t.Fatalf("Receive: %v", err)
		}
	}
}
