package imappoll_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gomail "github.com/wneessen/go-mail"

	"github.com/jirabridge/jirabridge/transport"
	"github.com/jirabridge/jirabridge/transport/imappoll"
	"github.com/jirabridge/jirabridge/transport/mailstack"
	"github.com/jirabridge/jirabridge/transport/smtpsend"
	"github.com/jirabridge/jirabridge/transport/transporttest"
)

// BenchmarkStackThroughput sends b.N envelopes through the real stack with
// our codec (smtpsend, then imappoll receiving and moving each one), then
// b.N plain mails of the same size with go-mail and fetches them with one
// imapclient FETCH, in the same run. The ratio codec/raw shows what our
// transport costs on top of the mail servers. Run with e.g.
//
//	go test -run '^$' -bench StackThroughput -benchtime 500x ./transport/imappoll/
func BenchmarkStackThroughput(b *testing.B) {
	st := mailstack.Require(b)
	const sealedSize = 4096
	ctx := context.Background()
	mailSize := len(mustEncode(b, transporttest.Envelope(1, sealedSize)))
	n := b.N

	// Our transport: encode, send, receive, decode, move.
	h := stackHarness(b, st, smtpsend.TLSPlain, imappoll.TLSPlain)
	s, err := smtpsend.New(h.sendOpts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r, err := imappoll.New(h.recvOpts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	envs := make([]transport.Outgoing, n)
	for i := range envs {
		envs[i] = transporttest.Envelope(uint64(i+1), sealedSize)
	}
	b.ResetTimer()
	start := time.Now()
	for _, m := range envs {
		if err := s.Send(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	for range n {
		_, ack := receiveRetrying(ctx, b, r)
		if err := ack(ctx, transport.Stored); err != nil {
			b.Fatal(err)
		}
	}
	codec := time.Since(start)

	// Raw: the same number of plain mails of the same size, go-mail and one
	// imapclient FETCH.
	raw := stackHarness(b, st, smtpsend.TLSPlain, imappoll.TLSPlain)
	gm, err := gomail.NewClient(st.Host, gomail.WithPort(st.SMTPPort), gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithHELO("localhost"))
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat(strings.Repeat("x", 75)+"\r\n", mailSize/77+1)[:mailSize-300]
	msgs := make([]*gomail.Msg, n)
	for i := range msgs {
		m := gomail.NewMsg(gomail.WithEncoding(gomail.NoEncoding))
		_ = m.From(st.Address("bridge-a", ""))
		_ = m.To(raw.sendOpts.To[0])
		m.Subject("raw")
		m.SetBodyString(gomail.TypeTextPlain, body)
		msgs[i] = m
	}
	arrived := make(chan uint32, 16)
	c := dial(b, imapAddr(st), "bridge-b", st.Password("bridge-b"), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case arrived <- *d.NumMessages:
				default:
				}
			}
		}},
	})
	defer c.Logout()
	if _, err := c.Select(raw.recvOpts.Mailbox, nil).Wait(); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if err := gm.DialWithContext(ctx); err != nil {
		b.Fatal(err)
	}
	for _, m := range msgs {
		if err := gm.Send(m); err != nil {
			b.Fatal(err)
		}
	}
	_ = gm.Close()
	idle, err := c.Idle()
	if err != nil {
		b.Fatal(err)
	}
	for count := uint32(0); count < uint32(n); {
		select {
		case count = <-arrived:
		case <-time.After(30 * time.Second):
			b.Fatalf("only %d of %d raw mails arrived", count, n)
		}
	}
	if err := idle.Close(); err != nil {
		b.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	fetched, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil || len(fetched) != n {
		b.Fatalf("fetched %d raw mails (%v), want %d", len(fetched), err, n)
	}
	rawDur := time.Since(start)
	b.StopTimer()

	b.ReportMetric(float64(n)/codec.Seconds(), "envelopes/s")
	b.ReportMetric(float64(n*mailSize)/codec.Seconds(), "mail_bytes/s")
	b.ReportMetric(float64(n*sealedSize)/codec.Seconds(), "sealed_bytes/s")
	b.ReportMetric(float64(n)/rawDur.Seconds(), "raw_mails/s")
	b.ReportMetric(float64(n*mailSize)/rawDur.Seconds(), "raw_bytes/s")
	b.ReportMetric(rawDur.Seconds()/codec.Seconds(), "codec/raw")
}

func mustEncode(tb testing.TB, m transport.Outgoing) []byte {
	tb.Helper()
	raw, err := transport.EncodeMail(m, transporttest.MailHeader())
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func imapAddr(st *mailstack.Stack) string {
	return net.JoinHostPort(st.Host, strconv.Itoa(st.IMAPPort))
}
