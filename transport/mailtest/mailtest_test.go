package mailtest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

const rawMail = "From: a@jirabridge.test\r\nTo: b@jirabridge.test\r\nSubject: hi\r\n\r\nbody\r\n"

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddUser("bridge-b", "pw"); err != nil {
		t.Fatal(err)
	}
	return s
}

func send(s *Server, to string) error {
	c, err := smtp.Dial(s.SMTPAddr())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail("a@jirabridge.test", []string{to}, strings.NewReader(rawMail)); err != nil {
		return err
	}
	return c.Quit()
}

func TestDeliveryAndFaults(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	s.FailNth(2, 451, "try later")
	s.FailNth(3, 554, "no")
	s.DropNth(4)
	// Sessions run on their own goroutines (a dropped connection's session
	// may still be finishing when the next one starts), so the recorder
	// locks.
	var mu sync.Mutex
	var delays []int
	s.SetDelay(func(n int) { mu.Lock(); delays = append(delays, n); mu.Unlock() })
	tests := []struct {
		name     string
		to       string
		wantCode int // 0: accepted; -1: connection error
	}{
		{"first is accepted", s.Address("bridge-b", ""), 0},
		{"second gets 451", s.Address("bridge-b", ""), 451},
		{"third gets 554", s.Address("bridge-b", ""), 554},
		{"fourth is dropped", s.Address("bridge-b", ""), -1},
		{"fifth goes to a folder", s.Address("bridge-b", "box1"), 0},
		{"unknown user", s.Address("nobody", ""), 550},
		{"foreign domain", "x@example.com", 554},
	}
	for _, tt := range tests {
		err := send(s, tt.to)
		var se *smtp.SMTPError
		switch {
		case tt.wantCode == 0 && err != nil:
			t.Errorf("%s: err = %v, want accepted", tt.name, err)
		case tt.wantCode > 0 && (!errors.As(err, &se) || se.Code != tt.wantCode):
			t.Errorf("%s: err = %v, want code %d", tt.name, err, tt.wantCode)
		case tt.wantCode == -1 && (err == nil || errors.As(err, &se)):
			t.Errorf("%s: err = %v, want a connection error", tt.name, err)
		}
	}
	if got := len(s.Mails("bridge-b", "")); got != 1 {
		t.Errorf("INBOX mails = %d, want 1", got)
	}
	if got := len(s.Mails("bridge-b", "box1")); got != 1 {
		t.Errorf("box1 mails = %d, want 1", got)
	}
	mu.Lock()
	got := append([]int(nil), delays...)
	mu.Unlock()
	if want := []int{1, 2, 3, 4, 5}; !equal(got, want) {
		t.Errorf("delay calls = %v, want %v", got, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIMAPIdleSeesDelivery(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	got := make(chan uint32, 10)
	c, err := imapclient.DialInsecure(s.IMAPAddr(), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				got <- *d.NumMessages
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bridge-b", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if !c.Caps().Has(imap.CapIdle) || !c.Caps().Has(imap.CapMove) {
		t.Fatalf("caps = %v, want IDLE and MOVE", c.Caps())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// Deliver once the session is in IDLE, so that only IDLE can tell.
	if got, err := s.WaitSessions(ctx, func(ss Sessions) bool { return ss.Idling == 1 }); err != nil {
		t.Fatalf("WaitSessions(idling) = %+v, %v", got, err)
	}
	if err := s.Deliver("bridge-b", []byte(rawMail)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != 1 {
			t.Errorf("EXISTS = %d, want 1", n)
		}
	case <-ctx.Done():
		t.Fatal("no EXISTS during IDLE within 3 s")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.WaitSessions(ctx, func(ss Sessions) bool { return ss.Idling == 0 }); err != nil || got.Connections != 1 {
		t.Errorf("after IDLE ended: %+v, %v; want 1 connection, none idling", got, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].BodySection[0].Bytes, []byte(rawMail)) {
		t.Fatalf("fetch = %v, %v; want the delivered mail", msgs, err)
	}
	if s.IMAPConnections() != 1 {
		t.Errorf("IMAPConnections = %d, want 1", s.IMAPConnections())
	}
	s.DropIMAPConnections()
	select {
	case <-c.Closed():
	case <-ctx.Done():
		t.Fatal("client not closed after DropIMAPConnections")
	}
	if got, err := s.WaitSessions(ctx, func(ss Sessions) bool { return ss.Connections == 0 }); err != nil {
		t.Errorf("WaitSessions(no connections) = %+v, %v", got, err)
	}
}

func TestWaitSessionsEndsWithContext(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := s.WaitSessions(ctx, func(ss Sessions) bool { return ss.Connections > 0 })
	if !errors.Is(err, context.Canceled) || got != (Sessions{}) {
		t.Errorf("WaitSessions with no session and a cancelled context = %+v, %v; want {0 0}, context.Canceled", got, err)
	}
	// A condition that holds already returns at once, even then.
	if _, err := s.WaitSessions(ctx, func(ss Sessions) bool { return ss.Connections == 0 }); err != nil {
		t.Errorf("WaitSessions with a condition that holds = %v, want nil", err)
	}
}

func TestOptionsHideCaps(t *testing.T) {
	t.Parallel()
	s := start(t, Options{NoIdle: true, NoMove: true})
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bridge-b", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if c.Caps().Has(imap.CapIdle) || c.Caps().Has(imap.CapMove) {
		t.Errorf("caps = %v, want neither IDLE nor MOVE", c.Caps())
	}
	if err := c.Login("bridge-b", "wrong").Wait(); err == nil {
		t.Error("second login with a wrong password succeeded")
	}
}
